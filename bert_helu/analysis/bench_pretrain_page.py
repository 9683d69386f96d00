"""The page of scripts/bench_pretrain.py (docs/bench_pretrain.md): its tables and readings, written from
the measurements in its JSON alone, so that ``--render-only`` writes the same page again without
measuring. The script measures; this module only writes."""

from __future__ import annotations

from bert_helu.analysis.reports import markdown_table, write_per_cpu_kind
from bert_helu.runtime.precision import CPU_FLAGS

NAMES = {"bert": "BERT", "modernbert": "ModernBERT"}


def precision_name(precision: str) -> str:
    return {"no": "fp32", "bf16": "bf16 autocast"}.get(precision, precision)


def header(results: dict) -> list[str]:
    m, args, recipe = results["machine"], results["args"], results["recipe"]
    flags = ", ".join(m["cpu_flags"]) or "none"
    native = any(f in m["cpu_flags"] for f in ("avx512_bf16", "amx_bf16"))
    if args["precision"] != "auto":
        why = f"`--precision {args['precision']}`"
    elif native:
        why = "auto: native bf16 matmuls on this CPU"
    else:
        why = (
            "auto: no native bf16 matmuls on this CPU, where bf16 autocast is slower than fp32; "
            "`--precision bf16` measures by how much"
        )
    peaks = ", ".join(
        f"{name} {flops / 1e9:.1f} GFLOP/s" for name, flops in results["matmul_peak_flops"].items()
    )
    tr = recipe["train"]
    return [
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {plural(m['threads'], 'torch thread')}; CPU flags "
        f"{flags} (of {', '.join(CPU_FLAGS)}); torch {m['torch']} (CPU capability {m['cpu_capability']}). "
        f"Precision: {precision_name(m['precision'])} ({why}). Measured {m['when']}. {load_note(m)}",
        "",
        f"Recipe `{args['config']}`: AdamW lr {tr['lr']:g}, betas {tuple(tr['betas'])}, eps {tr['eps']:g}, "
        f"weight decay {tr['weight_decay']:g}, gradient clipping {tr['grad_clip']:g}, "
        f"{tr['mlm_probability']:.0%} masking, seed {recipe['seed']}. A step is one batch of "
        f"{args['batch']} x {args['seq_len']} tokens; vocabulary {results['vocab']:,}.",
        "",
        f"Matmul peak (torch.mm 2048 x 2048, best of 5): {peaks}.",
    ]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def load_note(machine: dict) -> str:
    """Whether other jobs ran alongside: the load average counts this benchmark's threads too."""
    start, end = machine["load_average_at_start"][0], machine["load_average_at_end"][0]
    note = f"Load average {start:.1f} at the start, {end:.1f} at the end"
    if max(start, end) <= machine["threads"] + 0.5:
        return note + ": nothing else ran."
    return (
        note
        + f", above this benchmark's {plural(machine['threads'], 'thread')}: other jobs shared the cores, so "
        "absolute times are inflated; ratios less so, as the steps they compare alternate."
    )


def size_of(section: dict) -> str:
    return (
        f"{NAMES[section['architecture']]} {section['num_hidden_layers']} x {section['hidden_size']} "
        f"(FFN {section['intermediate_size']})"
    )


def per_architecture(rows: list[dict], key: str, unit: str, digits: int = 2) -> str:
    """ "2.07x on BERT, 2.31x on ModernBERT": one value of each architecture's row."""
    return ", ".join(f"{r[key]:.{digits}f}{unit} on {NAMES[r['architecture']]}" for r in rows)


def target(rows: list[dict], key: str, at_least: float) -> str:
    reached = all(r[key] >= at_least for r in rows)
    return f"target: at least {at_least:g}x" + ("" if reached else ", not reached")


