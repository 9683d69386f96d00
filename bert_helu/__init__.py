"""bert-helu: budget BERT pretraining and GLUE evaluation for comparing activations.

The names below are imported on first use, so that ``import bert_helu.data`` (a cache hit of the
corpus, say) does not pay for loading torch and transformers' BERT.
"""

import importlib

_EXPORTS = {
    "build_activation": "bert_helu.activations",
    "list_activations": "bert_helu.activations",
    "parse_spec": "bert_helu.activations",
    "register_activation": "bert_helu.activations",
    "UserError": "bert_helu.errors",
    "load_model": "bert_helu.modeling",
    "save_model": "bert_helu.modeling",
    "set_activation": "bert_helu.modeling",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bert_helu' has no attribute {name!r}")
