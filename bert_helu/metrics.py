"""GLUE metrics with scikit-learn/scipy, named and computed as the ``evaluate`` GLUE metric does.

(``evaluate`` fetches its metric scripts from the hub, which fails offline; these are the same
functions it calls: sklearn's accuracy/f1/MCC and scipy's Pearson/Spearman.)
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = {
    "accuracy": lambda preds, labels: accuracy_score(labels, preds),
    "f1": lambda preds, labels: f1_score(labels, preds),  # binary, positive class 1, as GLUE
    "matthews_correlation": lambda preds, labels: matthews_corrcoef(labels, preds),
    "pearson": lambda preds, labels: pearsonr(preds, labels)[0],
    "spearmanr": lambda preds, labels: spearmanr(preds, labels)[0],
}


def compute_metrics(names, predictions, labels) -> dict[str, float]:
    """``predictions``: class ids (or scores for regression); returns {metric name: float}."""
    preds, labels = np.asarray(predictions), np.asarray(labels)
    if preds.shape != labels.shape or preds.size == 0:
        raise ValueError(f"predictions {preds.shape} and labels {labels.shape} must be equal, non-empty")
    out = {}
    for name in names:
        with warnings.catch_warnings():  # scipy/sklearn warn on constant input; handled just below
            warnings.simplefilter("ignore")
            value = float(METRICS[name](preds, labels))
        # a constant prediction makes a correlation undefined (nan); GLUE-style reports call that 0
        out[name] = 0.0 if np.isnan(value) else value
    return out
