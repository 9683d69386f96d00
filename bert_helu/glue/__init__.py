"""GLUE, all of it in one place: the nine tasks in one table (fields, labels, metrics) and reading
them from ``glue_data`` TSVs or the hub (``tasks``); the metrics through ``evaluate`` with the
package's own offline metric module (``metrics``, ``glue_metric/``); the per-example dev predictions
kept beside every result (``predictions``); examples as token ids (``encoding``); the unlabelled
test sets and the files the GLUE server takes (``test_sets``, ``submission``)."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__, tasks="TASKS GlueTask load_task resolve_tasks", metrics="compute_metrics"
)
