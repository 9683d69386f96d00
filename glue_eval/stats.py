"""``python -m glue_eval stats``: FFN sparsity, dead neurons and pre-activation histograms (Figure 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bert_helu.activations.plugins import add_import_argument, import_modules
from bert_helu.analysis.ffn_stats import collect_ffn_stats
from bert_helu.analysis.inputs import describe, load_encoder, load_texts, quiet_transformers
from bert_helu.analysis.plots import plot_layer_sparsity, plot_preactivation_histograms
from bert_helu.analysis.reports import machine, markdown_table, write_outputs
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.named_checkpoints import parse_checkpoints
from bert_helu.runtime.paths import display_path

HELP = "per-layer exact-zero fraction, dead-neuron rate and pre-activation histograms of FFN activations"


DESCRIPTION = """Per FFN layer of each checkpoint: the share of activation outputs that are exactly zero, the
share of neurons never positive on the data ("dead"), the share of pre-activations below zero and in
HeLU's band (-alpha, 0], and pre-activation histograms. Writes stats.json, stats.md, preactivations.png
and sparsity.png to --output-dir."""

EPILOG = """example:
  python -m glue_eval stats --checkpoint gelu=runs/gelu/final helu=runs/helu/final --data sst2 \\
      --glue-dir ../shared/data/glue_data --max-samples 512"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", nargs="+", required=True, metavar="[NAME=]DIR",
        help="one or more checkpoint directories (ours or stock transformers BERT-family); NAME labels "
        "the rows and plots (default: the folder name, or its parent's for .../final)",
    )  # fmt: skip
    parser.add_argument(
        "--data",
        required=True,
        help="a GLUE task name (its dev set; needs --glue-dir), or a text file or folder of text files",
    )
    parser.add_argument(
        "--glue-dir", default=None, metavar="DIR", help="glue_data folder in the original TSV layout"
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        default=512,
        help="texts drawn at random (seeded) from the data (default: 512)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument(
        "--max-length", type=int, default=128, help="tokens per text, longer ones are cut (default: 128)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="HeLU band (-alpha, 0] to count and mark (default: 0.05)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sample (default: 0)")
    parser.add_argument(
        "--output-dir",
        default=None,
        metavar="DIR",
        help="where to write (default: results/stats/<data name>)",
    )
    add_import_argument(parser)


def run(args: argparse.Namespace) -> dict:
    import_modules(args.imports)
    quiet_transformers()
    checkpoints = {c.name: c.path for c in parse_checkpoints(args.checkpoint)}
    if args.max_samples < 1 or args.batch_size < 1 or args.max_length < 2:
        raise UserError("--max-samples and --batch-size must be >= 1, --max-length >= 2")
    texts = load_texts(args.data, args.glue_dir, args.max_samples, args.seed)
    out_dir = Path(args.output_dir or Path("results") / "stats" / Path(args.data).name)
    results = {}
    for name, path in checkpoints.items():
        model, tokenizer = load_encoder(path)
        stats = collect_ffn_stats(
            model, tokenizer, texts, args.batch_size, args.max_length, band_alpha=args.alpha
        )
        results[name] = {"checkpoint": display_path(path), **describe(model), **stats}
        mean = stats["mean"]
        print(
            f"{name}: {describe(model)['activation']}, zeros {mean['zero_fraction']:.3f}, "
            f"dead {mean['dead_fraction']:.3f}, in band {mean.get('band_fraction', 0):.3f} "
            f"({stats['tokens']} tokens)"
        )
    report = {"data": display_path(args.data), "alpha": args.alpha, "machine": machine(), "models": results}
    paths = write_outputs(out_dir, "stats", report, _markdown(report))
    plots = {
        "preactivations": plot_preactivation_histograms(results, out_dir / "preactivations.png", args.alpha),
        "sparsity": plot_layer_sparsity(results, out_dir / "sparsity.png"),
    }
    for kind, path in {**paths, **plots}.items():
        print(f"wrote {kind}: {path}")
    return report


def _markdown(report: dict) -> str:
    headers = ["model", "activation", "tokens", "zeros (mean)", "dead (mean)", "negative pre-act",
               f"in band (-{report['alpha']:g},0]", "zeros per layer"]  # fmt: skip
    rows = []
    for name, stats in report["models"].items():
        mean = stats["mean"]
        per_layer = " ".join(f"{entry['zero_fraction']:.2f}" for entry in stats["layers"])
        rows.append([name, stats["activation"], stats["tokens"], mean["zero_fraction"],
                     mean["dead_fraction"], mean.get("negative_fraction"), mean.get("band_fraction"),
                     per_layer])  # fmt: skip
    return f"FFN statistics on `{report['data']}`\n\n" + markdown_table(headers, rows)
