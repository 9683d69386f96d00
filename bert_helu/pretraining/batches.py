"""What a step trains on: the global batch's plan over processes, its rows and masks as a pure
function of (seed, step, sample position), and the batches built ahead of the step.

- ``plan_batches``: global batch = micro-batch x accumulation x processes; the global batch is the
  science and never changes, the micro-batch is a memory limit and may be lowered.
- ``GlobalBatches``: the sample order and masks, sharded so that N processes at global batch G see
  exactly the samples and masks one process sees at G.
- ``BatchPrefetcher``: the next steps' batches, built in a background thread (pinned on CUDA), so
  that the step never waits for reading and masking.
- ``validation_batches``: the same validation sequences and masks at every evaluation.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from bert_helu.data.stream_cursor import StreamCursor
from bert_helu.models.sparse_mlm import masked_positions
from bert_helu.runtime.errors import UserError


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int
    micro_batch: int
    accumulation: int
    world_size: int
    recipe_micro_batch: int = 0  # what the recipe asked for; micro_batch may be lower

    @property
    def lowered(self) -> bool:
        return self.micro_batch < self.recipe_micro_batch

    def as_dict(self) -> dict:
        return {
            "global_batch_size": self.global_batch,
            "micro_batch_size": self.micro_batch,
            "accumulation": self.accumulation,
            "num_processes": self.world_size,
            "recipe_micro_batch_size": self.recipe_micro_batch,
        }

    def describe(self) -> str:
        return (
            f"global {self.global_batch} = micro {self.micro_batch} x accumulation {self.accumulation} "
            f"x {self.world_size} process(es)"
        )


def plan_batches(global_batch: int, micro_batch: int, world_size: int) -> BatchPlan:
    """global batch = micro-batch x gradient accumulation x processes.

    The global batch is the science and is never changed; the micro-batch is a memory limit, so
    it is lowered to the largest size <= the recipe's that divides each process's share. Both are
    positive (bert_helu.pretraining.recipe.check_recipe).
    """
    if global_batch % world_size:
        raise UserError(
            f"train.global_batch_size {global_batch} cannot be split evenly over {world_size} processes; "
            f"use a process count that divides it"
        )
    share = global_batch // world_size
    micro = next(m for m in range(min(micro_batch, share), 0, -1) if share % m == 0)
    return BatchPlan(global_batch, micro, share // micro, world_size, micro_batch)


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class GlobalBatches:
    """The sample order and masks of a run, as a function of the sample position only.

    Step ``s`` consumes samples ``[pos, pos + G)`` of an endless sequence of per-epoch shuffles.
    Micro-batch ``a`` of process ``r`` is the slice number ``a * world + r`` of it, and the mask of
    row ``k`` of the global batch comes from a generator seeded by (seed, step, k) -- so data order
    and masks depend neither on the micro-batch, nor on the number of processes, nor on whether the
    run was interrupted.
    """

    def __init__(
        self, dataset, masker, plan: BatchPlan, rank: int, seed: int, pad_id: int | None, stream_state=None
    ):
        self.masker, self.plan, self.rank, self.seed, self.pad_id = masker, plan, rank, seed, pad_id
        self.streaming = not hasattr(dataset, "__len__")
        if self.streaming:  # read in order, wrapping around; see bert_helu.data.stream_cursor
            self.cursor = StreamCursor(dataset, stream_state)
        else:
            self.dataset = dataset.with_format("numpy", columns=["input_ids"])
            self.size = len(dataset)
            if self.size < plan.global_batch:
                raise UserError(f"training set has {self.size} sequences, fewer than one global batch")
        self._perms: dict[int, np.ndarray] = {}

    def _indices(self, start: int, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np.int64)
        for i, k in enumerate(range(start, start + count)):
            epoch, within = divmod(k, self.size)
            if epoch not in self._perms:
                self._perms = {
                    epoch: np.random.default_rng(_seed_of(self.seed, epoch)).permutation(self.size)
                }
            out[i] = self._perms[epoch][within]
        return out

    def _rows(self, start: int, count: int) -> torch.Tensor:
        if self.streaming:
            return torch.tensor(self.cursor.rows(start, count), dtype=torch.long)
        idx = self._indices(start, count)
        order = np.argsort(idx)  # sorted reads are much faster on Arrow
        rows = self.dataset[idx[order].tolist()]["input_ids"]
        rows = np.asarray(rows)[np.argsort(order)]
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))

    def stream_state(self, position: int) -> dict | None:
        """Where a streamed training set is at ``position`` (for checkpoints); None otherwise."""
        return self.cursor.state_at(position) if self.streaming else None

    def _mask(self, ids: torch.Tensor, step: int, first_row: int) -> tuple[torch.Tensor, torch.Tensor]:
        # one generator per row of the global batch: masks do not depend on how the global batch
        # is cut into micro-batches and processes
        generators = [
            torch.Generator().manual_seed(_seed_of(self.seed, step, row))
            for row in range(first_row, first_row + len(ids))
        ]
        return self.masker.per_row(ids, generators)

    def step_batches(self, step: int, position: int) -> list[MicroBatch]:
        """This process's micro-batches of ``step``, whose first sample is ``position``."""
        p = self.plan
        out = []
        if self.streaming:  # every process reads the whole global batch and keeps its slices
            global_rows = self._rows(position, p.global_batch)
        for a in range(p.accumulation):
            start = (a * p.world_size + self.rank) * p.micro_batch
            if self.streaming:
                ids = global_rows[start : start + p.micro_batch]
            else:
                ids = self._rows(position + start, p.micro_batch)
            masked, labels = self._mask(ids, step, start)
            out.append(MicroBatch.of(masked, labels, attention_mask(ids, self.pad_id)))
        return out


