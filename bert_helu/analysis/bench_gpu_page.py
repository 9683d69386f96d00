"""The page of scripts/bench_gpu.py (docs/bench_gpu.md), written from its JSON alone: the script runs
the programs and measures; this module only writes."""

from __future__ import annotations

from bert_helu.analysis.reports import markdown_table
from bert_helu.models.flops import model_flops_utilization

HOW_TO_RUN = """## How to run it

On a machine with one NVIDIA GPU, from the repository root:

```bash
bash scripts/gpu_check.sh            # installs the carried wheels (.whl/) into a scratch folder, then runs
                                     # scripts/bench_gpu.py under a timeout and copies what it wrote to $OUT
```

In a session with a lent GPU (the device tool; see the header of `scripts/gpu_check.sh` for the one-time
`pip download` of the wheels into the ignored `.whl/` folder) that is one call: `run` with
`command: bash scripts/gpu_check.sh`, `carry: [".whl"]`, `timeout_s: 600`. Then copy `bench_gpu.json`
and `bench_gpu.md` from the returned files over `docs/` and commit them.

Without the wrapper: `python scripts/bench_gpu.py` (GPU, about 7.5 minutes on an H100, `--budget-s`
bounds it), `python scripts/bench_gpu.py --smoke` (any machine: a 2 x 64 model in fp32; this page's
numbers below, when it says CPU smoke run), `--parts speed,loss,resume,glue` picks parts, `--steps N`
lengthens the speed runs, `--modes eager,compiled` picks their modes: compiled runs come last, and
where the budget ran out before them, `python scripts/bench_gpu.py --parts speed --modes compiled` runs
them alone (then merge the two pages by hand)."""


def precision_name(setting: str) -> str:
    return "fp32" if setting == "no" else setting


def fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else str(value)


def markdown(results: dict) -> str:

    m = results["machine"]
    smoke = m["mode"] == "smoke"
    lines = ["# GPU check", ""]
    if smoke:
        lines += [
            "**GPU numbers: not yet measured.** The numbers on this page are from a **CPU smoke run** "
            "(`--smoke`: a 2 x 64 crammed encoder, fp32, a few steps) on the machine below: they show "
            "that every part runs end to end, not what a GPU does. A session with a lent GPU runs "
            "`scripts/gpu_check.sh` and replaces this page with the GPU run's.",
            "",
        ]
    lines += [HOW_TO_RUN, "", "## This run", "", f"Command: `{results['command']}`", ""]
    where = (
        f"GPU {m['gpu']} ({m.get('gpu_memory_gib')} GiB, compute capability {m.get('gpu_capability')}, "
        f"driver {m.get('driver')})"
        if m.get("gpu")
        else "no GPU"
    )
    lines += [
        f"Machine: {m['cpu']}, {m['cores']} cores; {where}. Python {m['python']}, torch {m['torch']} "
        f"(CUDA {m['cuda']}), transformers {m['transformers']}, accelerate {m['accelerate']}, datasets "
        f"{m['datasets']}. Mode: {'CPU smoke run' if smoke else 'GPU check'}; precision "
        f"{precision_name(results['precision'])}. Measured {m['when']}, load average "
        f"{m['load_average_at_start']} at the start and {m.get('load_average_at_end')} at the end; "
        f"the whole script took {fmt(results.get('total_s'))} s of a {fmt(results['budget_s'], 0)} s budget.",
        "",
    ]
    peak = results.get("peak")
    if peak:
        lines += [
            f"Matmul peak: {peak['dtype']} {peak['n']}^3 products on {peak['device']}, "
            f"{peak['flops'] / 1e12:,.2f} TFLOP/s (best of 5 batches of {peak['products']}).",
            "",
        ]
    prep = results.get("prepare")
    if prep:
        lines += [
            f"Corpus: the bundled sample (the demo's sources), prepared once in {prep['seconds']} s "
            f"({prep['status']}).",
            "",
        ]
    lines += speed_part(results) + loss_part(results) + resume_part(results) + glue_part(results)
    if results.get("skipped"):
        lines += ["## Skipped", "", *[f"- {s}" for s in results["skipped"]], ""]
    return "\n".join(lines).rstrip() + "\n"


