"""Activation functions by name. HeLU comes first (``helu``): ReLU forward, a gradient where
``x > -alpha``; then the usual ones (``standard``); the registry that turns a spec such as
``helu:alpha=0.05`` into an ``nn.Module`` and takes new ones (``registry``, which loads the two
above); and activations of your own from ``--import`` or installed entry points (``plugins``).
Nothing else knows how an activation is built: everything asks ``build_activation(spec)``."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    registry="ActivationSpec activation_class build_activation list_activations parse_spec "
    "register_activation",
    helu="HeLU",
)
