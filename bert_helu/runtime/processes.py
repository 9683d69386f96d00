"""The ``accelerate.Accelerator`` of every program: one rule for which device a process uses."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from bert_helu.runtime.precision import reset_accelerate_state


def make_accelerator(mixed_precision: str, **kwargs) -> Accelerator:
    """An Accelerator on the GPU when one is visible, else on the CPU. Without ``cpu=True`` on a
    machine with no GPU, N processes started by torchrun would be N single-process runs rather
    than one run over N processes.

    accelerate keeps one precision per process and refuses an Accelerator of another: a process
    that pretrains in fp32 and then fine-tunes with ``auto`` (bf16 on a CPU with native bf16), say
    a notebook, starts the second job from a clean state."""
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        reset_accelerate_state()
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision, **kwargs)
