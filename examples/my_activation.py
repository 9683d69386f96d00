"""An activation of your own, usable by every program without writing a launcher.

    python -m pretrain --import examples.my_activation --activation scaled_tanh:scale=2 \\
        --config configs/pretrain/demo.yaml --output-dir runs/scaled_tanh
    python -m finetune --import examples.my_activation --checkpoints runs/scaled_tanh/final \\
        --tasks sst2 --glue-dir bert_helu/sample_data/glue_data --config configs/finetune/cpu-fast.yaml
    python -m pretrain --import examples.my_activation --list-activations

Run them from the repository root (``examples.my_activation`` is found from the current directory),
or pass the file itself: ``--import path/to/my_activation.py``.

Parameters are read as their annotations say: ``scale=2`` is a float, ``hard=true`` a boolean and
``gate=sigmoid`` a string. The checkpoint records the spec (``hidden_act:
"bert_helu:scaled_tanh:scale=2"``), so fine-tuning and analysis need the same ``--import``.
Keep parameters plain values: learnable weights inside an activation module are not saved.
"""

import torch
import torch.nn.functional as F
from torch import nn

from bert_helu import UserError, register_activation

GATES = {"none": None, "sigmoid": torch.sigmoid}


@register_activation("scaled_tanh")
class ScaledTanh(nn.Module):
    """``scale * tanh(x)`` (``hard=true``: clipped to [-1, 1] instead), optionally times ``sigmoid(x)``."""

    def __init__(self, scale: float = 1.0, hard: bool = False, gate: str = "none"):
        super().__init__()
        if gate not in GATES:
            # a UserError is reported as one line naming the problem, with exit status 2
            raise UserError(f"scaled_tanh: gate must be one of {', '.join(GATES)}, got {gate!r}")
        self.scale, self.hard, self.gate = scale, hard, GATES[gate]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.scale * (F.hardtanh(x) if self.hard else torch.tanh(x))
        return y if self.gate is None else y * self.gate(x)
