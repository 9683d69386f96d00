"""Pretraining runs side by side: replicates grouped by recipe, Welch intervals against a baseline,
the loss-versus-alpha points, and the plotting script end to end (summaries written by hand)."""

import json
import subprocess
import sys

import pytest
from conftest import CHILD_ENV, REPO
from scipy import stats

from bert_helu.analysis.pretraining_runs import (
    alpha_curve,
    losses_by_activation,
    replicate_groups,
    replicate_table,
)
from bert_helu.runtime.errors import UserError

LOSSES = {
    "relu": [5.10, 5.20, 5.15],
    "helu:alpha=0.05": [5.12, 5.25, 5.18],
    "helu:alpha=2": [5.70, 5.80, 5.75],
    "gelu": [5.00],
}


def write_runs(folder, losses=LOSSES, recipe=None):
    for activation, values in losses.items():
        for seed, loss in zip((42, 43, 44), values, strict=False):
            run = folder / f"{activation.replace('helu:alpha=', 'helu-')}-s{seed}"
            run.mkdir(parents=True)
            config = {"seed": seed, "activation": activation, "model": recipe or {"hidden_size": 128}}
            series = [{"step": 0, "val/loss": 9.0}, {"step": 100, "val/loss": loss}]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in series))
            summary = dict(activation=activation, final_validation_loss=loss, config=config, steps=100)
            summary.update(tokens_seen=409600, train_time_s=60.0, tokens_per_s=6826.7)
            (run / "summary.json").write_text(json.dumps(summary))


def test_replicates_are_compared_with_the_baseline_by_welch(tmp_path):
    write_runs(tmp_path)
    groups = replicate_groups(tmp_path)
    assert sorted(len(g["runs"]) for g in groups.values()) == [1, 3, 3, 3]
    table = replicate_table(tmp_path, "relu")
    rows = {line.split("|")[2].strip(): line.split("|") for line in table.splitlines()[2:] if "|" in line}
    welch = stats.ttest_ind(LOSSES["helu:alpha=2"], LOSSES["relu"], equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert rows["helu:alpha=2"][7].strip() == f"[{low:+.3f}, {high:+.3f}]"
    assert rows["helu:alpha=2"][8].strip() == f"{welch.pvalue:.3f}" and rows["helu:alpha=2"][9].strip() == "*"
    assert rows["helu:alpha=0.05"][9].strip() == ""  # 0.05 is within the seed noise of relu
    assert rows["relu"][6:10] == ["  "] * 4  # the baseline is not compared with itself
    with pytest.raises(UserError, match="--baseline swish: no run of that activation"):
        replicate_table(tmp_path, "swish")


def test_loss_versus_alpha_has_each_alpha_with_its_t_interval(tmp_path):
    write_runs(tmp_path)
    points = {p["activation"]: p for p in alpha_curve(tmp_path)}
    assert (points["helu:alpha=0.05"]["alpha"], points["helu:alpha=2"]["alpha"], points["relu"]["alpha"]) == (
        0.05,
        2.0,
        None,
    )
    values = LOSSES["helu:alpha=2"]
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 3, scale=stats.sem(values))
    assert (points["helu:alpha=2"]["low"], points["helu:alpha=2"]["high"]) == pytest.approx((low, high))
    assert points["gelu"]["low"] == points["gelu"]["high"] == 5.00  # one run: no interval


def test_one_study_per_activation_and_one_line_errors(tmp_path):
    write_runs(tmp_path / "a", {"relu": [5.1, 5.2]})
    write_runs(tmp_path / "b", {"relu": [5.3]}, recipe={"hidden_size": 256})
    assert losses_by_activation(tmp_path / "a") == {"relu": [5.1, 5.2]}
    with pytest.raises(UserError, match="runs of relu from more than one pretraining recipe"):
        losses_by_activation([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "a" / "relu-s42" / "summary.json").write_text('{"activation": "relu"}')
    with pytest.raises(UserError, match="relu-s42/summary.json: not a pretraining summary"):
        replicate_groups(tmp_path / "a")
    with pytest.raises(UserError, match="nowhere: no such directory"):
        replicate_groups(tmp_path / "nowhere")


def test_plot_script_draws_the_curves_and_the_alpha_figure(tmp_path):
    write_runs(tmp_path / "runs")
    figure = tmp_path / "plots" / "pretraining.png"
    command = [sys.executable, "scripts/plot_pretraining.py", tmp_path / "runs", "--output", figure,
               "--baseline", "relu"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert figure.stat().st_size > 0 and (tmp_path / "plots" / "pretraining-alpha.png").stat().st_size > 0
    assert figure.with_suffix(".md").read_text().count("| helu:alpha=2 |") == 1
