"""How fast each architecture learns: validation MLM loss vs training tokens and vs seconds.

    # one arm: an architecture x activation, at equal tokens (a step-driven one-cycle over --steps)
    python scripts/bench_learning.py run --architecture modernbert --activation relu --steps 900
    # ... or at an equal wall-clock budget (Cramming's time-driven one-cycle)
    python scripts/bench_learning.py run --architecture bert --activation relu --minutes 15
    # every arm found under the output folder (or the given run folders) -> JSON, PNG, Markdown table
    python scripts/bench_learning.py report --output docs/bench_learning/bench_learning [RUN_DIR ...]
    # tokens/s of model sizes, in turn: how many steps each gets for the compute of the first's
    python scripts/bench_learning.py speed --reference-steps 1800 --size "model.hidden_size=256" \
        --size "model.hidden_size=128 model.num_attention_heads=2 model.intermediate_size=341"

Each arm is a real ``python -m pretrain`` run of the recipe (``--config``, default cpu-tiny) with
``model.architecture`` and the activation set, plus any ``dotted.key=value`` overrides, in its own
folder below ``--out``; rerunning an arm resumes or skips it, so a long benchmark can be interrupted.
Arms can run side by side (e.g. pinned to one core each with ``taskset`` and ``train.cpu_threads=1``):
compare tokens/s only between arms that ran alike, which the table records.
``--width-matched`` gives a ModernBERT arm the gated-FFN width that matches BERT's FFN parameters
(``2/3`` of ``intermediate_size``: a gated block has three matrices where BERT's has two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bert_helu.pretraining.recipe import ARCHITECTURES  # noqa: E402 - after the path is set

TOKEN_MARKS = (1.0e6, 2.5e6, 5.0e6, 7.3728e6)  # 7.37M = 900 x 64 x 128: 15 min of 4x256 on a bf16 CPU
SECOND_MARKS = (300, 600, 900)


def arm_name(architecture: str, activation: str, steps: int, minutes: float, overrides: list[str]) -> str:
    budget = f"{steps}steps" if steps else f"{minutes:g}min"
    extra = "".join("-" + o.replace("=", "").replace(".", "_") for o in overrides)
    return f"{architecture}-{activation.replace(':', '-').replace('=', '')}-{budget}{extra}"


def step_budget(steps: int) -> list[str]:
    """Overrides for a step-driven run: equal tokens, whatever the machine's speed."""
    return [f"train.max_steps={steps}", "train.schedule_progress=steps", "train.budget_hours=0"]


def run_arm(args) -> int:
    overrides = list(args.overrides)
    recipe = yaml.safe_load(Path(args.config).read_text())
    if args.architecture == "modernbert" and args.width_matched:
        width = recipe["model"]["intermediate_size"] * 2 // 3
        overrides.append(f"model.intermediate_size={width}")
    if bool(args.steps) == bool(args.minutes):
        raise SystemExit("give exactly one of --steps (equal tokens) or --minutes (equal wall clock)")
    if args.steps:
        budget = step_budget(args.steps)
    else:
        budget = [
            f"train.budget_hours={args.minutes / 60}",
            "train.schedule_progress=time",
            "train.max_steps=0",
        ]
    name = arm_name(args.architecture, args.activation, args.steps, args.minutes, list(args.overrides))
    out = Path(args.out) / name
    command = [
        sys.executable, "-m", "pretrain", "--config", args.config, "--activation", args.activation,
        "--output-dir", str(out), f"model.architecture={args.architecture}", *budget, *overrides,
        "logging.progress_bar=false",
    ]  # fmt: skip
    print(" ".join(command), flush=True)
    # written first, so that an arm stopped midway still reports its curve so far
    from bert_helu.pretraining.recipe import load_recipe

    overrides_given = command[command.index("--output-dir") + 2 : -1]
    recipe = load_recipe(args.config, [*overrides_given, f"activation={args.activation}"])
    out.mkdir(parents=True, exist_ok=True)
    arm = {"command": " ".join(["python", *command[1:]]), "recipe": recipe}
    (out / "bench_arm.json").write_text(json.dumps(arm, indent=1))
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return done.returncode


def schedule_of(train: dict) -> str:
    """``one_cycle``, or ``linear, warm-up 10%`` (a warm-up fraction counts for the other schedules)."""
    warmup = train.get("warmup_fraction") or 0
    if train["scheduler"] == "one_cycle" or not warmup:
        return train["scheduler"]
    return f"{train['scheduler']}, warm-up {warmup:.0%}"