def systems_part(results: dict) -> list[str]:
    part = results["systems"]
    models = ", ".join(size_of(s) for s in part["models"].values())
    rows = [
        [
            NAMES[r["architecture"]],
            r["system"],
            f"{r['parameters'] / 1e6:.2f}M",
            precision_name(r["precision"]),
            f"{r['median_step_s']:.3f}",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['vs_trainer']:.2f}x",
            f"{r['vs_run_mlm']:.2f}x",
        ]
        for r in part["rows"]
    ]
    headers = ["architecture", "system", "parameters", "precision", "s/step", "tokens/s", "vs Trainer",
               "vs run_mlm"]  # fmt: skip
    ours = [r for r in part["rows"] if r["system"] == "ours"]
    same_precision = results["machine"]["precision"] == "no"
    return [
        "",
        "## Our loop vs the Trainer and run_mlm.py's defaults",
        "",
        f"{models}; {part['activation']}; {results['args']['repeats']} repeats of "
        f"{results['args']['steps']} timed steps per system, the systems in turn; median.",
        "",
        markdown_table(headers, rows),
        f"Tokens per second of our loop over those of the Hugging Face Trainer in the same precision: "
        f"{per_architecture(ours, 'vs_trainer', 'x')} ({target(ours, 'vs_trainer', 3.0)}); over those "
        f"of run_mlm.py's defaults: {per_architecture(ours, 'vs_run_mlm', 'x')} "
        f"({target(ours, 'vs_run_mlm', 5.0)}). The dense-head rows are our loop computing the MLM head "
        "at every position, as the Trainer does: from them to ours is what predicting only the masked "
        "tokens saves (the head's vocabulary-wide matmul is the biggest one of a small model); from the "
        "Trainer to them is the loop itself. "
        + (
            "In fp32 the Trainer and run_mlm rows differ only in their optimizer settings, which cost "
            "about the same, so their speeds should agree."
            if same_precision
            else "run_mlm's defaults train in fp32: their distance to the Trainer row is what bf16 buys."
        ),
    ]


def architectures_part(results: dict) -> list[str]:
    rows = []
    for r in results["architectures"]["rows"]:
        p, f, t = r["parameters"], r["model_flops_per_step"], r["tokens_per_s"]
        rows.append([
            r["system"], f"{p['bert'] / 1e6:.2f}M / {p['modernbert'] / 1e6:.2f}M",
            f"{f['bert'] / 1e9:.1f} / {f['modernbert'] / 1e9:.1f}",
            f"{t['bert']:,.0f} / {t['modernbert']:,.0f}",
            f"{r['modernbert_vs_bert']:.2f}x",
        ])  # fmt: skip
    headers = ["system", "parameters (BERT / ModernBERT)", "model GFLOP per step", "tokens/s",
               "ModernBERT / BERT"]  # fmt: skip
    ours = next(r for r in results["architectures"]["rows"] if r["system"] == "ours")
    reached = "" if ours["modernbert_vs_bert"] >= 0.9 else ", not reached"
    widths = {arch: section["intermediate_size"] for arch, section in results["systems"]["models"].items()}
    ffns = (
        f"ModernBERT's gated FFN is {widths['modernbert']} wide with three matrices, BERT's "
        f"{widths['bert']} wide with two"
    )
    if results["args"]["modernbert_ffn"] == "matched":
        title, work = "at equal parameter count", f"both do about the same matmul work per token: {ffns}"
    else:  # --modernbert-ffn same
        title, work = "at equal FFN width", f"ModernBERT has more parameters and matmul work: {ffns}"
    return [
        "",
        f"## ModernBERT vs BERT {title}",
        "",
        "From the steps of the table above.",
        "",
        markdown_table(headers, rows),
        f"In our loop ModernBERT processes {ours['modernbert_vs_bert']:.2f}x BERT's tokens per second "
        f"(target: at least 0.9x at equal parameters{reached}). Here {work}. The rest of the layer "
        "differs too: rotary position embeddings applied to queries and keys, the gate's elementwise "
        "product, normalization before attention and FFN plus a final one, no biases.",
    ]


