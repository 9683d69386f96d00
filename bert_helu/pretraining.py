"""The pieces of the pretraining loop; ``pretrain/train.py`` puts them together in order.

- ``SparseMLM``: encoder + MLM head on the masked positions only (the head's vocab-sized
  projection is the most expensive matmul of a small BERT; 85% of its rows are thrown away anyway).
- ``make_optimizer``: AdamW, no weight decay on biases and norm weights (``decay_groups``).
- ``GlobalBatches``: the data order, as a pure function of (seed, sample position), sharded so that
  N processes at global batch G see exactly the samples and masks one process sees at G.
- ``BudgetClock``: elapsed training time (the budget), resumable, paused during evaluation/saving.
- ``train_step`` / ``evaluate``: one optimizer step over the micro-batches of this process, and the
  validation MLM loss.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bert_helu.errors import UserError
from bert_helu.modeling import architecture_of, encoder_of, masked_lm_logits

IDENTITY_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)


def run_identity(model_config, activation: str) -> dict:
    """What makes two runs the same run (a checkpoint of another identity is never resumed)."""
    model = {"architecture": architecture_of(model_config)}
    model.update({k: getattr(model_config, k) for k in IDENTITY_FIELDS})
    return {"activation": activation, "model": model}


def check_identity(found: dict, expected: dict, where: Path) -> None:
    if found == expected:
        return
    if found.get("activation") != expected["activation"]:
        what = f"activation {found.get('activation')!r}, this run {expected['activation']!r}"
    else:
        diff = {k: v for k, v in found.get("model", {}).items() if expected["model"].get(k) != v}
        what = f"model {diff}, this run { ({k: expected['model'][k] for k in diff}) }"
    raise UserError(f"{where} belongs to a different run ({what}); use another --output-dir")


# ----------------------------------------------------------------------------- batch sizes


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int
    micro_batch: int
    accumulation: int
    world_size: int


def plan_batches(global_batch: int, micro_batch: int, world_size: int) -> BatchPlan:
    """global batch = micro-batch x gradient accumulation x processes; the user sets the first two."""
    per_step = micro_batch * world_size
    if global_batch <= 0 or micro_batch <= 0:
        raise UserError("train.global_batch_size and train.micro_batch_size must be positive")
    if global_batch % per_step:
        raise UserError(
            f"train.global_batch_size {global_batch} is not a multiple of micro-batch {micro_batch} x "
            f"{world_size} process(es) = {per_step}"
        )
    return BatchPlan(global_batch, micro_batch, global_batch // per_step, world_size)


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

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask=None) -> torch.Tensor:
        hidden = encoder_of(self.mlm)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        labels = labels.reshape(-1)
        where = (labels != -100).nonzero().squeeze(1)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, where)
        logits = masked_lm_logits(self.mlm, picked)
        return F.cross_entropy(logits.float(), labels.index_select(0, where), reduction="sum")


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
    # fused kernels exist on CPU and CUDA for recent torch; foreach is the fallback
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
    Micro-batch ``a`` of process ``r`` is the slice number ``a * world + r`` of it, and its masks come
    from a generator seeded by (seed, step, slice) -- so data order and masks depend neither on
    the number of processes nor on whether the run was interrupted.
    """

    def __init__(self, dataset, masker, plan: BatchPlan, rank: int, seed: int, pad_id: int | None):
        self.masker, self.plan, self.rank, self.seed, self.pad_id = masker, plan, rank, seed, pad_id
        self.streaming = not hasattr(dataset, "__len__")
        if self.streaming:
            self.dataset = dataset
            self._stream, self._stream_pos = None, -1
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
        if not self.streaming:
            idx = self._indices(start, count)
            order = np.argsort(idx)  # sorted reads are much faster on Arrow
            rows = self.dataset[idx[order].tolist()]["input_ids"]
            rows = np.asarray(rows)[np.argsort(order)]
            return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
        return self._stream_rows(start, count)

    def _stream_rows(self, start: int, count: int) -> torch.Tensor:
        # streaming: read sequentially; on resume, skip to the position (datasets' skip is lazy)
        if self._stream is None or self._stream_pos != start:
            self._stream = iter(self.dataset.skip(start)) if start else iter(self.dataset)
            self._stream_pos = start
        rows = []
        while len(rows) < count:
            try:
                rows.append(next(self._stream)["input_ids"])
            except StopIteration:
                self._stream = iter(self.dataset)
        self._stream_pos += count
        return torch.tensor(rows, dtype=torch.long)

    def step_batches(
        self, step: int, position: int
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """This process's micro-batches of ``step``: (masked input ids, labels, attention mask)."""
        p = self.plan
        out = []
        if self.streaming:  # every process reads the whole global batch and keeps its slices
            global_rows = self._stream_rows(position, p.global_batch)
        for a in range(p.accumulation):
            slice_no = a * p.world_size + self.rank
            start = slice_no * p.micro_batch
            if self.streaming:
                ids = global_rows[start : start + p.micro_batch]
            else:
                ids = self._rows(position + start, p.micro_batch)
            generator = torch.Generator().manual_seed(_seed_of(self.seed, step, slice_no))
            masked, labels = self.masker(ids, generator)
            mask = (
                None if self.pad_id is None or not (ids == self.pad_id).any() else (ids != self.pad_id).long()
            )
            out.append((masked, labels, mask))
        return out


def validation_batches(dataset, masker, micro_batch: int, n_batches: int, seed: int, pad_id: int | None):
    """Fixed validation batches (same samples and masks at every evaluation and for every activation)."""
    if dataset is None or len(dataset) == 0:
        return []
    data = dataset.with_format("numpy", columns=["input_ids"])
    batches = []
    for j in range(min(n_batches, math.ceil(len(data) / micro_batch))):
        ids = torch.from_numpy(
            np.asarray(data[j * micro_batch : (j + 1) * micro_batch]["input_ids"], dtype=np.int64)
        )
        masked, labels = masker(ids, torch.Generator().manual_seed(_seed_of(seed, 2**31, j)))
        mask = None if pad_id is None or not (ids == pad_id).any() else (ids != pad_id).long()
        batches.append((masked, labels, mask))
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
    loss_sum: torch.Tensor  # this process's summed masked-token loss
    grad_norm: float
    finite: bool


def train_step(
    accelerator, model, optimizer, micro_batches, masked_global: int, grad_clip: float
) -> StepResult:
    """Accumulate the micro-batches of one step and update (unless the loss or gradients are not finite)."""
    device = accelerator.device
    scale = accelerator.num_processes / max(masked_global, 1)  # DDP averages over processes
    loss_sum = torch.zeros((), device=device)
    for i, (ids, labels, mask) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last else accelerator.no_sync(model)
        with sync:
            loss = model(ids.to(device), labels.to(device), None if mask is None else mask.to(device))
            accelerator.backward(loss * scale)
        loss_sum += loss.detach()
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    grad_norm = float(grad_norm) if grad_norm is not None else 0.0
    loss_finite = bool(torch.isfinite(loss_sum))
    if getattr(accelerator, "scaler", None) is not None:
        # fp16: GradScaler skips overflowing steps itself and lowers its scale (it must see every
        # step); an overflow is routine there, only a non-finite loss counts as a bad step
        optimizer.step()
        finite = loss_finite
    else:
        # gradients are all-reduced, so every process reaches the same verdict
        finite = math.isfinite(grad_norm) and loss_finite
        if finite:
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_sum, grad_norm, finite)


