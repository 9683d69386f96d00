"""The pieces of the pretraining loop; ``pretrain/train.py`` puts them together in order.

- ``initial_model``: the recipe's fresh model, or a checkpoint with its activation swapped.
- ``SparseMLM``: encoder + MLM head on the masked positions only (the head's vocab-sized
  projection is the most expensive matmul of a small BERT; 85% of its rows are thrown away anyway).
- ``make_optimizer``: AdamW, no weight decay on biases and norm weights (``decay_groups``).
- ``GlobalBatches``: the data order, as a pure function of (seed, sample position), sharded so that
  N processes at global batch G see exactly the samples and masks one process sees at G.
- ``BatchPrefetcher``: builds the next steps' batches in a background thread (pinned on CUDA), so
  the step never waits for reading and masking.
- ``BudgetClock``: elapsed training time (the budget), resumable, paused during evaluation/saving.
- ``train_step`` / ``evaluate``: one optimizer step over the micro-batches of this process, and the
  validation MLM loss. A step never waits for the device: its loss, gradient norm and "skipped"
  flag stay on the device until the loop reads them (``BadStepGuard.settle``, the log).
- ``BadStepGuard``: skipped steps (non-finite, fp16 overflow) counted; K in a row abort the run.

The run's state (step, samples seen, budget used, counters) is a ``bert_helu.run_state.RunState``;
its checkpoints and records are bert_helu.run_checkpoints and bert_helu.run_log.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bert_helu.data.stream_cursor import StreamCursor
from bert_helu.errors import UserError
from bert_helu.modeling import (
    build_mlm_model,
    encoder_of,
    load_model,
    masked_lm_logits,
    model_config,
    set_activation,
    special_token_ids,
)

# ----------------------------------------------------------------------------- batch sizes


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
    positive (bert_helu.recipe.check_recipe).
    """
    if global_batch % world_size:
        raise UserError(
            f"train.global_batch_size {global_batch} cannot be split evenly over {world_size} processes; "
            f"use a process count that divides it"
        )
    share = global_batch // world_size
    micro = next(m for m in range(min(micro_batch, share), 0, -1) if share % m == 0)
    return BatchPlan(global_batch, micro, share // micro, world_size, micro_batch)


# ------------------------------------------------------------------------------- the model


class SparseMLM(nn.Module):
    """MLM loss computed on the masked positions only: encoder on all tokens, head on ~15% of them.

    Returns the *sum* of the cross-entropy over masked tokens; the caller divides by the number
    of masked tokens of the whole global batch, so that gradient accumulation and data-parallel
    processes give the gradient of one big batch.
    """

    def __init__(self, mlm_model: nn.Module):
        super().__init__()
        self.mlm = mlm_model

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask=None, positions=None
    ) -> torch.Tensor:
        """``positions``: the flat indices of the masked tokens (``masked_positions``). Given, as the
        batches give them, the forward pass needs no ``nonzero`` on the device: no host-device sync
        and no graph break under ``torch.compile``."""
        hidden = encoder_of(self.mlm)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        labels = labels.reshape(-1)
        if positions is None:
            positions = masked_positions(labels)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        logits = masked_lm_logits(self.mlm, picked)
        return F.cross_entropy(logits.float(), labels.index_select(0, positions), reduction="sum")


