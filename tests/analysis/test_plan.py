"""glue_eval plan: variance components of a pilot, and the planned power against simulated studies."""

import contextlib
import io
import json

import numpy as np
import pytest
from helpers.glue_results import GOLD, glue_eval, write_result

from bert_helu.analysis.bootstrap import bootstrap_metrics, observed_metrics
from bert_helu.analysis.power import Components, estimate_components, example_variance, plan, power
from glue_eval.significance import replicate_test

N = 872  # SST-2's dev set
LOW, HIGH = 0.40, 0.80  # examples' chance of being right: no clipping with the effects below


def simulate_accuracies(sim, rows, replicates, finetune_seeds, sd_pre, sd_ft, shifts, predictions=False):
    """Accuracy x100 of every run: rows x replicates x fine-tuning seeds, on one dev set per study.

    A run is right on example i with probability q_i + its checkpoint's effect (sd ``sd_pre``) + its
    fine-tuning effect (``sd_ft``) + its row's shift, every example on its own coin: the example
    noise of a run's accuracy then has variance mean(q (1 - q)) / n, known in advance.
    """
    q = sim.uniform(LOW, HIGH, N)
    labels = sim.integers(0, 2, N)
    pre = sim.normal(0, sd_pre, (rows, replicates, 1))
    ft = sim.normal(0, sd_ft, (rows, replicates, finetune_seeds))
    p = q + pre[..., None] + ft[..., None] + np.asarray(shifts)[:, None, None, None]
    correct = sim.random(p.shape) < p
    preds = np.where(correct, labels, 1 - labels).reshape(-1, N)
    acc = 100 * observed_metrics(["accuracy"], preds, labels)["accuracy"]
    acc = acc.reshape(rows, replicates, finetune_seeds)
    return (acc, preds, labels) if predictions else acc


def known_components(sd_pre, sd_ft):
    mean_q, var_q = (LOW + HIGH) / 2, (HIGH - LOW) ** 2 / 12
    examples = 1e4 * (mean_q - var_q - mean_q**2 - sd_pre**2 - sd_ft**2) / N
    return Components(1e4 * sd_pre**2, 1e4 * sd_ft**2, examples, examples, 0.0, 0, 0, 0, 1.0)


@pytest.mark.parametrize(
    "replicates, finetune_seeds, difference", [(3, 1, 6.0), (5, 2, 3.5), (2, 1, 10.0), (4, 3, 5.0)]
)
def test_planned_power_is_the_rejection_rate_compare_reaches(replicates, finetune_seeds, difference):
    sd_pre, sd_ft = 0.03, 0.015
    planned = power(known_components(sd_pre, sd_ft), difference, replicates, finetune_seeds)
    sim = np.random.default_rng(replicates * 10 + finetune_seeds)
    rejected, studies = 0, 400
    for _ in range(studies):
        acc = simulate_accuracies(
            sim, 2, replicates, finetune_seeds, sd_pre, sd_ft, [difference / 200, -difference / 200]
        )
        per_replicate = acc.mean(axis=2)  # as compare: a replicate is the mean over its fine-tuning seeds
        rejected += replicate_test(per_replicate[0], per_replicate[1], 0.05).p_value < 0.05
    assert 0.15 < planned < 0.9  # a design where power is neither trivial nor hopeless
    assert rejected / studies == pytest.approx(planned, abs=0.07)


def test_components_are_recovered_from_a_simulated_pilot():
    sd_pre, sd_ft = 0.03, 0.02
    truth = known_components(sd_pre, sd_ft)
    sim = np.random.default_rng(11)
    acc, preds, labels = simulate_accuracies(
        sim, 3, 10, 3, sd_pre, sd_ft, [0.05, 0.0, -0.05], predictions=True
    )
    boot = 100 * bootstrap_metrics(["accuracy"], preds, labels, 400, sim)["accuracy"]
    per_row = boot.reshape(400, 3, 30)
    found = estimate_components(
        [{f"r{j}": list(acc[r, j]) for j in range(10)} for r in range(3)],
        example_variance([list(per_row[:, r].T) for r in range(3)]),
    )
    assert found.df == 27 and found.replicates == 30 and found.finetune_seeds == 3
    assert np.sqrt(found.examples) == pytest.approx(np.sqrt(truth.examples), rel=0.1)
    assert np.sqrt(found.pretraining) == pytest.approx(100 * sd_pre, rel=0.3)
    assert np.sqrt(found.finetuning) == pytest.approx(100 * sd_ft, rel=0.3)
    # one fine-tuning seed per checkpoint: fine-tuning is not separable and stays in pretraining
    single = estimate_components([{f"r{j}": [acc[r, j, 0]] for j in range(10)} for r in range(3)], 2.0)
    assert single.finetuning is None and single.pretraining == pytest.approx(single.replicate_variance - 2.0)
    assert single.variance(1) == pytest.approx(single.replicate_variance)
    assert single.variance(4) == pytest.approx(single.replicate_variance - 1.5)


