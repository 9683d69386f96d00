"""Learning-rate schedules as pure functions of *progress* in [0, 1].

Progress is either step-based (``step / max_steps``) or time-based (``elapsed / budget``, as
Cramming's "budget-*" schedulers: the schedule follows the wall-clock budget, not a step count, so
a faster activation gets more steps out of the same budget). The training loop computes progress
and multiplies the peak learning rate by ``schedule(progress)``; the schedule itself holds no state,
so resuming only needs the step and the elapsed time, which the checkpoint stores.

Time-based progress cannot be bitwise reproducible: two runs never see the same clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bert_helu.runtime.errors import UserError


def one_cycle(p: float, warmup: float, min_ratio: float) -> float:
    """Cramming's (budget-)one-cycle: linear 0 -> peak over the first half, linear back to 0.

    The ramp *is* the warm-up: ``warmup`` is not used (Cramming ignores its warm-up setting too).
    """
    return p / 0.5 if p < 0.5 else max(0.0, 2.0 - p / 0.5)


def linear(p: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` of the run, then linear decay to 0 (BERT's schedule)."""
    if p < warmup:
        return p / warmup
    return max(0.0, (1.0 - p) / (1.0 - warmup))


def triangle(p: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up, then linear decay to ``min_ratio`` of the peak (Cramming's triangle2 keeps a floor)."""
    if p < warmup:
        return p / warmup
    return min_ratio + (1.0 - min_ratio) * max(0.0, (1.0 - p) / (1.0 - warmup))


def cosine(p: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up, then half a cosine down to ``min_ratio`` of the peak."""
    if p < warmup:
        return p / warmup
    t = min(1.0, (p - warmup) / (1.0 - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def constant(p: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up, then the peak learning rate until the end."""
    return p / warmup if p < warmup else 1.0


SCHEDULES = {f.__name__: f for f in (one_cycle, linear, triangle, cosine, constant)}
PROGRESS_KINDS = ("steps", "time")


@dataclass(frozen=True)
class Schedule:
    """A recipe's learning-rate schedule (``train.scheduler`` and the keys below); its defaults are
    the recipe's (bert_helu.pretraining.recipe.PRETRAIN_DEFAULTS), its rules checked here when it is made."""

    name: str
    warmup: float  # fraction of the run
    min_ratio: float
    progress: str  # "steps" (step / max_steps) or "time" (elapsed / budget)

    @classmethod
    def from_recipe(cls, train: dict) -> Schedule:
        return cls(
            train["scheduler"], train["warmup_fraction"], train["min_lr_ratio"], train["schedule_progress"]
        )

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise UserError(
                f"train.scheduler: unknown scheduler {self.name!r}; known: {', '.join(SCHEDULES)}"
            )
        if self.progress not in PROGRESS_KINDS:
            raise UserError(f"train.schedule_progress must be one of {PROGRESS_KINDS}, got {self.progress!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise UserError(f"train.warmup_fraction must be a fraction in [0, 1), got {self.warmup}")
        if not 0.0 <= self.min_ratio <= 1.0:
            raise UserError(f"train.min_lr_ratio must be in [0, 1], got {self.min_ratio}")

    def __call__(self, progress: float) -> float:
        p = min(max(progress, 0.0), 1.0)
        return SCHEDULES[self.name](p, self.warmup, self.min_ratio)

    def progress_of(self, step: int, max_steps: int | None, elapsed: float, budget_s: float | None) -> float:
        if self.progress == "time":
            if not budget_s:
                raise UserError("a time-based schedule needs train.budget_hours")
            return elapsed / budget_s
        if not max_steps:
            raise UserError("a step-based schedule needs train.max_steps")
        return step / max_steps
