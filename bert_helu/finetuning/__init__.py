"""Fine-tuning checkpoints on GLUE, many (checkpoint, task, seed) runs in one batch. The recipe, one
run's settings and each task's resolved settings (``recipe``); every input checked before the first
run (``inputs``); the runs planned with their folders and identity (``plan``); one run as one object,
``FineTuneRun``, set up, trained, evaluated and saved (``run``); its files and curves (``results``,
``tracking``); the batch's progress, its report and processes (``progress``, ``batch``,
``processes``). ``finetune/batch.py`` tells a batch's story in order."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, run="FineTuneRun", recipe="RunSettings TRAIN_DEFAULTS")
