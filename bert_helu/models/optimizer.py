"""The optimizer of pretraining and fine-tuning: AdamW, no weight decay on biases and norm weights."""

from __future__ import annotations

import torch
from torch import nn


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
