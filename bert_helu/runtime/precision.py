"""Which mixed precision a run uses, and what the machine can do: one rule for pretraining,
fine-tuning and the benchmarks.

CPUs come in two kinds here. With AVX512-BF16 or AMX, bf16 matmuls run natively (about 2x the fp32
speed per core); without them (AVX2 only), bf16 autocast converts every operand and a BERT step is
~25x slower than fp32 (docs/bench_pretrain.md). ``auto`` picks what is fast on the machine.
``BERT_HELU_CPU_BF16=1`` (or ``0``) overrides the detection: a CPU reported without its flags
(some virtual machines hide them) or a test of the other kind's code path.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from bert_helu.runtime.errors import UserError

# The flags that decide the precision and the speed of a CPU run, in the order benchmarks list them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
OVERRIDE_ENV = "BERT_HELU_CPU_BF16"


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """``{"cpu": model name, "cpu_flags": the CPU_FLAGS it has}`` from /proc/cpuinfo (Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name in ("", platform.machine()):
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"cpu": name, "cpu_flags": [f for f in CPU_FLAGS if f in flags]}


def cpu_has_native_bf16() -> bool:
    """Whether bf16 matmuls are native on this CPU (``BERT_HELU_CPU_BF16`` overrides)."""
    override = os.environ.get(OVERRIDE_ENV, "").strip()
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise UserError(f"{OVERRIDE_ENV} must be 0 or 1, got {override!r}")
    return any(f in cpu_info()["cpu_flags"] for f in NATIVE_BF16_FLAGS)


def cpu_kind() -> str:
    """``native-bf16`` or ``fp32``: the kind a CPU benchmark's numbers belong to."""
    return "native-bf16" if cpu_has_native_bf16() else "fp32"


def resolve_mixed_precision(setting: str, key: str = "train.mixed_precision") -> str:
    """``auto``: bf16/fp16 on GPU; bf16 on CPUs with native bf16 matmul, else fp32 (``no``)."""
    if setting not in ("auto", "no", "bf16", "fp16"):
        raise UserError(f"{key} must be auto, no, bf16 or fp16, got {setting!r}")
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def reset_accelerate_state() -> None:
    """Let the next Accelerator of this process choose its own precision.

    accelerate keeps one precision per process and refuses a second Accelerator of another one. A
    process that runs several jobs one after the other (a test session, a benchmark alternating
    fp32 and bf16) starts each from a clean state; what a prepared model does was fixed when it was
    prepared (autocast wraps its forward), so it keeps its precision.
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
