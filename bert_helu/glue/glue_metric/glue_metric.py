"""The GLUE metric as an ``evaluate`` module that works offline.

Load it like the hub's ``glue`` metric, with the same config names and the same output keys::

    import evaluate
    from bert_helu.glue.metrics import GLUE_METRIC_PATH

    metric = evaluate.load(GLUE_METRIC_PATH, config_name="mrpc")
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])  # {'accuracy': ..., 'f1': ...}

Two deliberate differences from the hub's script: it also takes ``ax`` (the diagnostic set, scored
with Matthews correlation as the GLUE server does), and a score that is undefined (a correlation of
constant predictions, which the hub reports as nan) is 0.0, so that averages over tasks and seeds stay
numbers. Which metrics a task reports is decided in one place, ``bert_helu.glue.tasks.TASKS``.
"""

import warnings

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bert_helu.glue.tasks import METRIC_CONFIGS

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and
          Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}
"""

_DESCRIPTION = """\
The metrics of the GLUE benchmark (https://gluebenchmark.com/): accuracy, binary F1 of class 1,
Matthews correlation, Pearson and Spearman correlation, per task as the benchmark reports them.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (scores for stsb).
    references: gold class ids (scores for stsb).
Returns: the task's metrics, among "accuracy", "f1", "matthews_correlation", "pearson", "spearmanr".
Example:
    >>> metric = evaluate.load(GLUE_METRIC_PATH, config_name="mrpc")
    >>> metric.compute(predictions=[0, 1], references=[0, 1])
    {'accuracy': 1.0, 'f1': 1.0}
"""

# The scikit-learn and scipy functions the hub's script calls. STS-B scores are float32 there (and in
# our fine-tuning): scipy then computes in float32, so the dtype is part of the number.
_FUNCTIONS = {
    "accuracy": lambda preds, refs: accuracy_score(refs, preds),
    "f1": lambda preds, refs: f1_score(refs, preds),  # binary, positive class 1
    "matthews_correlation": lambda preds, refs: matthews_corrcoef(refs, preds),
    "pearson": lambda preds, refs: pearsonr(preds, refs)[0],
    "spearmanr": lambda preds, refs: spearmanr(preds, refs)[0],
}


class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in METRIC_CONFIGS:
            raise KeyError(
                f"GLUE metric config {self.config_name!r}: expected one of {', '.join(METRIC_CONFIGS)}"
            )
        dtype = "float32" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}
            ),
            reference_urls=[
                "https://gluebenchmark.com/",
                "https://huggingface.co/spaces/evaluate-metric/glue",
            ],
            format="numpy",
        )

    def _compute(self, predictions, references):
        out = {}
        for name in METRIC_CONFIGS[self.config_name]:
            with warnings.catch_warnings():  # scipy/sklearn warn on constant input: handled just below
                warnings.simplefilter("ignore")
                value = float(_FUNCTIONS[name](predictions, references))
            out[name] = 0.0 if np.isnan(value) else value
        return out
