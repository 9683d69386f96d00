import json
import math

import evaluate
import huggingface_hub
import pytest
from conftest import REPO
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bert_helu.glue.metrics import GLUE_METRIC_PATH, compute_metrics, glue_metric, task_metrics
from bert_helu.glue.predictions import read_predictions
from bert_helu.glue.tasks import TASKS
from bert_helu.runtime.errors import first_line


def test_classification_metrics_match_hand_computed_values():
    # tp=2, tn=1, fp=1, fn=0
    preds, labels = [1, 1, 0, 1], [1, 0, 0, 1]
    out = compute_metrics(["accuracy", "f1", "matthews_correlation"], preds, labels)
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["f1"] == pytest.approx(0.8)  # P=2/3, R=1
    assert out["matthews_correlation"] == pytest.approx(2 / math.sqrt(12))  # (tp*tn-fp*fn)/sqrt(3*2*2*1)


def test_correlations_match_hand_computed_and_evaluate_doc_values():
    out = compute_metrics(["pearson", "spearmanr"], [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert out["pearson"] == pytest.approx(3 / (math.sqrt(2) * math.sqrt(42 / 9)))  # 0.98198
    assert out["spearmanr"] == pytest.approx(1.0)
    # the `evaluate` GLUE metric card's STS-B example
    out = compute_metrics(["pearson", "spearmanr"], [-10, -11, -12, -13, -14, -15], [0, 1, 2, 3, 4, 5])
    assert out == pytest.approx({"pearson": -1.0, "spearmanr": -1.0})


def test_f1_is_binary_for_positive_class_and_constant_predictions_give_zero_correlation():
    assert compute_metrics(["f1"], [0, 0, 0], [1, 0, 1])["f1"] == 0.0
    out = compute_metrics(["matthews_correlation", "pearson"], [1, 1, 1, 1], [0, 1, 0, 1])
    assert out == {"matthews_correlation": 0.0, "pearson": 0.0}


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        compute_metrics(["accuracy"], [1, 0], [1])


# ----------------------------------------------------------- the evaluate module (bert_helu/glue/glue_metric)

GLUE_CONFIGS = ["cola", "sst2", "mrpc", "stsb", "rte", "wnli", "qnli", "qqp", "mnli", "mnli_matched",
                "mnli_mismatched", "ax"]  # fmt: skip
REPLICATION = REPO / "docs" / "replication" / "crammed" / "glue"


def _reference(names, preds, labels):
    """The metrics as bert_helu computed them before the evaluate module: sklearn/scipy directly."""
    functions = {
        "accuracy": lambda: accuracy_score(labels, preds),
        "f1": lambda: f1_score(labels, preds),
        "matthews_correlation": lambda: matthews_corrcoef(labels, preds),
        "pearson": lambda: pearsonr(preds, labels)[0],
        "spearmanr": lambda: spearmanr(preds, labels)[0],
    }
    return {name: float(functions[name]()) for name in names}


def test_the_module_loads_offline_by_path_with_the_hub_config_names_and_keys():
    expected_keys = {
        "cola": {"matthews_correlation"}, "stsb": {"pearson", "spearmanr"}, "mrpc": {"accuracy", "f1"},
        "qqp": {"accuracy", "f1"}, "ax": {"matthews_correlation"},
    }  # fmt: skip
    for config in GLUE_CONFIGS:
        metric = evaluate.load(GLUE_METRIC_PATH, config_name=config)
        refs = [0.0, 1.0, 2.5, 4.0] if config == "stsb" else [0, 1, 1, 0]
        preds = [0.5, 1.0, 2.0, 3.0] if config == "stsb" else [0, 1, 0, 0]
        out = metric.compute(predictions=preds, references=refs)
        assert set(out) == expected_keys.get(config, {"accuracy"}), config
    wnli = evaluate.load(GLUE_METRIC_PATH, config_name="wnli")
    assert wnli.compute(predictions=[0, 1, 0, 0], references=[0, 1, 1, 0]) == {"accuracy": 0.75}
    with pytest.raises(KeyError, match="GLUE metric config 'sst-2'"):
        evaluate.load(GLUE_METRIC_PATH, config_name="sst-2")


def test_each_config_is_loaded_once_per_process():
    assert glue_metric("rte") is glue_metric("rte")
    assert task_metrics("mnli_mismatched", [0, 1, 2, 2], [0, 1, 2, 1]) == {"accuracy": 0.75}


def _replication_runs():
    files = sorted(REPLICATION.glob("*/*/seed*/results.json"))
    assert len(files) >= 50, "the committed replication results are missing"
    return files


def test_metrics_are_identical_to_before_on_every_committed_replication_result():
    """Every stored dev metric of docs/replication/crammed/glue (full precision and INT8), recomputed
    from its per-example predictions through the evaluate module, is the number the run stored, and the
    number scikit-learn/scipy give directly, to the last bit."""
    checked = 0
    for file in _replication_runs():
        record = json.loads(file.read_text())
        stored = read_predictions(file.parent / record["predictions"])
        task = TASKS[record["task"]] if record["task"] in TASKS else TASKS["mnli"]
        variants = [("metrics", stored.prediction)]
        if "int8" in record:
            variants.append(("int8", stored.int8_prediction))
        for key, preds in variants:
            reported = record["metrics"] if key == "metrics" else record["int8"]["metrics"]
            names = list(reported)
            assert sorted(names) == sorted(task.metrics)
            new = task_metrics(record["task"], preds, stored.label)
            assert new == _reference(names, preds, stored.label), file
            assert compute_metrics(names, preds, stored.label) == new
            # the runs computed on dev examples in evaluation order; the file keeps them by row, so
            # a sum in another order may differ in the last bits of a float32 correlation
            assert new == pytest.approx(reported, rel=0, abs=1e-6), file
            checked += 1
    assert checked >= 100


def test_the_hubs_glue_metric_agrees_where_it_can_be_loaded():
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE=1: the hub's glue metric script cannot be fetched")
    try:
        hub = {config: evaluate.load("glue", config) for config in GLUE_CONFIGS if config != "ax"}
    except Exception as err:  # offline (HF_HUB_OFFLINE=1, no network): nothing to compare with
        pytest.skip(f"the hub's glue metric cannot be loaded here: {first_line(err, 120)}")
    for file in _replication_runs():
        record = json.loads(file.read_text())
        stored = read_predictions(file.parent / record["predictions"])
        ours = task_metrics(record["task"], stored.prediction, stored.label)
        theirs = hub[record["task"]].compute(predictions=stored.prediction, references=stored.label)
        theirs = {k: 0.0 if math.isnan(v) else v for k, v in theirs.items()}  # ours: undefined is 0
        assert ours == pytest.approx(theirs, rel=0, abs=1e-12), file