def test_more_seeds_detect_smaller_differences_and_an_effect_gets_its_seeds():
    found = plan(known_components(0.03, 0.01), [3, 10], [1, 4], effect=3.0)
    detectable = {(d["pretrain_seeds"], d["finetune_seeds"]): d["detectable"] for d in found["designs"]}
    assert detectable[(10, 1)] < detectable[(3, 1)] and detectable[(3, 4)] < detectable[(3, 1)]
    needed = {n["finetune_seeds"]: n["pretrain_seeds"] for n in found["needed"]}
    assert needed[4] <= needed[1]
    assert power(known_components(0.03, 0.01), 3.0, needed[1], 1) >= 0.8


def write_pilot(root, replicates=3, finetune_seeds=(1, 2)):
    """gelu and relu rows of ``replicates`` pretraining runs each, fine-tuned on RTE with the seeds."""
    sim = np.random.default_rng(3)
    for name in ("gelu", "relu"):
        for rep in range(replicates):
            skill = 0.6 + sim.normal(0, 0.03)
            for seed in finetune_seeds:
                preds = np.where(sim.random(277) < skill, GOLD["rte"], 1 - GOLD["rte"])
                pretraining = {"seed": rep, "recipe": "abc"}
                write_result(root, f"{name}-s{rep}", name, "rte", seed, preds, pretraining=pretraining)


def plan_json(*args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert glue_eval("plan", *args, "--format", "json", "--resamples", 500) == 0
    return json.loads(out.getvalue())


def test_plan_command_reports_components_and_designs_from_a_pilot(tmp_path):
    write_pilot(tmp_path / "glue")
    for rep, loss in enumerate((6.1, 6.3, 5.9)):
        run = tmp_path / "runs" / f"gelu-s{rep}"
        run.mkdir(parents=True)
        config = {"seed": rep, "activation": "gelu", "train": {"max_steps": 300}}
        summary = {"activation": "gelu", "config": config, "final_validation_loss": loss}
        (run / "summary.json").write_text(json.dumps(summary))
    designs = ("--pretrain-seeds", 3, 10, "--finetune-seeds", 1, 2, "--effect", 5)
    found = plan_json(
        tmp_path / "glue", "--baseline", "relu", *designs, "--runs", tmp_path / "runs", "--loss-effect", 0.2
    )
    glue, loss = found["sections"]
    rte = next(q for q in glue["quantities"] if q["column"] == "RTE")
    assert (
        rte["examples"] == 277 and rte["components"]["df"] == 4 and rte["components"]["finetune_seeds"] == 2
    )
    assert rte["components"]["finetuning"] is not None  # two fine-tuning seeds per checkpoint: separable
    assert [(d["pretrain_seeds"], d["finetune_seeds"]) for d in rte["designs"]] == [
        (3, 1),
        (10, 1),
        (3, 2),
        (10, 2),
    ]
    assert rte["needed"][0]["effect"] == 5 and rte["needed"][0]["pretrain_seeds"] >= 2
    assert {o["row"] for o in rte["observed"]} == {"gelu-s* (gelu)"}
    assert any(q["column"] == "Avg (paper)" and q["covers"] == ["RTE"] for q in glue["quantities"])
    (mlm,) = loss["quantities"]
    assert mlm["components"]["replicate_variance"] == pytest.approx(np.var([6.1, 6.3, 5.9], ddof=1))
    assert mlm["components"]["examples"] == 0 and mlm["needed"][0]["effect"] == 0.2


def test_plan_refuses_what_it_cannot_plan(tmp_path, capsys):
    write_result(tmp_path, "gelu", "gelu", "rte", 1, GOLD["rte"])
    write_result(tmp_path, "relu", "relu", "rte", 1, GOLD["rte"])
    assert glue_eval("plan", tmp_path) == 2
    assert "no row has two pretraining replicates" in capsys.readouterr().err
    pilot = tmp_path / "pilot"
    write_pilot(pilot, replicates=2, finetune_seeds=(1,))
    assert glue_eval("plan", pilot, "--pretrain-seeds", 1) == 2
    assert "--pretrain-seeds 1: must be at least 2" in capsys.readouterr().err
    assert glue_eval("plan", pilot, "--loss-effect", 0.1) == 2
    assert "--loss-effect is for the pretraining loss" in capsys.readouterr().err
    bad = tmp_path / "runs" / "gelu-s1"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text(json.dumps({"activation": "gelu"}))
    assert glue_eval("plan", pilot, "--runs", tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip()
    assert (
        "gelu-s1/summary.json: not a pretraining summary with final_validation_loss" in err
        and "\n" not in err
    )
