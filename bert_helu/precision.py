"""Which mixed precision a run uses: one rule for pretraining and fine-tuning."""

from __future__ import annotations

from pathlib import Path

import torch

from bert_helu.errors import UserError


def resolve_mixed_precision(setting: str, key: str = "train.mixed_precision") -> str:
    """``auto``: bf16/fp16 on GPU; bf16 on CPUs with native bf16 matmul (AVX512-BF16/AMX), else fp32.

    On a CPU without native bf16 (AVX2 only) bf16 autocast converts every operand and runs slower
    (a BERT step ~25x slower than fp32, measured; docs/bench_pretrain.md).
    """
    if setting not in ("auto", "no", "bf16", "fp16"):
        raise UserError(f"{key} must be auto, no, bf16 or fp16, got {setting!r}")
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"
