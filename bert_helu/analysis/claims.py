"""The HeLU paper's claims against a study's results: one row per claim, with the measured difference,
its interval and p, a verdict, and the difference the study could detect (scripts/paper_claims.py).

A verdict is "supported" when the difference is significant in the paper's direction,
"contradicted" when it is significant the other way, "paper's size ruled out" when it is not
significant but its interval excludes the paper's difference, and "not resolvable here" when the
interval holds both zero and the paper's difference. The paper's numbers are BERT-base on full GLUE;
a CPU study's models and budgets are smaller, so a size compares only roughly, a direction more fairly.

A collapse the paper reports can be larger than a small model has room to fall: where ReLU's score
here minus the paper's drop is below chance (a model that always predicts the most frequent dev
label), the paper's size cannot be reached, and the verdict says whether a fall to chance is ruled out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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


def verdict(difference, low, high, p, claimed, level, room=None) -> str:
    """``claimed``: the paper's difference; a signed zero for a claim of direction alone. ``room``: the
    largest drop possible here (chance minus the baseline's score, negative), None if unknown."""
    sign = math.copysign(1.0, claimed)
    if p < level:
        return "supported" if difference * sign > 0 else "contradicted"
    if room is not None and claimed < room:
        reach = "a fall to chance ruled out" if not low <= room <= high else "a fall to chance not ruled out"
        return f"{reach} (the paper's drop is below chance here)"
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


def chance_levels(results_dir, compare: dict) -> dict[str, float]:
    """Each column's score (x100) for a model that always predicts its dev set's most frequent label
    (0 for a correlation), from the labels in the study's predictions; an average's is the mean of
    the columns it covers."""
    from bert_helu.analysis.bootstrap import observed_metrics
    from bert_helu.glue.predictions import read_predictions

    levels = {}
    for c in compare["comparisons"]:
        if not c.get("task") or c["column"] in levels:
            continue
        found = sorted(Path(results_dir).glob(f"*/{c['task']}/*/predictions.npz"))
        if not found:
            continue
        if c["metric"] in ("pearson", "spearmanr"):  # a constant has no correlation with anything
            levels[c["column"]] = 0.0
            continue
        labels = read_predictions(found[0]).label
        values, counts = np.unique(labels, return_counts=True)
        majority = np.full_like(labels, values[counts.argmax()])
        levels[c["column"]] = 100 * float(observed_metrics([c["metric"]], majority, labels)[c["metric"]][0])
    for c in compare["comparisons"]:
        if c.get("covers") and all(column in levels for column in c["covers"]):
            levels[c["column"]] = sum(levels[column] for column in c["covers"]) / len(c["covers"])
    return levels


def glue_rows(compare, int8, plan, level, seeds, chance) -> list[list]:
    rows = []
    for claim, where, activation, column, claimed in GLUE_CLAIMS:
        c = row_of(compare["comparisons"], activation, column)
        sizes = detectable(plan, "GLUE", column)
        rows.append(claim_row(claim, where, c, claimed, level, sizes, seeds, chance.get(column)))
    for claim, where, activation, claimed in INT8_CLAIMS:
        c = row_of(int8["comparisons"], activation, "Avg (paper)")
        rows.append(claim_row(claim, where, c, claimed, level, {}, seeds, None))
    return rows


def claim_row(claim, where, c, claimed, level, sizes, seeds, chance) -> list:
    if c is None:
        return [claim, where, "", "not measured here", "", "", "", "", ""]
    d, lo, hi, p = c["difference"], c["low"], c["high"], c["p_value"]
    base = c.get("baseline_value") if c.get("baseline") else None  # an INT8 delta is against 0
    room = None if chance is None or base is None else chance - base
    here = "" if base is None else f"{base:.1f}" + ("" if chance is None else f" ({chance:.1f})")
    found = [verdict(d, lo, hi, p, claimed, level, room), fmt(d), f"[{lo:+.2f}, {hi:+.2f}]", f"{p:.3g}"]
    sizes = [f"{sizes[n]:.2f}" if n in sizes else "" for n in (seeds, 10)]
    return [claim, where, here, *found, *sizes]


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
            rows.append([claim, "Table 1 (vision)", "", "not measured here" if not mine else "needs 2 seeds",
                         "", "", "", "", ""])  # fmt: skip
            continue
        est = welch(mine, relu, level)
        # "no worse than ReLU" is supported only by a significantly lower loss: an interval that holds
        # zero holds worse losses too, so it resolves nothing
        if est.p_value < level:
            verdict_ = "supported" if est.difference * direction > 0 else "contradicted"
        else:
            verdict_ = "not resolvable here"
        found = [verdict_, fmt(est.difference, 3), f"[{est.low:+.3f}, {est.high:+.3f}]", f"{est.p_value:.3g}"]
        detect = [f"{sizes[n]:.3f}" if n in sizes else "" for n in (min(len(mine), len(relu)), 10)]
        rows.append([claim, "Table 1 (vision)", f"{sum(relu) / len(relu):.3f}", *found, *detect])
    return rows


HEADERS = ["claim", "paper", "ReLU here (chance)", "verdict", "difference", "95% interval", "p",
           "detectable (this study)", "detectable (10 seeds)"]  # fmt: skip


def claims_page(compare: dict, int8: dict, plan: dict, losses: dict[str, list[float]], chance=None) -> str:
    """The claims table with its one-paragraph header, from the JSON of ``glue_eval compare`` (against
    ReLU), ``glue_eval compare --delta int8``, ``glue_eval plan`` and the runs' final losses."""
    level = compare["level"]
    seeds = study_seeds(plan)
    rows = glue_rows(compare, int8, plan, level, seeds, chance or {}) + loss_rows(losses, plan, level)
    runs = (
        ", ".join(f"{a}: {len(v)}" for a, v in sorted(losses.items())) or f"{seeds} per row of GLUE results"
    )
    brackets = (
        ", and in brackets chance: a model that always predicts the most frequent dev label" if chance else ""
    )
    return (
        f"Pretraining seeds per activation: {runs}. Differences are from ReLU (GLUE in points of the dev "
        f"metric x100; MLM loss in nats), INT8 deltas against 0; {100 * (1 - level):.0f}% intervals and p "
        "from Welch's t-test over the pretraining seeds. Detectable: the difference `glue_eval plan` finds "
        f"with 80% power at this study's seeds per activation ({seeds} for GLUE; for the MLM loss, the "
        f"fewer of the two rows') and at 10. ReLU here: ReLU's mean score (or final loss) in this "
        f"study{brackets if chance else ''}.\n\n{markdown_table(HEADERS, rows)}"
    )


def read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read this JSON ({err.__class__.__name__}: {err})") from None
