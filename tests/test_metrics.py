import math

import pytest

from bert_helu.metrics import compute_metrics


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
