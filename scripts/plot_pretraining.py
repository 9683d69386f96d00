"""Pretraining curves of several runs side by side: validation MLM loss, FFN zeros and dead neurons.

    .venv/bin/python scripts/plot_pretraining.py runs/replicate_cpu --output pretraining.png

Reads ``<run>/metrics.jsonl`` of every run directory below the given folder (the pretrain program's
JSONL log) and writes one PNG with three panels plus a JSON of the plotted series next to it.
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
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
