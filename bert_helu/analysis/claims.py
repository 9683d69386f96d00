"""The HeLU paper's claims against a study's results: one row per claim, with the measured difference,
its interval and p, a verdict, and the difference the study could detect (scripts/paper_claims.py).

A verdict is "supported" when the difference is significant in the paper's direction,
"contradicted" when it is significant the other way, "paper's size ruled out" when it is not
significant but its interval excludes the paper's difference, and "not resolvable here" when the
interval holds both zero and the paper's difference. The paper's numbers are BERT-base on full GLUE;
a CPU study's models and budgets are smaller, so a size compares only roughly, a direction more fairly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bert_helu.analysis.reports import markdown_table
from bert_helu.analysis.ttest import welch
from bert_helu.runtime.errors import UserError

# (claim, where in the paper, row's activation, column, the paper's difference from ReLU in points)
GLUE_CLAIMS = [
    ("HeLU α=1 collapses: GLUE average", "Table 2: 70.4 vs 76.7", "helu:alpha=1", "Avg (paper)", -6.3),
    ("HeLU α=1 collapses: STS-B", "Table 2: 18.2 vs 74.3", "helu:alpha=1", "STS-B Spearman", -56.1),
    ("HeLU α=2 collapses: GLUE average", "Table 2: 51.9 vs 76.7", "helu:alpha=2", "Avg (paper)", -24.8),
    ("HeLU α=0.05 beats ReLU: GLUE average", "Table 2: +1.35", "helu:alpha=0.05", "Avg (paper)", 1.35),
    ("HeLU α=0.05 beats ReLU: STS-B", "Table 2: +2.6", "helu:alpha=0.05", "STS-B Spearman", 2.6),
    ("GELU beats ReLU: GLUE average", "Table 2: +1.65", "gelu", "Avg (paper)", 1.65),
]
# (claim, where, activation, the paper's INT8-minus-fp32 delta of the GLUE average: a number, or the
# sign alone, -0.0 or +0.0, where the claim gives no size)
INT8_CLAIMS = [
    ("HeLU α=0.05 gains from INT8", "Table 3: +0.81", "helu:alpha=0.05", 0.81),
    ("ReLU loses from INT8", "Table 3: negative", "relu", -0.0),
    ("GELU loses from INT8", "Table 3: negative", "gelu", -0.0),
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
    """``claimed``: the paper's difference; a signed zero for a claim of direction alone."""
    sign = math.copysign(1.0, claimed)
    if p < level:
        return "supported" if difference * sign > 0 else "contradicted"
    if claimed != 0 and not low <= claimed <= high:
        return "paper's size ruled out"
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


def study_seeds(plan: dict) -> int:
    """Pretraining seeds per row of the pilot the plan was made from."""
    components = plan["sections"][0]["quantities"][0]["components"]
    return components["replicates"] // components["rows"]


def loss_rows(losses: dict[str, list[float]], plan: dict, level: float) -> list[list]:
    """``losses``: final validation losses per activation (pretraining_runs.losses_by_activation); the
    detectable differences come from the plan's MLM-loss section (``glue_eval plan --runs``)."""
    relu, rows = losses.get("relu", []), []
    sizes = detectable(plan, "Pretraining", "MLM loss")
    for claim, activation, direction in LOSS_CLAIMS:
        mine = losses.get(activation, [])
        if len(mine) < 2 or len(relu) < 2:
            rows.append([claim, "Table 1 (vision)", "not measured here" if not mine else "needs 2 seeds",
                         "", "", "", "", ""])  # fmt: skip
            continue
        est = welch(mine, relu, level)
        # "no worse than ReLU" is supported only by a significantly lower loss: an interval that holds
        # zero holds worse losses too, so it resolves nothing
        if est.p_value < level:
            verdict_ = "supported" if est.difference * direction > 0 else "contradicted"
        else:
            verdict_ = "not resolvable here"
        seeds = min(len(mine), len(relu))
        rows.append([
            claim, "Table 1 (vision)", verdict_, fmt(est.difference, 3), f"[{est.low:+.3f}, {est.high:+.3f}]",
            f"{est.p_value:.3g}", f"{sizes[seeds]:.3f}" if seeds in sizes else "",
            f"{sizes[10]:.3f}" if 10 in sizes else "",
        ])  # fmt: skip
    return rows


HEADERS = ["claim", "paper", "verdict", "difference", "95% interval", "p", "detectable (this study)",
           "detectable (10 seeds)"]  # fmt: skip


def claims_page(compare: dict, int8: dict, plan: dict, losses: dict[str, list[float]]) -> str:
    """The claims table with its one-paragraph header, from the JSON of ``glue_eval compare`` (against
    ReLU), ``glue_eval compare --delta int8``, ``glue_eval plan`` and the runs' final losses."""
    level = compare["level"]
    seeds = study_seeds(plan)
    rows = glue_rows(compare, int8, plan, level, seeds) + loss_rows(losses, plan, level)
    runs = (
        ", ".join(f"{a}: {len(v)}" for a, v in sorted(losses.items())) or f"{seeds} per row of GLUE results"
    )
    return (
        f"Pretraining seeds per activation: {runs}. Differences are from ReLU (GLUE in points of the dev "
        f"metric x100; MLM loss in nats), INT8 deltas against 0; {100 * (1 - level):.0f}% intervals and p "
        "from Welch's t-test over the pretraining seeds. Detectable: the difference `glue_eval plan` finds "
        f"with 80% power at this study's seeds per activation ({seeds} for GLUE; for the MLM loss, the "
        f"fewer of the two rows') and at 10.\n\n{markdown_table(HEADERS, rows)}"
    )


def read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read this JSON ({err.__class__.__name__}: {err})") from None
