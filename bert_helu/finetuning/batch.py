"""What a fine-tuning batch (finetune/batch.py) needs besides its runs: the report of the whole
batch, gathered from every process, and the accelerator each run gets."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from bert_helu.finetuning.processes import Processes
from bert_helu.runtime.processes import make_accelerator


@dataclass
class BatchReport:
    total: int
    skipped_done: int = 0
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    main: bool = True  # whether this process reports the batch (the first of several, or the only one)


def whole_report(report: BatchReport, processes: Processes) -> BatchReport:
    """The batch's report from every process's (the same on each); only the first one reports it."""
    reports = processes.gather(report)
    return BatchReport(
        total=report.total,
        skipped_done=sum(r.skipped_done for r in reports),
        finished=[run for r in reports for run in r.finished],
        failed=[failure for r in reports for failure in r.failed],
        unavailable=report.unavailable,
        main=processes.is_main,
    )


def run_accelerator(precision: str) -> Accelerator:
    """A fresh Accelerator for each run: it holds references to its prepared model and optimizer, and
    dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)."""
    # batches come from pinned memory on a GPU: their copy need not wait for the step before
    non_blocking = torch.cuda.is_available()
    return make_accelerator(precision, dataloader_config=DataLoaderConfiguration(non_blocking=non_blocking))
