"""bert-helu: budget BERT pretraining and GLUE evaluation for comparing activations."""

from bert_helu.activations import build_activation, list_activations, parse_spec, register_activation
from bert_helu.errors import UserError
from bert_helu.modeling import load_model, save_model, set_activation

__all__ = [
    "UserError",
    "build_activation",
    "list_activations",
    "load_model",
    "parse_spec",
    "register_activation",
    "save_model",
    "set_activation",
]
__version__ = "0.1.0"
