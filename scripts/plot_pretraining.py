"""Pretraining curves of several runs side by side: validation MLM loss, FFN zeros and dead neurons.

    .venv/bin/python scripts/plot_pretraining.py runs/replicate_cpu --output pretraining.png

Reads ``<run>/metrics.jsonl`` of every run directory below the given folder (the pretrain program's
JSONL log) and writes one PNG with three panels, a JSON of the plotted series next to it, and a
Markdown table of the finished runs' ``summary.json`` (steps, tokens, losses, time, FFN statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="a folder whose subfolders are pretraining runs")
    parser.add_argument("--output", type=Path, required=True)
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
    args.output.with_suffix(".md").write_text(summary_table(args.runs))
    print(f"wrote {args.output} (+ .json, .md)")


if __name__ == "__main__":
    main()
