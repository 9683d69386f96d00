"""The MLM loss on the masked positions only: the encoder runs on every token, the head on the ~15%
that are predicted (the head's vocabulary-sized projection is the most expensive matmul of a small
BERT, and 85% of its rows would be thrown away)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bert_helu.models.encoders import (
    encoder_of,
    masked_lm_logits,
)


class SparseMLM(nn.Module):
    """MLM loss computed on the masked positions only: encoder on all tokens, head on ~15% of them.

    Returns the *sum* of the cross-entropy over masked tokens; the caller divides by the number
    of masked tokens of the whole global batch, so that gradient accumulation and data-parallel
    processes give the gradient of one big batch.
    """

    def __init__(self, mlm_model: nn.Module):
        super().__init__()
        self.mlm = mlm_model

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask=None, positions=None
    ) -> torch.Tensor:
        """``positions``: the flat indices of the masked tokens (``masked_positions``). Given, as the
        batches give them, the forward pass needs no ``nonzero`` on the device: no host-device sync
        and no graph break under ``torch.compile``."""
        hidden = encoder_of(self.mlm)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        labels = labels.reshape(-1)
        if positions is None:
            positions = masked_positions(labels)
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
        logits = masked_lm_logits(self.mlm, picked)
        return F.cross_entropy(logits.float(), labels.index_select(0, positions), reduction="sum")


def masked_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices of the predicted tokens (labels other than -100)."""
    return (labels.reshape(-1) != -100).nonzero().squeeze(1)