@torch.no_grad()
def evaluate(accelerator, model, batches) -> float:
    """Mean MLM loss per masked token over the validation batches (shared between processes)."""
    if not batches:
        return float("nan")
    model.eval()
    device = accelerator.device
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    for j in range(accelerator.process_index, len(batches), accelerator.num_processes):
        ids, labels, mask = batches[j]
        totals[0] += model(
            ids.to(device), labels.to(device), None if mask is None else mask.to(device)
        ).double()
        totals[1] += (labels != -100).sum()
    model.train()
    totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[1].clamp(min=1))


class BadStepGuard:
    """Counts steps skipped for non-finite loss or gradients; K in a row means the run has diverged."""

    def __init__(self, limit: int, counters: dict):
        self.limit, self.counters, self.in_a_row = limit, counters, 0

    def record(self, finite: bool, step: int, warn) -> None:
        if finite:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.counters["skipped_steps"] += 1
        warn(f"step {step}: non-finite loss or gradients, update skipped ({self.in_a_row} in a row)")
        if self.in_a_row >= self.limit:
            raise UserError(
                f"{self.in_a_row} steps in a row with non-finite loss or gradients (step {step}); "
                "lower train.lr, raise train.grad_clip or use mixed_precision=bf16/no"
            )


def count_masked(micro_batches) -> int:
    return int(sum(int((labels != -100).sum()) for _, labels, _ in micro_batches))
