"""GLUE metrics through ``evaluate``, with the package's own GLUE metric module (bert_helu/glue/glue_metric).

The hub's ``evaluate.load("glue", ...)`` fetches its script from the network; ours ships with the
package, takes the same config names and reports the same keys, so it loads offline. Each config is
loaded once per process: loading copies and imports the script, which costs far more than a
computation.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from bert_helu.glue.tasks import METRIC_CONFIGS, TASKS

GLUE_METRIC_PATH = str(Path(__file__).with_name("glue_metric"))

# A metric name -> the first task that reports it, so that any set of names maps to GLUE configs.
_CONFIG_OF = {name: t.name for t in reversed(TASKS.values()) for name in t.metrics}


@functools.cache
def glue_metric(config_name: str):
    """The GLUE metric for ``config_name`` (a task or reported split name, e.g. ``mnli_mismatched``)."""
    import evaluate

    if config_name not in METRIC_CONFIGS:
        raise ValueError(f"no GLUE metric config {config_name!r} (known: {', '.join(METRIC_CONFIGS)})")
    # in memory: no Arrow cache file per computation, and no file locks between processes
    return evaluate.load(GLUE_METRIC_PATH, config_name=config_name, keep_in_memory=True)


def task_metrics(config_name: str, predictions, references) -> dict[str, float]:
    """{metric: float} of one GLUE task (or reported split), as its metric config reports it."""
    preds, refs = np.asarray(predictions), np.asarray(references)
    if preds.shape != refs.shape or preds.size == 0:
        raise ValueError(f"predictions {preds.shape} and labels {refs.shape} must be equal, non-empty")
    return glue_metric(config_name).compute(predictions=preds, references=refs)


def compute_metrics(names, predictions, labels) -> dict[str, float]:
    """{name: float} for the metric ``names`` (e.g. a task's ``metrics``), in that order.

    ``predictions``: class ids (or scores for regression). Each name is computed by the GLUE config
    of a task that reports it.
    """
    unknown = [name for name in names if name not in _CONFIG_OF]
    if unknown:
        raise ValueError(f"unknown GLUE metric {unknown[0]!r} (known: {', '.join(_CONFIG_OF)})")
    out = {}
    for config in dict.fromkeys(_CONFIG_OF[name] for name in names):
        out.update(task_metrics(config, predictions, labels))
    return {name: out[name] for name in names}
