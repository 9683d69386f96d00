"""Finished pretraining runs side by side: their logged series (validation loss, FFN zeros, dead
neurons), a Markdown table of their ``summary.json``, and their seed replicates grouped and compared
with a baseline activation (Welch's t). scripts/plot_pretraining.py draws and writes them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bert_helu.models.provenance import pretraining_provenance
from bert_helu.runtime.errors import UserError

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
        raise UserError(f"--baseline {baseline}: no run of that activation below {runs_dir}")
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
