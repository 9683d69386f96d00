"""Fine-tuning checkpoints on GLUE, many (checkpoint, task, seed) runs in one batch. The recipe and
each task's resolved settings (``recipe``); every input checked before the first run (``inputs``);
the runs planned with their folders and identity (``plan``); one run (``run``); its files and
curves (``results``, ``tracking``); and the batch over one or many processes (``batch``,
``processes``). ``finetune/`` tells a batch's story in order."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, batch="run_batch", run="finetune")
