"""Finished pretraining runs side by side: their logged series (validation loss, FFN zeros, dead
neurons), a Markdown table of their ``summary.json``, and their seed replicates grouped and compared
with a baseline activation (Welch's t). This is the one reader of run summaries for the tables,
``glue_eval plan --runs`` and the claims table; scripts/plot_pretraining.py draws and writes them."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from bert_helu.analysis.ttest import welch
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


def read_summaries(dirs) -> list[tuple[Path, dict]]:
    """``(run folder, summary)`` of every finished run in ``dirs`` (each a run folder or a folder of
    runs), each summary checked for its activation and a finite final validation loss."""
    files = []
    for folder in map(Path, [dirs] if isinstance(dirs, str | Path) else dirs):
        if (folder / "summary.json").is_file():
            files.append(folder / "summary.json")
        elif folder.is_dir():
            files.extend(sorted(folder.glob("*/summary.json")))
        else:
            raise UserError(f"{folder}: no such directory")
    runs = []
    for file in files:
        try:
            summary = json.loads(file.read_text())
            loss, _activation = summary["final_validation_loss"], summary["activation"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{file}: not a pretraining summary with final_validation_loss ({err})") from None
        if isinstance(loss, bool) or not isinstance(loss, int | float) or not math.isfinite(loss):
            raise UserError(f"{file}: final_validation_loss must be a finite number, got {loss!r}")
        runs.append((file.parent, summary))
    return runs


def summary_table(runs_dir: Path) -> str:
    """One row per finished run: what it was given (time, steps, tokens) and where it ended."""
    rows = [
        "| run | steps | tokens seen | train time | tokens/s | val MLM loss (step 0 -> end) "
        "| FFN zeros | dead neurons (window) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for run, s in read_summaries(runs_dir):
        first = next((v for step, v in read_series(run / "metrics.jsonl")["val/loss"] if step == 0), math.nan)
        tel = s.get("telemetry") or {}
        rows.append(
            f"| {run.name} | {s['steps']:,} | {s['tokens_seen']:,} "
            f"| {s['train_time_s']:.0f} s | {s['tokens_per_s']:,.0f} "
            f"| {first:.2f} -> {s['final_validation_loss']:.3f} "
            f"| {tel.get('zero_fraction', math.nan):.1%} | {tel.get('dead_fraction', math.nan):.1%} |"
        )
    return "\n".join(rows) + "\n"


def replicate_groups(dirs) -> dict[str, dict]:
    """Seed replicates: the finished runs of one pretraining recipe and activation, as
    ``{"run-a, run-b": {"activation", "runs", "losses"}}`` (final validation losses). A run whose
    recipe is unknown (no config in its summary) is a group of its own."""
    groups: dict[tuple, dict] = {}
    for run, s in read_summaries(dirs):
        recipe = pretraining_provenance(run / "final", activation=s["activation"])["recipe"]
        group = groups.setdefault((recipe or run.name, s["activation"]), {"activation": s["activation"]})
        group.setdefault("runs", []).append(run.name)
        group.setdefault("losses", []).append(float(s["final_validation_loss"]))
    return {", ".join(g["runs"]): g for g in groups.values()}


def losses_by_activation(dirs) -> dict[str, list[float]]:
    """Final validation losses per activation, for a study whose runs share one recipe."""
    losses: dict[str, list[float]] = {}
    for name, g in replicate_groups(dirs).items():
        if g["activation"] in losses:
            raise UserError(
                f"{name}: runs of {g['activation']} from more than one pretraining recipe (or without "
                "one in their summary.json): give the runs of one study"
            )
        losses[g["activation"]] = g["losses"]
    return losses


def replicate_table(runs_dir: Path, baseline: str | None, level: float = 0.05) -> str:
    """One row per group of replicates; the difference from ``baseline``'s row with its Welch t
    interval and p (a mark where p < level). Empty when no group has more than one run (there is
    nothing to add to the summary table)."""
    groups = replicate_groups(runs_dir)
    if all(len(g["runs"]) == 1 for g in groups.values()):
        return ""
    base = next((g for g in groups.values() if g["activation"] == baseline), None)
    if baseline and base is None:
        raise UserError(f"--baseline {baseline}: no run of that activation below {runs_dir}")
    rows = [
        "| runs | activation | n | final val MLM loss (mean ± std) | range | difference from "
        f"{baseline or 'baseline'} | {100 * (1 - level):.0f}% interval | Welch p | |",
        "|---|---|---:|---|---|---:|---|---:|---|",
    ]
    for name, g in groups.items():
        losses = g["losses"]
        std = statistics.stdev(losses) if len(losses) > 1 else math.nan
        difference = interval = p = mark = ""
        if base is not None and g is not base:
            difference = f"{statistics.mean(losses) - statistics.mean(base['losses']):+.3f}"
            if max(len(losses), len(base["losses"])) > 1:
                est = welch(losses, base["losses"], level)
                interval, p = f"[{est.low:+.3f}, {est.high:+.3f}]", f"{est.p_value:.3f}"
                mark = "*" if est.p_value < level else ""
        rows.append(
            f"| {name} | {g['activation']} | {len(losses)} | {statistics.mean(losses):.3f} ± {std:.3f} "
            f"| {min(losses):.3f}-{max(losses):.3f} | {difference} | {interval} | {p} | {mark} |"
        )
    notes = (
        f"Welch's t-test on the replicates' final losses, two-sided; * = p < {level:g}; a row of one run "
        "is given the other row's spread."
    )
    return "\n".join(rows) + "\n\n" + notes + "\n"


def alpha_curve(runs_dir: Path, level: float = 0.05) -> list[dict]:
    """Final validation loss of each replicate group with its mean's t interval, and the group's
    HeLU alpha (None for other activations), for the loss-versus-alpha figure."""
    from bert_helu.activations.registry import build_activation  # torch: only where a figure is drawn

    points = []
    for name, g in replicate_groups(runs_dir).items():
        activation = build_activation(g["activation"])
        mean = statistics.mean(g["losses"])
        low = high = mean
        if len(g["losses"]) > 1:
            est = welch(g["losses"], level=level)
            low, high = est.low, est.high
        alpha = getattr(activation, "alpha", None) if g["activation"].startswith("helu") else None
        points.append({"runs": name, "activation": g["activation"], "alpha": alpha, "n": len(g["losses"]),
                       "mean": mean, "low": low, "high": high})  # fmt: skip
    return points
