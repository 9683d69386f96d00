"""bert-helu: budget BERT pretraining and GLUE evaluation for comparing activations.

The names below are imported on first use, so that ``import bert_helu.data`` (a cache hit of the
corpus, say) does not pay for loading torch and transformers' BERT.
"""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    **{
        "activations": "build_activation list_activations parse_spec register_activation",
        "runtime.errors": "UserError",
        "models.encoders": "load_model save_model set_activation",
    },
)
__version__ = "0.1.0"