def masked_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices of the predicted tokens (labels other than -100)."""
    return (labels.reshape(-1) != -100).nonzero().squeeze(1)


def initial_model(cfg, tokenizer) -> nn.Module:
    """The MLM model a run starts from: a fresh one of the recipe's ``model`` section, or
    ``model.init_from`` with its FFN activation swapped for the recipe's ("relufying")."""
    if cfg["model"]["init_from"]:
        return set_activation(load_model(cfg["model"]["init_from"], task="mlm"), cfg["activation"])
    config = model_config(cfg["model"], cfg["activation"], len(tokenizer), special_token_ids(tokenizer))
    return build_mlm_model(config)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: biases and norm weights (every tensor of rank < 2) get no weight decay.

    They set scale and offset, not capacity (BERT's rule). By rank rather than by name, so that it
    holds for every architecture's naming (``LayerNorm``, ``attn_norm``, ``final_norm``, ...).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, train: dict) -> torch.optim.Optimizer:
    """AdamW with the recipe's hyper-parameters and ``decay_groups``."""
    groups = decay_groups(model, train["weight_decay"])
    device = next(model.parameters()).device
    # The fused kernel skips a step on the device (``found_inf``) without a host-device sync; it
    # exists on CUDA, and on CPU since torch 2.4. foreach is the fallback (a skip then syncs).
    impl = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.AdamW(groups, lr=train["lr"], betas=tuple(train["betas"]), eps=train["eps"], **impl)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --------------------------------------------------------------------------------- batches


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


# ----------------------------------------------------------------------------------- clock


@dataclass
class BudgetClock:
    """Training wall-clock time: restored on resume, paused while evaluating or checkpointing."""

    elapsed_before: float = 0.0
    _start: float = field(default_factory=time.perf_counter)
    _paused: float = 0.0

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._start - self._paused

    @contextlib.contextmanager
    def paused(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0


# ------------------------------------------------------------------------------------ steps


@dataclass
class StepResult:
    """One step's outcome. The tensors stay on the device until the loop reads them (on logging
    steps, ``BadStepGuard.settle``), so that the host can queue the next step meanwhile."""

    loss_sum: torch.Tensor  # the global batch's summed masked-token loss (all processes)
    grad_norm: torch.Tensor  # the gradient norm before clipping
    skipped: torch.Tensor | bool  # no update: non-finite loss or gradients (the same on every process)
    overflow: bool = False  # fp16: the GradScaler skipped the update (and lowered its scale)


def train_step(
    accelerator, model, optimizer, micro_batches: list[MicroBatch], masked_global: int, grad_clip: float
) -> StepResult:
    """Accumulate the micro-batches of one step and update, unless the loss or gradients are not finite.

    No host-device sync: whether to update is decided on the device from values every process
    shares (the all-reduced loss and the norm of the all-reduced gradients), and the fused AdamW
    kernel skips the update itself (``found_inf``). fp16 keeps the GradScaler's own protocol.
    """
    device = accelerator.device
    non_blocking = device.type == "cuda"  # pinned batches (BatchPrefetcher) copy while the device works
    scale = accelerator.num_processes / max(masked_global, 1)  # DDP averages over processes
    loss_sum = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last else accelerator.no_sync(model)
        with sync:
            loss = model(*batch.to(device, non_blocking=non_blocking))
            accelerator.backward(loss * scale)
        loss_sum += loss.detach()
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    grad_norm = torch.zeros((), device=device) if grad_norm is None else grad_norm.detach()
    loss_sum = accelerator.reduce(loss_sum, reduction="sum")  # asynchronous on the device
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None:
        # fp16: GradScaler skips overflowing steps itself and lowers its scale (it must see every
        # step); its verdict comes from all-reduced gradients, the same on every process. A lower
        # scale is the sign of a skip (accelerate's step_was_skipped misses it for fused AdamW).
        before = scaler.get_scale()
        optimizer.step()
        bad_loss, overflow = not bool(torch.isfinite(loss_sum)), scaler.get_scale() < before
        optimizer.zero_grad(set_to_none=True)
        return StepResult(loss_sum, grad_norm, bad_loss or overflow, overflow)
    skipped = ~(torch.isfinite(grad_norm) & torch.isfinite(loss_sum))
    _step_unless(optimizer, skipped)
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_sum, grad_norm, skipped)


def _step_unless(optimizer, skipped: torch.Tensor) -> None:
    """``optimizer.step()`` unless ``skipped``: decided on the device by the fused kernel, which
    then leaves parameters, moments and step count as they were; by the host otherwise."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    if inner.defaults.get("fused"):
        inner.found_inf = skipped.float()
        optimizer.step()
    elif not bool(skipped):
        optimizer.step()


@torch.no_grad()
def evaluate(accelerator, model, batches: list[MicroBatch]) -> float:
    """Mean MLM loss per masked token over the validation batches (shared between processes)."""
    if not batches:
        return float("nan")
    model.eval()
    device = accelerator.device
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    for j in range(accelerator.process_index, len(batches), accelerator.num_processes):
        batch = batches[j]
        totals[0] += model(*batch.to(device)).double()
        totals[1] += len(batch.positions)
    model.train()
    totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[1].clamp(min=1))


class BadStepGuard:
    """Counts skipped steps into the run's state; K in a row means the run has diverged.

    Two kinds, counted apart: a non-finite loss or gradient (the update is skipped), and an fp16
    overflow (the GradScaler skips it and halves its scale, routine for a few steps while the
    scale settles). Steps are ``add``-ed as they run and read from the device together when the
    loop ``settle``-s them (logging and checkpoint steps, the end): a diverged run stops there, at
    most ``log_every_steps`` later than a per-step check would, without a sync on every step.
    Every process reads the same agreed results, so all abort at the same step.
    """

    def __init__(self, limit: int, overflow_limit: int, scale=None):
        self.limit, self.overflow_limit = limit, overflow_limit
        self.scale = scale  # the loss scale now (for the message), if fp16
        self.in_a_row = self.overflows_in_a_row = 0
        self.pending: list[tuple[int, StepResult]] = []

    def add(self, step: int, result: StepResult) -> None:
        """Step ``step``'s result (step numbers count from 0: the state's step before it advanced)."""
        self.pending.append((step, result))

    def settle(self, state, warn) -> None:
        """Read the pending steps' verdicts (one sync) and count them into ``state`` (a RunState)."""
        if not self.pending:
            return
        flags = torch.stack([torch.as_tensor(r.skipped).reshape(()).cpu() for _, r in self.pending]).tolist()
        pending, self.pending = self.pending, []
        for (step, result), skipped in zip(pending, flags, strict=True):
            self._record(step, bool(skipped), result.overflow, state, warn)

    def _record(self, step: int, skipped: bool, overflow: bool, state, warn) -> None:
        if overflow:
            self.overflows_in_a_row += 1
            state.overflow_steps += 1
            if self.overflows_in_a_row >= self.overflow_limit:
                scale = f" (loss scale now {self.scale():g})" if self.scale else ""
                raise UserError(
                    f"{self.overflows_in_a_row} fp16 steps in a row overflowed{scale}, the last at step "
                    f"{step}; use train.mixed_precision=bf16 or no, or lower train.lr"
                )
            return
        self.overflows_in_a_row = 0
        if not skipped:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        state.skipped_steps += 1
        warn(f"step {step}: non-finite loss or gradients, update skipped ({self.in_a_row} in a row)")
        if self.in_a_row >= self.limit:
            raise UserError(
                f"{self.in_a_row} steps in a row with non-finite loss or gradients (step {step}); "
                "lower train.lr, raise train.grad_clip or use mixed_precision=bf16/no"
            )


def count_masked(micro_batches: list[MicroBatch]) -> int:
    return sum(len(m.positions) for m in micro_batches)
