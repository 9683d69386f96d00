"""Pretraining curves of several runs side by side: validation MLM loss, FFN zeros and dead neurons.

    .venv/bin/python scripts/plot_pretraining.py runs/replicate_cpu --output pretraining.png

Reads ``<run>/metrics.jsonl`` of every run directory below the given folder (the pretrain program's
JSONL log) and writes one PNG with three panels, a JSON of the plotted series next to it, and a
Markdown table of the finished runs' ``summary.json`` (steps, tokens, losses, time, FFN statistics).
Runs of one recipe and activation that differ only in their seed are replicates: the Markdown also
gets their final validation loss as mean ± std, and with ``--baseline ACTIVATION`` each row's
difference from that activation's row with Welch's t-test (the replicates' losses as the samples).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bert_helu
from bert_helu.models.provenance import pretraining_provenance  # noqa: E402

PANELS = {
    "val/loss": "validation MLM loss",
    "telemetry/zero_fraction": "FFN activations exactly zero",
    "telemetry/dead_fraction": "dead FFN neurons (never > 0 in a window)",
}


def read_series(metrics_file: Path) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {key: [] for key in PANELS}
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        for key in PANELS:
            if key in record:
                series[key].append((record["step"], record[key]))
    return series


def summary_table(runs_dir: Path) -> str:
    """One row per finished run: what it was given (time, steps, tokens) and where it ended."""
    rows = [
        "| run | steps | tokens seen | train time | tokens/s | val MLM loss (step 0 -> end) "
        "| FFN zeros | dead neurons (window) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for summary_file in sorted(runs_dir.glob("*/summary.json")):
        s = json.loads(summary_file.read_text())
        first = next(
            (v for step, v in read_series(summary_file.parent / "metrics.jsonl")["val/loss"] if step == 0),
            float("nan"),
        )
        tel = s.get("telemetry") or {}
        rows.append(
            f"| {summary_file.parent.name} | {s['steps']:,} | {s['tokens_seen']:,} "
            f"| {s['train_time_s']:.0f} s | {s['tokens_per_s']:,.0f} "
            f"| {first:.2f} -> {s['final_validation_loss']:.3f} "
            f"| {tel.get('zero_fraction', float('nan')):.1%} | {tel.get('dead_fraction', float('nan')):.1%} |"
        )
    return "\n".join(rows) + "\n"


def replicate_groups(runs_dir: Path) -> dict[str, dict]:
    """Final validation losses of the finished runs, grouped by (pretraining recipe, activation)."""
    groups: dict[tuple, dict] = {}
    for summary_file in sorted(runs_dir.glob("*/summary.json")):
        s, run = json.loads(summary_file.read_text()), summary_file.parent.name
        recipe = pretraining_provenance(summary_file.parent / "final", activation=s["activation"])["recipe"]
        group = groups.setdefault((recipe or run, s["activation"]), {"activation": s["activation"]})
        group.setdefault("runs", []).append(run)
        group.setdefault("losses", []).append(s["final_validation_loss"])
    return {", ".join(g["runs"]): g for g in groups.values()}


def replicate_table(runs_dir: Path, baseline: str | None) -> str:
    """One row per group of replicates; the difference from ``baseline``'s row and Welch's p.
    Empty when no group has more than one run (there is nothing to add to the summary table)."""
    from scipy.stats import ttest_ind

    groups = replicate_groups(runs_dir)
    if all(len(g["runs"]) == 1 for g in groups.values()):
        return ""
    base = next((g for g in groups.values() if g["activation"] == baseline), None)
    if baseline and base is None:
        raise SystemExit(f"error: --baseline {baseline}: no run of that activation below {runs_dir}")
    rows = [
        "| runs | activation | n | final val MLM loss (mean ± std) | range | difference from "
        f"{baseline or 'baseline'} | Welch p |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for name, g in groups.items():
        losses = g["losses"]
        std = statistics.stdev(losses) if len(losses) > 1 else float("nan")
        difference = p = ""
        if base is not None and g is not base:
            difference = f"{statistics.mean(losses) - statistics.mean(base['losses']):+.3f}"
            if len(losses) > 1 and len(base["losses"]) > 1:
                p = f"{ttest_ind(losses, base['losses'], equal_var=False).pvalue:.3f}"
        rows.append(
            f"| {name} | {g['activation']} | {len(losses)} | {statistics.mean(losses):.3f} ± {std:.3f} "
            f"| {min(losses):.3f}-{max(losses):.3f} | {difference} | {p} |"
        )
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="a folder whose subfolders are pretraining runs")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--baseline", help="activation the replicate groups are compared with (e.g. relu)")
    args = parser.parse_args()
    runs = {p.parent.name: read_series(p) for p in sorted(args.runs.glob("*/metrics.jsonl"))}
    if not runs:
        raise SystemExit(f"error: no */metrics.jsonl below {args.runs}")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for ax, (key, title) in zip(axes, PANELS.items(), strict=True):
        for name, series in runs.items():
            if series[key]:
                steps, values = zip(*series[key], strict=True)
                ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    args.output.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    tables = [summary_table(args.runs), replicate_table(args.runs, args.baseline)]
    args.output.with_suffix(".md").write_text("\n".join(filter(None, tables)))
    print(f"wrote {args.output} (+ .json, .md)")


if __name__ == "__main__":
    main()