def read_arm(folder: Path) -> dict:
    """Validation losses with the tokens and training seconds at which they were measured.

    Any ``python -m pretrain`` run folder works: its summary.json holds the recipe. An arm this script
    started also has ``bench_arm.json`` (the command and the recipe), so one stopped midway still
    reports its curve so far.
    """
    from bert_helu.runtime.precision import resolve_mixed_precision

    arm_file = folder / "bench_arm.json"
    arm = json.loads(arm_file.read_text()) if arm_file.is_file() else {}
    summary_file = folder / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    cfg = summary.get("config") or arm["recipe"]  # an arm stopped midway: its curve so far
    tr = cfg["train"]
    tokens_per_step = tr["global_batch_size"] * cfg["data"]["seq_len"]
    elapsed_at, rates, curve = {0: 0.0}, [], []
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "train/elapsed_s" in record:
            elapsed_at[record["step"]] = record["train/elapsed_s"]
            rates.append(record["train/tokens_per_s"])
        if "val/loss" in record:
            curve.append({"step": record["step"], "val_loss": record["val/loss"]})
    for point in curve:
        point["tokens"] = point["step"] * tokens_per_step
        point["seconds"] = elapsed_at.get(point["step"])
    rates = sorted(rates[len(rates) // 10 :])  # the first steps include warm-up of the allocator
    step_driven = tr["schedule_progress"] == "steps"
    return {
        "name": folder.name,
        "command": arm.get("command"),
        "architecture": cfg["model"].get("architecture", "bert"),
        "activation": cfg["activation"],
        "seed": cfg["seed"],
        "steps": tr["max_steps"] if step_driven else 0,
        "minutes": 0 if step_driven else tr["budget_hours"] * 60,
        "parameters": count_parameters(folder / "final") if summary else None,
        "model": cfg["model"],
        "train": {
            k: tr[k] for k in ("global_batch_size", "lr", "scheduler", "warmup_fraction", "mixed_precision")
        },
        "cpu_threads": tr["cpu_threads"],
        "precision": summary.get("mixed_precision") or resolve_mixed_precision(tr["mixed_precision"]),
        "num_processes": summary.get("num_processes"),
        "median_tokens_per_s": rates[len(rates) // 2] if rates else None,
        "final_val_loss": summary.get("final_validation_loss"),
        "tokens": summary.get("tokens_seen", curve[-1]["tokens"] if curve else 0),
        "training_seconds": summary.get("train_time_s", curve[-1]["seconds"] if curve else 0),
        "finished": bool(summary),
        "curve": curve,
    }


def count_parameters(checkpoint: Path) -> int:
    """Parameters as saved (tied embeddings once), read from the safetensors header only."""
    from math import prod

    from safetensors import safe_open

    with safe_open(str(checkpoint / "model.safetensors"), "np") as weights:
        return sum(prod(weights.get_slice(key).get_shape()) for key in weights.keys())  # noqa: SIM118 - not a dict


def loss_at(curve: list[dict], key: str, mark: float) -> float | None:
    """Validation loss at the first evaluation at or past ``mark`` (None if the run stopped earlier)."""
    for point in curve:
        if point[key] is not None and point[key] >= mark * 0.999:
            return point["val_loss"]
    return None


def report(args) -> int:
    from bert_helu.analysis.reports import machine, markdown_table, write_per_cpu_kind

    folders = [Path(r) for r in args.runs] or [
        f.parent for f in sorted(Path(args.out).glob("*/bench_arm.json"))
    ]
    arms = [
        read_arm(f) for f in folders if (f / "summary.json").is_file() or (f / "bench_arm.json").is_file()
    ]
    if not arms:
        raise SystemExit(f"no finished run among {', '.join(map(str, folders)) or args.out}")
    data = {"machine": machine(), "arms": arms}
    rows = []
    for a in arms:
        m = a["model"]
        ffn = m["intermediate_size"]
        rows.append([
            a["architecture"], a["activation"], f"{m['num_hidden_layers']}x{m['hidden_size']}, FFN {ffn}",
            f"{a['parameters'] / 1e6:.2f}M" if a["parameters"] else "", a["train"]["global_batch_size"],
            a["train"]["lr"], schedule_of(a["train"]),
            f"{a['steps']} steps" if a["steps"] else f"{a['minutes']:g} min",
            a["median_tokens_per_s"] and round(a["median_tokens_per_s"]), a["cpu_threads"] or "all",
            *[loss_at(a["curve"], "tokens", t) for t in TOKEN_MARKS],
            *[loss_at(a["curve"], "seconds", s) for s in SECOND_MARKS],
            a["final_val_loss"] if a["finished"] else f"stopped at step {a['curve'][-1]['step']}",
            f"{a['tokens'] / 1e6:.2f}M", round(a["training_seconds"] or 0),
        ])  # fmt: skip
    headers = [
        "architecture", "activation", "size", "params", "batch", "lr", "schedule", "budget", "tokens/s",
        "threads", *[f"loss @ {t / 1e6:.3g}M tok" for t in TOKEN_MARKS],
        *[f"loss @ {s}s" for s in SECOND_MARKS], "final loss", "tokens", "train s",
    ]  # fmt: skip
    table = markdown_table(headers, rows)
    out = Path(args.output)
    plot(arms, out.with_suffix(".png"))

    def render(data: dict) -> str:
        mach = data["machine"]
        return (
            f"Machine: {mach['cpu']}, CPU flags {', '.join(mach['cpu_flags']) or 'none of avx2/avx512/amx'}, "
            f"torch {mach['torch']}, measured {mach['time_utc']}; precision per arm: "
            f"{', '.join(sorted({str(a['precision']) for a in data['arms']}))}.\n\n{data['table']}"
        )

    data["table"] = table
    title = "# bench_learning: validation MLM loss by tokens and by seconds, per arm"
    write_per_cpu_kind(out.with_suffix(".json"), out.with_suffix(".table.md"), data, render, title)
    print(render(data))
    return 0


def speed(args) -> int:
    """Short runs of each ``--size`` in turn, ``--rounds`` times: median tokens/s, and the steps that
    give each the compute (wall clock on this machine) of ``--reference-steps`` of the first."""
    import statistics
    import tempfile

    from bert_helu.runtime.atomic import atomic_write_json

    sizes = [size.split() for size in args.size]
    rates: list[list[float]] = [[] for _ in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, overrides in enumerate(sizes):
                out = Path(tmp) / f"size{i}-round{r}"
                command = [
                    sys.executable, "-m", "pretrain", "--config", args.config,
                    "--activation", args.activation, "--output-dir", str(out),
                    f"model.architecture={args.architecture}",
                    *step_budget(args.steps), f"train.eval_every_steps={args.steps}",
                    "logging.progress_bar=false", *overrides,
                ]  # fmt: skip
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
                rates[i].append(read_arm(out)["median_tokens_per_s"])
                print(
                    f"round {r}: {' '.join(overrides) or 'the recipe'}: {rates[i][-1]:,.0f} tokens/s",
                    flush=True,
                )
    medians = [statistics.median(r) for r in rates]
    rows = [
        {
            "overrides": overrides,
            "tokens_per_s": rate,
            "per_round": per_round,
            "vs_first": rate / medians[0],
            "equal_compute_steps": round(args.reference_steps * rate / medians[0]),
        }
        for overrides, rate, per_round in zip(sizes, medians, rates, strict=True)
    ]
    for row in rows:
        print(f"{' '.join(row['overrides']) or 'the recipe'}: {row['tokens_per_s']:,.0f} tokens/s, "
              f"{row['vs_first']:.2f}x, {row['equal_compute_steps']} steps")  # fmt: skip
    if args.output:
        command = ["python", "scripts/bench_learning.py", *sys.argv[1:]]
        atomic_write_json(Path(args.output), {"command": " ".join(command), "sizes": rows})
    return 0


def plot(arms: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_tokens, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for a in arms:
        m = a["model"]
        label = (
            f"{a['architecture']} {m['num_hidden_layers']}x{m['hidden_size']} {a['activation']}, "
            f"{schedule_of(a['train'])}, lr {a['train']['lr']:g}"
        )
        points = [p for p in a["curve"] if p["step"] > 0]
        line = by_tokens.plot(
            [p["tokens"] / 1e6 for p in points], [p["val_loss"] for p in points], label=label
        )
        timed = [p for p in points if p["seconds"] is not None]
        by_time.plot(
            [p["seconds"] / 60 for p in timed], [p["val_loss"] for p in timed], color=line[0].get_color()
        )
    by_tokens.set(xlabel="training tokens (millions)", ylabel="validation MLM loss", title="at equal tokens")
    by_time.set(xlabel="training minutes", title="at equal wall clock (this machine)")
    by_tokens.legend(fontsize=7)
    for axis in (by_tokens, by_time):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one arm (resumes if interrupted)")
    run.add_argument("--architecture", choices=ARCHITECTURES, required=True)
    run.add_argument("--activation", default="relu")
    run.add_argument(
        "--steps", type=int, default=0, help="equal tokens: this many steps, step-driven one-cycle"
    )
    run.add_argument("--minutes", type=float, default=0.0, help="equal wall clock: this training budget")
    run.add_argument("--config", default="configs/pretrain/cpu-tiny.yaml")
    run.add_argument(
        "--width-matched", action="store_true", help="modernbert FFN width = 2/3 of the recipe's"
    )
    run.add_argument("--out", default="runs/bench_learning")
    run.add_argument("overrides", nargs="*", help="dotted.key=value recipe overrides")
    rep = sub.add_parser("report", help="JSON + PNG + Markdown table of every finished arm")
    rep.add_argument("runs", nargs="*", help="pretraining run folders (default: every arm under --out)")
    rep.add_argument("--out", default="runs/bench_learning")
    rep.add_argument(
        "--output", default="docs/bench_learning/bench_learning", help="path stem of the outputs"
    )
    fast = sub.add_parser("speed", help="tokens/s of model sizes in turn: steps for equal compute")
    fast.add_argument("--size", action="append", required=True, help="overrides of one size (quoted)")
    fast.add_argument("--reference-steps", type=int, required=True, help="the first size's steps")
    fast.add_argument("--architecture", choices=ARCHITECTURES, default="modernbert")
    fast.add_argument("--activation", default="relu")
    fast.add_argument("--config", default="configs/pretrain/cpu-tiny.yaml")
    fast.add_argument("--steps", type=int, default=40, help="steps of each short run")
    fast.add_argument("--rounds", type=int, default=2)
    fast.add_argument("--output", help="JSON of the measurement")
    args = parser.parse_args(argv)
    return {"run": run_arm, "report": report, "speed": speed}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