class MicroBatch(NamedTuple):
    """What one forward/backward pass takes; ``positions`` are ``masked_positions(labels)``, found on
    the host where the batch is built, so that the device never has to report a count."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None
    positions: torch.Tensor

    @classmethod
    def of(cls, input_ids, labels, attention_mask=None) -> MicroBatch:
        return cls(input_ids, labels, attention_mask, masked_positions(labels))

    def to(self, device, non_blocking: bool = False) -> MicroBatch:
        return MicroBatch(*(None if t is None else t.to(device, non_blocking=non_blocking) for t in self))

    def pin_memory(self) -> MicroBatch:
        return MicroBatch(*(None if t is None else t.pin_memory() for t in self))


class BatchPrefetcher:
    """``GlobalBatches.step_batches`` for the steps to come, built ``depth`` steps ahead in a thread.

    Batches are a pure function of (step, position), so building them early changes nothing but
    when the work is done. Masking runs in torch ops that release the GIL, and on CUDA the main
    thread spends its time queueing kernels, so the thread keeps ahead of the step. Pinned memory
    (CUDA) lets ``MicroBatch.to(non_blocking=True)`` copy while the device computes.
    """

    def __init__(self, batches: GlobalBatches, step: int, position: int, depth: int = 2, pin=False):
        self.batches, self.pin, self.step, self.position = batches, pin, step, position
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        step, position, per_step = self.step, self.position, self.batches.plan.global_batch
        try:
            while not self._stop.is_set():
                micro = self.batches.step_batches(step, position)
                if self.pin:
                    micro = [m.pin_memory() for m in micro]
                item = (step, position, micro)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                step, position = step + 1, position + per_step
        except BaseException as err:  # raised again in the loop's thread, by next()
            self._queue.put((None, None, err))

    def next(self, step: int, position: int) -> list[MicroBatch]:
        """The micro-batches of ``step`` (the loop asks for its steps in order)."""
        got_step, got_position, micro = self._queue.get()
        if got_step is None:
            raise micro
        if (got_step, got_position) != (step, position):  # a bug, never a user error
            raise RuntimeError(f"prefetched step {got_step}@{got_position}, the loop is at {step}@{position}")
        return micro

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attention_mask(ids: torch.Tensor, pad_id: int | None) -> torch.Tensor | None:
    """1 on tokens, 0 on padding; None when there is no padding (packed sequences rarely have any),
    which lets attention skip the mask."""
    if pad_id is None or not (ids == pad_id).any():
        return None
    return (ids != pad_id).long()


def validation_batches(
    dataset, masker, global_batch: int, micro_batch: int, n_batches: int, seed: int, pad_id: int | None
):
    """The validation set: the first ``n_batches`` global batches of the validation split, with
    masks drawn per row -- the same sequences and masks at every evaluation, for every activation,
    micro-batch and process count. Cut into micro-batches only to bound memory."""
    if dataset is None or len(dataset) == 0:
        return []
    data = dataset.with_format("numpy", columns=["input_ids"])
    rows = min(len(data), n_batches * global_batch)
    batches = []
    for start in range(0, rows, micro_batch):
        ids = torch.from_numpy(
            np.asarray(data[start : min(start + micro_batch, rows)]["input_ids"], dtype=np.int64)
        )
        generators = [
            torch.Generator().manual_seed(_seed_of(seed, 2**31, start + i)) for i in range(len(ids))
        ]
        masked, labels = masker.per_row(ids, generators)
        batches.append(MicroBatch.of(masked, labels, attention_mask(ids, pad_id)))
    return batches


def count_masked(micro_batches: list[MicroBatch]) -> int:
    return sum(len(m.positions) for m in micro_batches)
