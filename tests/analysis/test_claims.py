"""The paper's claims against a study: the verdict rule, and the table from a real study's JSON."""

import json

import numpy as np
import pytest
from conftest import REPO

from bert_helu.analysis.claims import claims_page, loss_rows, verdict
from bert_helu.analysis.pretraining_runs import losses_by_activation

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


@pytest.mark.parametrize(
    ("low", "high", "room", "expected"),
    [
        (-11.3, 6.6, -17.1, "a fall to chance ruled out"),  # STS-B at 17 cannot fall by the paper's 56
        (-20.0, 6.6, -17.1, "a fall to chance not ruled out"),
        (-11.3, 6.6, -60.0, "paper's size ruled out"),  # room enough for the paper's drop: the usual rule
    ],
)
def test_a_drop_larger_than_the_room_to_chance_is_judged_against_chance(low, high, room, expected):
    assert verdict(-2.4, low, high, 0.5, -56.1, 0.05, room).startswith(expected)
    assert verdict(-15.0, -16.0, -14.0, 0.001, -56.1, 0.05, room) == "supported"  # a significant drop


def test_chance_is_the_most_frequent_dev_label_and_averages_cover_their_columns():
    from sklearn.metrics import accuracy_score, f1_score

    from bert_helu.analysis.claims import chance_levels
    from bert_helu.glue.predictions import read_predictions

    compare = json.loads((CRAMMED / "compare.json").read_text())
    chance = chance_levels(REPO / "docs" / "replication" / "crammed" / "glue", compare)
    glue = REPO / "docs" / "replication" / "crammed" / "glue"
    mrpc = read_predictions(next(glue.glob("*/mrpc/*/predictions.npz"))).label
    rte = read_predictions(next(glue.glob("*/rte/*/predictions.npz"))).label
    sst2 = read_predictions(next(glue.glob("*/sst2/*/predictions.npz"))).label
    always = {
        name: [int(np.bincount(y).argmax())] * len(y)
        for name, y in (("mrpc", mrpc), ("rte", rte), ("sst2", sst2))
    }
    assert chance["MRPC F1"] == pytest.approx(100 * f1_score(mrpc, always["mrpc"]))  # 81.2: all "paraphrase"
    assert chance["RTE"] == pytest.approx(100 * accuracy_score(rte, always["rte"]))
    assert chance["STS-B Spearman"] == 0.0
    paper = [chance[c] for c in ("SST-2", "STS-B Spearman", "MRPC F1", "RTE", "WNLI")]
    assert chance["SST-2"] == pytest.approx(100 * accuracy_score(sst2, always["sst2"]))
    assert chance["Avg (paper)"] == pytest.approx(sum(paper) / 5)


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
    assert "| HeLU α=1 collapses: GLUE average | Table 2: 70.4 vs 76.7 |  | not measured here |" in page
    assert "3 per row of GLUE results" in page


def write_summaries(folder, losses):
    for activation, values in losses.items():
        for seed, loss in enumerate(values):
            run = folder / f"{activation}-{seed}"
            run.mkdir()
            config = {"seed": seed, "activation": activation, "train": {"max_steps": 1200}}
            summary = {"activation": activation, "final_validation_loss": loss, "config": config}
            (run / "summary.json").write_text(json.dumps(summary))
    return losses_by_activation(folder)


# the MLM-loss section of a plan (glue_eval plan --runs): the detectable differences at 3 and 10 seeds
DESIGNS = [{"pretrain_seeds": 3, "detectable": 0.4}, {"pretrain_seeds": 10, "detectable": 0.16}]
LOSS = {"column": "MLM loss", "designs": DESIGNS}
PLAN = {"sections": [{"title": "Pretraining (MLM loss)", "quantities": [LOSS]}]}


def test_loss_claims_use_welch_over_the_seeds(tmp_path):
    losses = write_summaries(tmp_path, {"relu": [5.0, 5.1, 5.2], "helu:alpha=2": [6.0, 6.1, 6.2]})
    (alpha2,) = [r for r in loss_rows(losses, PLAN, 0.05) if r[0].startswith("α=2")]
    assert alpha2[2:5] == ["5.100", "supported", "+1.000"]  # ReLU's mean loss, the verdict, the difference
    assert alpha2[7:] == ["0.400", "0.160"]  # the plan's, at this study's 3 seeds and at 10


def test_no_difference_found_does_not_support_a_no_worse_claim(tmp_path):
    losses = write_summaries(tmp_path, {"relu": [5.0, 5.2], "helu:alpha=0.05": [5.05, 5.15]})
    (row,) = [r for r in loss_rows(losses, {"sections": []}, 0.05) if r[0].startswith("α=0.05")]
    assert row[3] == "not resolvable here" and row[7:] == ["", ""]  # no plan for the loss: no sizes


def test_paper_claims_script_errors_in_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import CHILD_ENV

    inputs = ["--compare", CRAMMED / "compare.json", "--int8", CRAMMED / "int8-delta.json"]
    command = [sys.executable, "scripts/paper_claims.py", *inputs, "--output", tmp_path / "claims.md"]
    for extra, message in [
        (["--plan", tmp_path / "missing.json"], "missing.json: cannot read this JSON (FileNotFoundError"),
        (["--plan", CRAMMED / "compare.json"], "not the JSON glue_eval writes"),
        (["--plan", CRAMMED / "plan.json", "--runs", tmp_path / "none"], "none: no such directory"),
    ]:
        done = subprocess.run([*command, *extra], cwd=REPO, env=CHILD_ENV, capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "claims.md").exists()
