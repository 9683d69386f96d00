"""One optimizer step and what is around it: the starting model, the learning rate, the budget's
clock, the step itself, the validation loss and the guard against diverged runs.

- ``initial_model``: the recipe's fresh model, or a checkpoint with its activation swapped.
- ``BudgetClock``: elapsed training time (the budget), resumable, paused during evaluation/saving.
- ``train_step`` / ``evaluate``: one optimizer step over the micro-batches of this process, and the
  validation MLM loss. A step never waits for the device: its loss, gradient norm and "skipped"
  flag stay on the device until the loop reads them (``BadStepGuard.settle``, the log).
- ``BadStepGuard``: skipped steps (non-finite, fp16 overflow) counted; K in a row abort the run.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from bert_helu.models.encoders import (
    build_mlm_model,
    load_model,
    model_config,
    set_activation,
    special_token_ids,
)
from bert_helu.pretraining.batches import MicroBatch
from bert_helu.runtime.errors import UserError


def initial_model(cfg, tokenizer) -> nn.Module:
    """The MLM model a run starts from: a fresh one of the recipe's ``model`` section, or
    ``model.init_from`` with its FFN activation swapped for the recipe's ("relufying")."""
    if cfg["model"]["init_from"]:
        return set_activation(load_model(cfg["model"]["init_from"], task="mlm"), cfg["activation"])
    config = model_config(cfg["model"], cfg["activation"], len(tokenizer), special_token_ids(tokenizer))
    return build_mlm_model(config)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


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
