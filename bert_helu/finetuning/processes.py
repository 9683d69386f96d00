"""A fine-tuning batch over several processes: whole runs shared out, one device per process.

``torchrun --nproc_per_node N -m finetune ...`` or ``accelerate launch --num_processes N -m finetune ...``
on N GPUs: process r takes the runs i with i % N == r and trains each alone on its own GPU, as
MosaicBERT's GLUE runner does. A GLUE batch is many small independent runs (checkpoint x task x
seed); splitting each one's batches over the GPUs (DDP) would add a gradient all-reduce per step to
a model that already fits one GPU, and would make its results depend on N. Here a run computes
exactly what it computes in a single process, whatever N is.

The processes meet only to start the runs that begin from another task's fine-tuned model
(``init_from``) after every run of that task has ended, and at the end, for the batch's report. They
meet through the launcher's key-value store, with no torch.distributed process group: with one,
transformers writes a checkpoint's weights only on rank 0 and accelerate splits every run over the
processes. Each process sees a single process with one device.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# What torchrun (and accelerate launch, which runs it) tell each process; accelerate reads them to
# make a multi-process run, so they are removed once read.
_LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK")
# A process waits at a meeting for the longest run of another one (an MNLI run of BERT-large takes
# hours); torch's default of 30 minutes would fail a healthy batch.
_MEETING_TIMEOUT = timedelta(days=30)
_GPU_WORKERS = 4  # DataLoader workers per GPU process when the recipe says null: padding is cheap


@dataclass(frozen=True)
class Processes:
    """This process's place in the batch: ``rank`` of ``count``, ``local_rank`` of ``local_count`` on
    its machine (which picks its GPU)."""

    rank: int = 0
    count: int = 1
    local_rank: int = 0
    local_count: int = 1
    store: dist.Store | None = field(default=None, compare=False, repr=False)  # where they meet
    meetings: list = field(default_factory=lambda: [0], compare=False, repr=False)  # how many so far

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, runs: list) -> list:
        """This process's runs: every ``count``-th, from the place in the plan, not from what is done
        (processes starting at different times could see different runs done)."""
        return [run for i, run in enumerate(runs) if i % self.count == self.rank]

    def meet(self) -> None:
        """Wait until every process has come here."""
        if self.count > 1:
            self.gather(None)

    def gather(self, value) -> list:
        """``value`` (picklable) of every process, in rank order, to every process; a meeting."""
        if self.count == 1:
            return [value]
        self.meetings[0] += 1
        keys = [f"meeting{self.meetings[0]}/{rank}" for rank in range(self.count)]
        self.store.set(keys[self.rank], pickle.dumps(value))
        self.store.wait(keys)
        return [pickle.loads(self.store.get(key)) for key in keys]

    def workers(self, setting: int | None) -> int:
        """DataLoader workers per run: the recipe's ``num_workers``, or for null 0 on CPU (the loop as
        it always was) and on a GPU up to 4, sharing the cores with the other processes of this node."""
        if setting is not None:
            return int(setting)
        if not torch.cuda.is_available():
            return 0
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(0, min(_GPU_WORKERS, cores // self.local_count - 1))

    def __str__(self) -> str:
        return f"process {self.rank + 1} of {self.count}"


def join_launch() -> Processes:
    """This process's place among those a launcher started (one process when started plainly). Under
    a launcher, even of one process: the launcher's variables are removed so that accelerate makes
    single-process runs (with them it would wrap every model in DDP), this process's GPU is chosen,
    and with several processes the store where they meet is joined."""
    if "WORLD_SIZE" not in os.environ:
        return Processes()
    count = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_count = int(os.environ.get("LOCAL_WORLD_SIZE", count))
    store = None
    if count > 1:
        # the store torch.distributed would make its process group from (torchrun's own, or rank 0's)
        store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=count, timeout=_MEETING_TIMEOUT))
        store.set_timeout(_MEETING_TIMEOUT)
        store = dist.PrefixStore("bert_helu.finetune/", store)
    for name in _LAUNCH_VARIABLES:
        os.environ.pop(name, None)
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        os.environ["ACCELERATE_TORCH_DEVICE"] = str(device)  # the device accelerate's state takes
    processes = Processes(rank, count, local_rank, local_count, store)
    if count > 1:
        log.info(
            "%s (%d of %d on this machine): runs shared out whole", processes, local_rank + 1, local_count
        )
    return processes
