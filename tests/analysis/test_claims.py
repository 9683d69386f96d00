"""The paper's claims against a study: the verdict rule, and the table from a real study's JSON."""

import json

import pytest
from conftest import REPO

from bert_helu.analysis.claims import claims_page, final_losses, loss_rows, verdict

CRAMMED = REPO / "docs" / "replication" / "crammed" / "tables"


@pytest.mark.parametrize(
    ("difference", "low", "high", "p", "claimed", "expected"),
    [
        (2.0, 0.5, 3.5, 0.01, 1.35, "supported"),  # significant, the paper's direction
        (-2.0, -3.5, -0.5, 0.01, 1.35, "contradicted"),  # significant, the other way
        (-0.3, -1.3, 0.7, 0.4, 1.35, "paper's size ruled out"),  # holds 0, not the paper's +1.35
        (-0.5, -4.2, 3.2, 0.7, 2.6, "not resolvable here"),  # holds both
        (0.2, -0.5, 0.8, 0.4, -0.0, "not resolvable here"),  # a claimed sign alone is never a size
        (-0.9, -1.5, -0.3, 0.01, -0.0, "supported"),
    ],
)
def test_verdicts(difference, low, high, p, claimed, expected):
    assert verdict(difference, low, high, p, claimed, 0.05) == expected


def test_the_crammed_study_fills_the_glue_and_int8_claims_it_measured():
    """From the committed 3-seed study (GELU, ReLU, HeLU 0.05): the claims it has rows for are
    filled with the numbers `glue_eval compare` wrote; the others say they were not measured."""
    compare, int8, plan = (
        json.loads((CRAMMED / f).read_text()) for f in ("compare.json", "int8-delta.json", "plan.json")
    )
    page = claims_page(compare, int8, plan, {})
    helu_avg = next(
        c
        for c in compare["comparisons"]
        if c["row"].endswith("(helu:alpha=0.05)") and c["column"] == "Avg (paper)"
    )
    line = next(r for r in page.splitlines() if r.startswith("| HeLU α=0.05 beats ReLU: GLUE average"))
    assert (
        f"{helu_avg['difference']:+.2f}" in line
        and f"[{helu_avg['low']:+.2f}, {helu_avg['high']:+.2f}]" in line
    )
    assert "| HeLU α=1 collapses: GLUE average | Table 2: 70.4 vs 76.7 | not measured here |" in page
    assert "3 per row of GLUE results" in page


def test_loss_claims_use_welch_over_the_seeds(tmp_path):
    for activation, values in {"relu": [5.0, 5.1, 5.2], "helu:alpha=2": [6.0, 6.1, 6.2]}.items():
        for seed, loss in enumerate(values):
            run = tmp_path / f"{activation}-{seed}"
            run.mkdir()
            (run / "summary.json").write_text(
                json.dumps({"activation": activation, "final_validation_loss": loss})
            )
    losses = final_losses(tmp_path)
    (alpha2,) = [r for r in loss_rows(losses, 0.05, 3) if r[0].startswith("α=2")]
    assert alpha2[2] == "supported" and alpha2[3] == "+1.000"


def test_no_difference_found_does_not_support_a_no_worse_claim(tmp_path):
    for activation, values in {"relu": [5.0, 5.2], "helu:alpha=0.05": [5.05, 5.15]}.items():
        for seed, loss in enumerate(values):
            run = tmp_path / f"{activation}-{seed}"
            run.mkdir()
            (run / "summary.json").write_text(
                json.dumps({"activation": activation, "final_validation_loss": loss})
            )
    (row,) = [r for r in loss_rows(final_losses(tmp_path), 0.05, 2) if r[0].startswith("α=0.05")]
    assert row[2] == "not resolvable here"