def activations_part(results: dict) -> list[str]:
    part = results["activations"]
    rows = [
        [
            NAMES[r["architecture"]],
            r["activation"],
            f"{r['parameters'] / 1e6:.2f}M",
            f"{r['median_step_s']:.3f}",
            f"±{r['spread']:.1%}",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['vs_relu']:.3f}",
            f"{r['saved_for_backward_mb']:.0f}",
            f"{r['achieved_gflops']:.1f}",
            f"{r['mfu']:.0%}",
        ]
        for r in part["rows"]
    ]
    headers = ["architecture", "activation", "parameters", "s/step", "step spread", "tokens/s", "vs ReLU",
               "kept for backward (MB)", "GFLOP/s", "MFU"]  # fmt: skip
    helu = [r for r in part["rows"] if r["activation"].startswith("helu")]
    within = all(abs(r["vs_relu"] - 1) <= 0.02 for r in helu)
    mfus = [r["mfu"] for r in part["rows"]]
    precision = precision_name(results["machine"]["precision"])
    args = results["args"]
    return [
        "",
        "## GELU vs ReLU vs HeLU, and MFU",
        "",
        f"{', '.join(size_of(s) for s in part['models'].values())}; our loop; per architecture "
        f"{args['repeats'] * args['steps']} steps of each activation, one of each in turn; "
        f"median. Step spread: half the interquartile range of the steps.",
        "",
        markdown_table(headers, rows),
        f"HeLU's step time over ReLU's: {per_architecture(helu, 'vs_relu', '', 3)} (target: within 2%"
        f"{'' if within else ', not reached'}). HeLU computes ReLU in the forward "
        "pass. For backward it keeps a 1-byte mask in BERT; in ModernBERT's gated block it keeps its "
        "half of the up-projection, which the gate keeps anyway, and runs ReLU's own backward kernel. "
        "A gap smaller than the step spread is noise. The memory kept for the backward pass is where "
        "activations differ: GELU keeps its whole input. MFU: model matmul FLOPs per second over the "
        f"{precision} matmul peak, {min(mfus):.0%} to {max(mfus):.0%} here.",
    ]


def telemetry_part(results: dict) -> list[str]:
    part = results["telemetry"]
    window = part["recipe_window"]
    rows = [
        [NAMES[r["architecture"]], r["telemetry"], f"{r['median_step_s']:.3f}", f"{r['overhead']:+.1%}"]
        for r in part["rows"]
    ]
    worst = max(r["overhead"] for r in part["rows"])
    share = window["window"] / max(window["every"], 1)
    return [
        "",
        f"## Telemetry overhead ({part['activation']}, our loop)",
        "",
        "Hooks on every step, statistics copied to the CPU after every step (the worst case).",
        "",
        markdown_table(["architecture", "telemetry", "s/step", "overhead while a window is open"], rows),
        f"The loop keeps the hooks only during a telemetry window, {window['window']} of every "
        f"{window['every']} steps in this recipe, so over a run the cost is {share:.0%} of the overhead "
        f"above: at most {max(worst, 0) * share:.1%} per step here.",
    ]


def markdown(results: dict) -> str:
    lines = header(results)
    parts = {"systems": systems_part, "architectures": architectures_part, "activations": activations_part,
             "telemetry": telemetry_part}  # fmt: skip
    for key, part in parts.items():
        if key in results:
            lines += part(results)
    return "\n".join(lines) + "\n"


PAGE_TITLE = """# Pretraining benchmark

Our training step against the Hugging Face Trainer and run_mlm.py's defaults, the two architectures,
the activations' step time and MFU, and the telemetry's cost, in one section per kind of CPU (the
kind decides the precision: `auto` is bf16 only where bf16 is native).
"""


def write_page(json_path, markdown_path, results: dict) -> None:
    """``results`` as its CPU kind's section of the JSON and the page; other kinds' sections stay."""
    write_per_cpu_kind(json_path, markdown_path, results, markdown, PAGE_TITLE)
