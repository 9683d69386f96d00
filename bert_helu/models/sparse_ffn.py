"""Sparse-FFN inference for ReLU-forward models: skip the output-projection work of zero activations.

In a BERT FFN ``y = W2 · act(W1 x + b1) + b2``, every neuron whose activation is exactly 0 contributes
nothing to ``y``: its row of ``W2ᵀ`` (one column of ``W2``) need not be read or multiplied. The same
holds in a gated FFN (ModernBERT's ``Wo (act(a) * g)``): a zero activation zeroes its product with
the gate, so the rows of ``Wo`` that are skipped are those of the activation's exact zeros. With ReLU
(or HeLU, whose forward *is* ReLU) most activations are exact zeros ("ReLU Strikes Back": > 90% in
trained ReLU models), so up to that share of the second matmul's FLOPs can be skipped.
``W1`` (``Wi``) cannot be skipped without a predictor: its output is what tells which neurons are zero.

Two granularities (``mode``):

- ``per_token``: each token multiplies only its own non-zero neurons. Implemented as a CSR sparse x
  dense matmul (no Python loop over tokens); exact skipping, but sparse kernels are slower per FLOP.
- ``union``: keep the neurons non-zero for *any* token in the batch, gather those rows of ``W2ᵀ`` once
  and run one dense matmul. Cheap bookkeeping, but the union of many tokens' non-zeros approaches
  "all neurons", so savings vanish with long sequences and big batches.
- ``auto`` (default): ``per_token`` at batch 1, ``union`` otherwise.

The result equals the dense path up to float re-association (only exact-zero terms are dropped);
tests hold it to 1e-5 relative / 1e-5 absolute in float32.
``sparsify_ffn(model)`` swaps the output projections in place, ``densify_ffn(model)`` restores them.
Inference only: the transposed weight copy is taken at swap time and does not follow later training.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bert_helu.models.encoders import activation_of, ffn_blocks
from bert_helu.runtime.errors import UserError

# torch warns once that CSR support is "beta"; the results are checked against the dense path in tests
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)

MODES = ("auto", "per_token", "union")


class RowSkippingLinear(nn.Module):
    """``dense`` (an FFN output projection) computed from the non-zero input features only."""

    def __init__(self, dense: nn.Linear, mode: str = "auto"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.dense = dense  # kept to restore the model exactly
        # [in, out] contiguous: the work of one skipped neuron is one contiguous row
        self.register_buffer("weight_t", dense.weight.detach().t().contiguous(), persistent=False)
        self.mode = mode
        self.count_flops = False
        self.dense_macs = 0
        self.used_macs = 0

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        width_in, width_out = self.weight_t.shape
        flat = hidden.reshape(-1, width_in)
        mode = self.mode
        if mode == "auto":
            mode = "per_token" if hidden.dim() < 3 or hidden.shape[0] == 1 else "union"
        if mode == "per_token" and flat.shape[0] > 1:
            out = torch.sparse.mm(flat.to_sparse_csr(), self.weight_t)
            used = int((flat != 0).sum()) if self.count_flops else 0
        else:  # union over the tokens (for a single token this *is* per-token skipping)
            active = (flat != 0).any(dim=0).nonzero().squeeze(1)
            out = flat.index_select(1, active) @ self.weight_t.index_select(0, active)
            used = flat.shape[0] * active.numel() if self.count_flops else 0
        if self.dense.bias is not None:
            out = out + self.dense.bias
        if self.count_flops:
            self.dense_macs += flat.numel() * width_out
            self.used_macs += used * width_out
        return out.reshape(*hidden.shape[:-1], width_out)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, in={self.weight_t.shape[0]}, out={self.weight_t.shape[1]}"


def has_exact_zeros(activation: nn.Module) -> bool:
    return bool(getattr(activation, "relu_forward", False)) or isinstance(activation, nn.ReLU)


def sparsify_ffn(model: nn.Module, mode: str = "auto") -> list[RowSkippingLinear]:
    """Swap every FFN output projection of ``model`` for a ``RowSkippingLinear`` (in place)."""
    if mode not in MODES:
        raise UserError(f"sparse FFN mode must be one of {', '.join(MODES)}, got {mode!r}")
    blocks = ffn_blocks(model)
    if not blocks:
        raise UserError(
            f"{type(model).__name__}: no feed-forward block (BERT's intermediate + output.dense, "
            "ModernBERT's MLP) the sparse path understands"
        )
    for activation, _, _ in blocks:
        if not has_exact_zeros(activation):
            raise UserError(
                f"activation {activation_of(model)!r} ({type(activation).__name__}) gives no exact zeros; "
                "sparse FFN inference needs a ReLU-forward model (relu, helu)"
            )
    swapped = []
    for _, owner, attr in blocks:
        projection = getattr(owner, attr)
        if isinstance(projection, RowSkippingLinear):
            projection = projection.dense
        setattr(owner, attr, RowSkippingLinear(projection, mode))
        swapped.append(getattr(owner, attr))
    return swapped


def densify_ffn(model: nn.Module) -> nn.Module:
    """Undo ``sparsify_ffn``: put the original output projections back."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, RowSkippingLinear):
                setattr(module, name, child.dense)
    return model


def count_skipped_flops(model: nn.Module, run) -> dict:
    """Run ``run()`` once with FLOP counting on (it syncs per layer, so never while timing).

    Returns multiply-accumulates of the FFN output projections, dense vs actually used.
    """
    layers = [m for m in model.modules() if isinstance(m, RowSkippingLinear)]
    if not layers:
        raise ValueError("model is not sparsified (call sparsify_ffn first)")
    for layer in layers:
        layer.count_flops, layer.dense_macs, layer.used_macs = True, 0, 0
    try:
        with torch.inference_mode():
            run()
    finally:
        for layer in layers:
            layer.count_flops = False
    dense = sum(layer.dense_macs for layer in layers)
    used = sum(layer.used_macs for layer in layers)
    return {
        "output_projection_macs_dense": dense,
        "output_projection_macs_used": used,
        "output_projection_saved_fraction": 1 - used / dense if dense else 0.0,
    }
