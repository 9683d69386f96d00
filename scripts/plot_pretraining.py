"""Pretraining curves of several runs side by side: validation MLM loss, FFN zeros and dead neurons.

    .venv/bin/python scripts/plot_pretraining.py runs/replicate_cpu --output pretraining.png --baseline relu

Reads ``<run>/metrics.jsonl`` of every run directory below the given folder (the pretrain program's
JSONL log) and writes one PNG with three panels (one colour per activation, one line style per
seed), a JSON of the plotted series next to it, and a Markdown table of the finished runs'
``summary.json`` (steps, tokens, losses, time, FFN statistics). Runs of one recipe and activation
that differ only in their seed are replicates: the Markdown also gets their final validation loss as
mean ± std, and with ``--baseline ACTIVATION`` each row's difference from that activation's row with
its Welch t interval and p. With replicates of two HeLU alphas or more, ``<output>-alpha.png`` shows
the final loss against alpha (mean and 95% t interval per alpha; the other activations as bands).
The tables are bert_helu.analysis.pretraining_runs'; this script draws the figures and writes the files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bert_helu
from bert_helu.analysis.pretraining_runs import (  # noqa: E402
    PANELS,
    alpha_curve,
    read_series,
    read_summaries,
    replicate_groups,
    replicate_table,
    summary_table,
)
from bert_helu.runtime.errors import UserError  # noqa: E402

STYLES = ["-", "--", ":", "-."]


def curves(runs_dir: Path, series: dict, output: Path) -> None:
    """Three panels; a run's colour is its activation's, its line style its place among the replicates."""
    activation = {run.name: s["activation"] for run, s in read_summaries(runs_dir)}
    colours = {a: f"C{i}" for i, a in enumerate(sorted(set(activation.values())))}
    place = {run: i for g in replicate_groups(runs_dir).values() for i, run in enumerate(g["runs"])}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.8))
    for ax, (key, title) in zip(axes, PANELS.items(), strict=True):
        labelled = set()
        for name, values in series.items():
            if not values[key]:
                continue
            steps, ys = zip(*values[key], strict=True)
            act = activation.get(name)  # None: a run still going (no summary yet)
            label = name if act is None else (act if act not in labelled else None)
            labelled.add(act)
            ax.plot(steps, ys, label=label, color=colours.get(act, "0.5"), linewidth=1.2,
                    linestyle=STYLES[place.get(name, 0) % len(STYLES)])  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def loss_versus_alpha(points: list[dict], output: Path) -> bool:
    """Final validation loss against HeLU's alpha; False (nothing drawn) without two replicated alphas."""
    helu = sorted((p for p in points if p["alpha"] is not None and p["n"] > 1), key=lambda p: p["alpha"])
    if len(helu) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    alphas = [p["alpha"] for p in helu]
    for i, p in enumerate(q for q in points if q["alpha"] is None and q["n"] > 1):
        ax.axhspan(p["low"], p["high"], color=f"C{i + 1}", alpha=0.15)
        ax.axhline(p["mean"], color=f"C{i + 1}", linewidth=1, label=f"{p['activation']} (n={p['n']})")
    means = [p["mean"] for p in helu]
    errors = [[p["mean"] - p["low"] for p in helu], [p["high"] - p["mean"] for p in helu]]
    counts = ",".join(str(p["n"]) for p in helu)
    ax.errorbar(alphas, means, yerr=errors, color="C0", marker="o", capsize=4, label=f"HeLU (n={counts})")
    ax.set_xscale("log")
    ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
    ax.set_xlabel("HeLU alpha")
    ax.set_ylabel("final validation MLM loss")
    ax.set_title("final loss: mean and 95% t interval over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="a folder whose subfolders are pretraining runs")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--baseline", help="activation the replicate groups are compared with (e.g. relu)")
    args = parser.parse_args()
    series = {p.parent.name: read_series(p) for p in sorted(args.runs.glob("*/metrics.jsonl"))}
    if not series:
        raise SystemExit(f"error: no */metrics.jsonl below {args.runs}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        curves(args.runs, series, args.output)
        tables = [summary_table(args.runs), replicate_table(args.runs, args.baseline)]
        alpha_figure = args.output.with_name(f"{args.output.stem}-alpha.png")
        drew = loss_versus_alpha(alpha_curve(args.runs), alpha_figure)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    args.output.with_suffix(".json").write_text(json.dumps(series, indent=1))
    args.output.with_suffix(".md").write_text("\n".join(filter(None, tables)))
    print(f"wrote {args.output} (+ .json, .md{', ' + alpha_figure.name if drew else ''})")


if __name__ == "__main__":
    main()
