"""Which of the HeLU paper's claims hold in a study of ours: one row per claim, with the measured
difference, its interval and p, a verdict, and the difference the study could detect.

    python scripts/paper_claims.py --compare compare.json --int8 int8.json --plan plan.json \
        --runs docs/replication/sweep/runs --output docs/replication/sweep/claims.md

The inputs are what the study's commands write (docs/RESULTS.md gives them): ``glue_eval compare
--baseline relu --format json`` (GLUE differences from ReLU), ``glue_eval compare --delta int8
--format json`` (each row's INT8 delta against 0), ``glue_eval plan --format json`` (the detectable
difference at the study's size and at 10 seeds), and the pretraining runs' ``summary.json`` files
(final validation MLM loss, tested with the same Welch t-test).

A verdict is "supported" when the difference is significant in the paper's direction,
"contradicted" when it is significant the other way or its interval excludes the paper's size, and
"not resolvable here" when the interval holds both zero and the paper's size. The paper's numbers
are BERT-base on full GLUE; a CPU study's are smaller models and budgets, so a size compares only
roughly, a direction more fairly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bert_helu
from bert_helu.analysis.reports import markdown_table  # noqa: E402
from bert_helu.analysis.ttest import detectable_difference, welch  # noqa: E402
from bert_helu.runtime.atomic import atomic_write_text  # noqa: E402

# (claim, where in the paper, row's activation, column, the paper's difference from ReLU in points)
GLUE_CLAIMS = [
    ("HeLU α=1 collapses: GLUE average", "Table 2: 70.4 vs 76.7", "helu:alpha=1", "Avg (paper)", -6.3),
    ("HeLU α=1 collapses: STS-B", "Table 2: 18.2 vs 74.3", "helu:alpha=1", "STS-B Spearman", -56.1),
    ("HeLU α=2 collapses: GLUE average", "Table 2: 51.9 vs 76.7", "helu:alpha=2", "Avg (paper)", -24.8),
    ("HeLU α=0.05 beats ReLU: GLUE average", "Table 2: +1.35", "helu:alpha=0.05", "Avg (paper)", 1.35),
    ("HeLU α=0.05 beats ReLU: STS-B", "Table 2: +2.6", "helu:alpha=0.05", "STS-B Spearman", 2.6),
    ("GELU beats ReLU: GLUE average", "Table 2: +1.65", "gelu", "Avg (paper)", 1.65),
]
# (claim, where, activation, the paper's INT8-minus-fp32 delta of the GLUE average)
INT8_CLAIMS = [
    ("HeLU α=0.05 gains from INT8", "Table 3: +0.81", "helu:alpha=0.05", 0.81),
    ("ReLU loses from INT8", "Table 3: negative", "relu", -1.0),
    ("GELU loses from INT8", "Table 3: negative", "gelu", -1.0),
]
# Table 1 (vision): small alphas best, large ones hurt. Here: final validation MLM loss against
# ReLU's (lower is better), so "hurts" is a higher loss. (claim, activation, direction: +1 higher)
LOSS_CLAIMS = [
    ("α=2 pretrains worse than ReLU (MLM loss)", "helu:alpha=2", 1),
    ("α=1 pretrains worse than ReLU (MLM loss)", "helu:alpha=1", 1),
    ("α=0.5 pretrains worse than ReLU (MLM loss)", "helu:alpha=0.5", 1),
    ("α=0.05 pretrains no worse than ReLU (MLM loss)", "helu:alpha=0.05", -1),
    ("α=0.01 pretrains no worse than ReLU (MLM loss)", "helu:alpha=0.01", -1),
]


def verdict(difference, low, high, p, claimed, level) -> str:
    if p < level and difference * claimed > 0:
        return "supported"
    if p < level or not low <= claimed <= high:
        return "contradicted"
    return "not resolvable here"


def row_of(comparisons: list[dict], activation: str, column: str) -> dict | None:
    for c in comparisons:
        if c["row"].endswith(f"({activation})") and c["column"] == column:
            return c
    return None


def detectable(plan: dict, section_word: str, column: str) -> dict[int, float]:
    for section in plan["sections"]:
        if section_word in section["title"]:
            for q in section["quantities"]:
                if q["column"] == column:
                    return {d["pretrain_seeds"]: d["detectable"] for d in q["designs"]}
    return {}


def fmt(value, digits=2) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def glue_rows(compare, int8, plan, level, seeds) -> list[list]:
    rows = []
    for claim, where, activation, column, claimed in GLUE_CLAIMS:
        c = row_of(compare["comparisons"], activation, column)
        sizes = detectable(plan, "GLUE", column)
        rows.append(claim_row(claim, where, c, claimed, level, sizes, seeds, "points"))
    for claim, where, activation, claimed in INT8_CLAIMS:
        c = row_of(int8["comparisons"], activation, "Avg (paper)")
        rows.append(claim_row(claim, where, c, claimed, level, {}, seeds, "points"))
    return rows


def claim_row(claim, where, c, claimed, level, sizes, seeds, unit) -> list:
    if c is None:
        return [claim, where, "not measured here", "", "", "", "", ""]
    d, lo, hi, p = c["difference"], c["low"], c["high"], c["p_value"]
    return [
        claim, where, verdict(d, lo, hi, p, claimed, level), fmt(d), f"[{lo:+.2f}, {hi:+.2f}]", f"{p:.3g}",
        f"{sizes[seeds]:.2f}" if seeds in sizes else "", f"{sizes[10]:.2f}" if 10 in sizes else "",
    ]  # fmt: skip


def final_losses(runs_dir: Path) -> dict[str, list[float]]:
    losses = defaultdict(list)
    for summary_file in sorted(runs_dir.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if summary.get("final_validation_loss") is not None:
            losses[summary["activation"]].append(summary["final_validation_loss"])
    return dict(losses)


def loss_rows(losses: dict[str, list[float]], level: float, seeds: int) -> list[list]:
    relu, rows = losses.get("relu", []), []
    for claim, activation, direction in LOSS_CLAIMS:
        mine = losses.get(activation, [])
        if len(mine) < 2 or len(relu) < 2:
            rows.append([claim, "Table 1 (vision)", "not measured here" if not mine else "needs 2 seeds",
                         "", "", "", "", ""])  # fmt: skip
            continue
        est = welch(mine, relu, level)
        # supported: significant in the claimed direction; "no worse" is contradicted only by a
        # significantly higher loss
        if est.p_value < level:
            verdict_ = "supported" if est.difference * direction > 0 else "contradicted"
        else:
            verdict_ = "supported (no difference found)" if direction < 0 else "not resolvable here"
        variance = _within_variance(losses)
        rows.append([
            claim, "Table 1 (vision)", verdict_, fmt(est.difference, 3), f"[{est.low:+.3f}, {est.high:+.3f}]",
            f"{est.p_value:.3g}", f"{detectable_difference(variance, seeds, 0.8, level):.3f}",
            f"{detectable_difference(variance, 10, 0.8, level):.3f}",
        ])  # fmt: skip
    return rows


def _within_variance(losses: dict[str, list[float]]) -> float:
    """The seed-to-seed variance of the final loss, pooled over activations."""
    num = sum(sum((v - sum(vals) / len(vals)) ** 2 for v in vals) for vals in losses.values())
    den = sum(len(vals) - 1 for vals in losses.values())
    return num / den if den > 0 else float("nan")


HEADERS = ["claim", "paper", "verdict", "difference", "95% interval", "p", "detectable (this study)",
           "detectable (10 seeds)"]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare", required=True, help="glue_eval compare --baseline relu --format json")
    parser.add_argument("--int8", required=True, help="glue_eval compare --delta int8 --format json")
    parser.add_argument("--plan", required=True, help="glue_eval plan --format json")
    parser.add_argument("--runs", required=True, help="folder of pretraining runs (summary.json each)")
    parser.add_argument("--output", required=True, help="the Markdown table")
    args = parser.parse_args(argv)
    compare, int8, plan = (json.loads(Path(f).read_text()) for f in (args.compare, args.int8, args.plan))
    level = compare["level"]
    losses = final_losses(Path(args.runs))
    seeds = min((len(v) for v in losses.values()), default=0)
    rows = glue_rows(compare, int8, plan, level, seeds) + loss_rows(losses, level, seeds)
    table = markdown_table(HEADERS, rows)
    runs = ", ".join(f"{a}: {len(v)}" for a, v in sorted(losses.items()))
    text = (
        f"Pretraining seeds per activation: {runs}. Differences are from ReLU (GLUE in points of the dev "
        f"metric x100; MLM loss in nats), INT8 deltas against 0; {100 * (1 - level):.0f}% intervals and p "
        "from Welch's t-test over the pretraining seeds. Detectable: the difference found with 80% power "
        f"at this study's {seeds} seeds per activation and at 10.\n\n{table}"
    )
    atomic_write_text(args.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
