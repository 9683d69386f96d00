"""The usual activations, each registered under the name a spec uses (``relu``, ``gelu``, ...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bert_helu.activations.registry import register_activation


@register_activation("relu")
class ReLU(nn.Module):
    relu_forward = True
    stock_name = "relu"

    def forward(self, x):
        return torch.relu(x)


@register_activation("gelu")
class GELU(nn.Module):
    stock_name = "gelu"

    def forward(self, x):
        return F.gelu(x)


@register_activation("gelu_tanh")
class GELUTanh(nn.Module):
    stock_name = "gelu_pytorch_tanh"

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


@register_activation("silu")
class SiLU(nn.Module):
    stock_name = "silu"

    def forward(self, x):
        return F.silu(x)


@register_activation("elu")
class ELU(nn.Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        return F.elu(x, self.alpha)


@register_activation("leaky_relu")
class LeakyReLU(nn.Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)
        # stock LeakyReLU only has the default slope under this name
        if self.negative_slope == 0.01:
            self.stock_name = "leaky_relu"

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


@register_activation("relu2")
class ReLUSquared(nn.Module):
    """Squared ReLU (So et al., Primer)."""

    stock_name = "relu2"

    def forward(self, x):
        return torch.square(torch.relu(x))


@register_activation("shifted_relu")
class ShiftedReLU(nn.Module):
    """ReLU(x - b), from "ReLU Strikes Back" (Mirzadeh et al.): a positive shift gives more zeros."""

    def __init__(self, bias: float = 1.0):
        super().__init__()
        self.bias = float(bias)

    def forward(self, x):
        return torch.relu(x - self.bias)