def speed_part(results: dict) -> list[str]:
    rows = results.get("speed") or []
    if not rows:
        return []
    peak = (results.get("peak") or {}).get("flops")
    first = next((r for r in rows if "model" in r), {})
    out = [
        "## 1. Speed: tokens/s and MFU",
        "",
        f"configs/pretrain/crammed-bert.yaml ({first.get('model', 'n/a')}; global batch "
        f"{first.get('global_batch')} x {first.get('seq_len')} tokens, "
        f"micro-batch {first.get('micro_batch')}), "
        "timed over the logged steps after the warm-up (column timed: eager runs from an early step, "
        "compiled ones over their second half, as they may recompile for a new shape); "
        "MFU = model matmul FLOPs per second over the matmul peak above. Warm-up: the training seconds "
        "of the first logged steps (compilation shows there). vs ReLU: step time over ReLU's in the same "
        "mode. Runs without a step time per log line are timed whole, warm-up included (timed steps: all).",
        "",
    ]
    table = []
    relu = {r["compile"]: r.get("s_per_step") for r in rows if r["activation"] == "relu"}
    for r in rows:
        achieved = r.get("achieved_tflops")
        mfu = model_flops_utilization(achieved * 1e12, peak) if peak and achieved is not None else None
        baseline, step = relu.get(r["compile"]), r.get("s_per_step")
        table.append(
            [
                r["activation"],
                "compiled" if r["compile"] else "eager",
                r["status"],
                r.get("timed_steps", "n/a"),
                fmt(step, 4),
                fmt(step / baseline if step and baseline else None, 3),
                fmt(r.get("tokens_per_s"), 0),
                fmt(r.get("achieved_tflops"), 2),
                fmt(100 * mfu if mfu else None, 1, "%"),
                f"{fmt(r.get('warmup_s'))} s / {r.get('warmup_steps')} steps" if r.get("warmup_s") else "n/a",
                fmt(r["seconds"]),
            ]
        )
    headers = [
        "activation",
        "mode",
        "status",
        "timed",
        "s/step",
        "vs ReLU",
        "tokens/s",
        "TFLOP/s",
        "MFU",
        "warm-up",
        "run s",
    ]
    return out + [markdown_table(headers, table), ""]


def loss_part(results: dict) -> list[str]:
    r = results.get("loss")
    if not r:
        return []
    out = ["## 2. The loss falls", ""]
    if "first_loss" not in r:
        return out + [f"{r['status']} (log: {r.get('log')})", ""]
    out += [
        f"HeLU, a {fmt(r['budget_s'], 0)} s budget: {r['steps']} steps, {fmt(r.get('tokens_seen'))} tokens; "
        f"training loss {r['first_loss']:.3f} (mean of the first logged) -> {r['last_loss']:.3f} "
        "(of the last): "
        f"{'falls' if r['falls'] else 'does NOT fall'} by at least {r['must_fall_by']} "
        f"({r['status']}); final validation loss {fmt(r.get('final_validation_loss'), 3)}.",
        "",
    ]
    out += ["Training loss by step: " + ", ".join(f"{s}: {loss:.2f}" for s, loss in r["train"]) + "."]
    if r["validation"]:
        out += [
            "",
            "Validation loss by step: " + ", ".join(f"{s}: {loss:.3f}" for s, loss in r["validation"]) + ".",
        ]
    return out + [""]


def resume_part(results: dict) -> list[str]:
    r = results.get("resume")
    if not r:
        return []
    out = ["## 3. Kill and resume", ""]
    if "uninterrupted" not in r:
        return out + [f"{r.get('status')}", ""]
    a, b = r["uninterrupted"], r["resumed_run"]
    out += [
        f"{r['steps']} steps, a checkpoint every {r['checkpoint_every']}: one run straight through; one "
        f"SIGKILLed after step {r['killed_at']['after_step']} and started again with the same command "
        f"({r.get('resumed_from') or 'no resume line in its log'}).",
        "",
        f"Straight: step {a['steps']}, train loss {fmt(a['final_train_loss'], 6)}, validation loss "
        f"{fmt(a['final_validation_loss'], 6)}. Killed and resumed: step {b['steps']}, train loss "
        f"{fmt(b['final_train_loss'], 6)}, validation loss {fmt(b['final_validation_loss'], 6)}. Weights "
        f"bitwise equal: {'yes' if r['weights_bitwise_equal'] else 'no'} (largest difference "
        f"{fmt(r['weights_max_abs_difference'], 3 if not r['weights_max_abs_difference'] else 8)}). "
        f"Result: {r['status']}.",
        "",
    ]
    return out


def glue_part(results: dict) -> list[str]:
    r = results.get("glue")
    if not r:
        return []
    out = ["## 4. GLUE: SST-2 from the loss run's model", ""]
    if "metrics" not in r:
        return out + [f"{r['status']} (log: {r.get('log')})", ""]
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items())
    return out + [
        f"`python -m finetune` on the sample's SST-2 ({r['num_train_examples']} training, "
        f"{r['num_eval_examples']} dev examples), {r['optimizer_steps']} steps in "
        f"{precision_name(r['mixed_precision'])}: "
        f"dev {metrics}; {fmt(r['train_examples_per_second'], 0)} training examples/s; the whole "
        f"command {r['seconds']} s.",
        "",
    ]
