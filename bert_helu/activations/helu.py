"""HeLU (Kimhi et al., "Hysteresis Activation Function for Efficient Inference"): ReLU's forward pass,
and a gradient that still flows where the input is slightly negative (``x > -alpha``), so that a
neuron pushed just below zero can come back. At inference a HeLU model *is* a ReLU model."""

from __future__ import annotations

import torch
from torch import nn

from bert_helu.activations.registry import register_activation


def _part_of_larger_tensor(x: torch.Tensor) -> bool:
    """True for a slice such as one of ``chunk``'s halves (not for a reshaped view of a whole tensor)."""
    return x._base is not None and x._base.numel() > x.numel()


class _HeLUFunction(torch.autograd.Function):
    """ReLU forward; gradient 1 where ``x > -alpha`` and 0 elsewhere (Kimhi et al., Definition 2).

    What backward keeps depends on where ``x`` lives. In a gated block ``x`` is one half of the
    up-projection's output, whose storage the gate's product keeps for its own backward anyway:
    keeping ``x`` costs no memory, and backward is ReLU's own kernel (``threshold_backward``, at
    ``-alpha``), so HeLU costs what ReLU costs. A mask there would cost a pass over a strided
    tensor each way (~5% of a ModernBERT step, scripts/bench_pretrain.py). Elsewhere only a bool
    mask is kept (1 byte per element, not the 4 of the input), multiplied in as uint8: the same
    bytes, but PyTorch's CPU kernel for float x uint8 is ~1.5x faster than for float x bool
    (scripts/bench_activations.py).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        ctx.keeps_input = _part_of_larger_tensor(x)
        ctx.save_for_backward(x if ctx.keeps_input else x > -alpha)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (saved,) = ctx.saved_tensors
        if ctx.keeps_input:
            return torch.ops.aten.threshold_backward(grad_output, saved, -ctx.alpha), None
        return grad_output.mul(saved.view(torch.uint8)), None


def helu(x: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    if alpha == 0.0 or not torch.is_grad_enabled() or not x.requires_grad:
        return torch.relu(x)  # identical forward; alpha=0 has exactly ReLU's gradient
    return _HeLUFunction.apply(x, alpha)


@register_activation("helu")
class HeLU(nn.Module):
    relu_forward = True
    stock_name = "relu"

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not alpha > 0:  # alpha <= 0 would pass less gradient than ReLU: not HeLU (use relu)
            raise ValueError(f"alpha must be > 0, got {alpha:g}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return helu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"
