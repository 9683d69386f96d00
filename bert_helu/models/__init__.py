"""The encoders and what is done with them. ``encoders``: stock ``transformers`` classes (BERT; and
ModernBERT as the crammed encoder: pre-LN, no biases, gated FFN) with a registry activation in their
FFNs, saved so that stock ``transformers`` loads them, and the encoder, head and FFN sites that the
loop, telemetry and analysis reach. ``sparse_mlm``: the MLM loss on the masked positions only.
``optimizer``: AdamW without weight decay on biases and norms. ``int8``, ``sparse_ffn``: faster
inference. ``card``, ``hub``: model cards and uploads. ``provenance``: where a checkpoint came from.
``flops``: the matmul FLOPs of a training step, for MFU."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    encoders="build_classifier build_mlm_model load_model save_model set_activation",
    sparse_mlm="SparseMLM",
)
