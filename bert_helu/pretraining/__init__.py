"""The pieces of a pretraining run, which ``pretrain/train.py`` puts together in order: the recipe
and its checks (``recipe``); what each step trains on, built ahead of it (``batches``); the step,
the budget's clock and the guard against diverged runs (``step``); learning-rate schedules
(``schedules``); where the run is (``state``), what it reports (``log``), its checkpoints
(``checkpoints``, the files of one in ``checkpoint_files``) and FFN telemetry (``telemetry``)."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__, recipe="PRETRAIN_DEFAULTS check_recipe load_recipe", batches="BatchPrefetcher GlobalBatches"
)
