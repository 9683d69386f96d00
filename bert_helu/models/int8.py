"""Post-training dynamic INT8: how fine-tuning evaluates an INT8 model and how inference is timed in it."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every nn.Linear in dynamic INT8 (weights int8, activations quantised
    per batch), in eval mode on the CPU: the paper's CPU setting."""
    fp32 = copy.deepcopy(model).float().cpu().eval()  # dynamic quantised kernels are CPU-only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices, once per model
        return torch.ao.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
