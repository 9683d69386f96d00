"""The ``accelerate.Accelerator`` of every program: one rule for which device a process uses."""

from __future__ import annotations

import torch
from accelerate import Accelerator


def make_accelerator(mixed_precision: str, **kwargs) -> Accelerator:
    """An Accelerator on the GPU when one is visible, else on the CPU. Without ``cpu=True`` on a
    machine with no GPU, N processes started by torchrun would be N single-process runs rather
    than one run over N processes."""
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision, **kwargs)
