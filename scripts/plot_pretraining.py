"""Pretraining curves of several runs side by side: validation MLM loss, FFN zeros and dead neurons.

    .venv/bin/python scripts/plot_pretraining.py runs/replicate_cpu --output pretraining.png

Reads ``<run>/metrics.jsonl`` of every run directory below the given folder (the pretrain program's
JSONL log) and writes one PNG with three panels, a JSON of the plotted series next to it, and a
Markdown table of the finished runs' ``summary.json`` (steps, tokens, losses, time, FFN statistics).
Runs of one recipe and activation that differ only in their seed are replicates: the Markdown also
gets their final validation loss as mean ± std, and with ``--baseline ACTIVATION`` each row's
difference from that activation's row with Welch's t-test (the replicates' losses as the samples).
The tables are bert_helu.analysis.pretraining_runs'; this script draws the figure and writes the files.
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
    read_series,
    replicate_table,
    summary_table,
)
from bert_helu.runtime.errors import UserError  # noqa: E402


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
    try:
        tables = [summary_table(args.runs), replicate_table(args.runs, args.baseline)]
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    args.output.with_suffix(".md").write_text("\n".join(filter(None, tables)))
    print(f"wrote {args.output} (+ .json, .md)")


if __name__ == "__main__":
    main()
