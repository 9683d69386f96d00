"""Model matmul FLOPs of a pretraining step, and the MFU they give: what the benchmarks
(scripts/bench_pretrain.py on a CPU, scripts/bench_gpu.py on a GPU) report against a matmul peak.

Counted from the config alone, so a stock ``transformers`` config of either architecture does (BERT's
``BertConfig``, the crammed encoder's ``ModernBertConfig``)."""

from __future__ import annotations

from bert_helu.models.encoders import architecture_of


def attention_contexts(config, seq_len: int) -> list[int]:
    """Keys each query attends to, per layer: all of them, or ModernBERT's window in a local layer."""
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    window = min(seq_len, getattr(config, "local_attention", seq_len) + 1)  # half a window either side
    return [seq_len if kind == "full_attention" else window for kind in layer_types]


def flops_per_step(config, batch: int, seq_len: int, head_tokens: float) -> float:
    """Model matmul FLOPs of a training step: 2 per multiply-add, x3 for forward + backward.

    Per token and layer: the 4 attention projections (h x h), the FFN (BERT: 2 matrices h x i;
    ModernBERT's gated FFN: 3, since its input projection is h x 2i), and attention itself (scores and
    weighted values, 2 x context x h). The MLM head (h x h transform, h x vocabulary decoder) runs on
    ``head_tokens``: the masked tokens with a sparse head, every token with a dense one. Biases and
    norms are not matmuls.
    """
    h, i = config.hidden_size, config.intermediate_size
    ffn_matrices = 3 if architecture_of(config) == "modernbert" else 2
    per_token = sum(4 * h * h + ffn_matrices * h * i + 2 * c * h for c in attention_contexts(config, seq_len))
    head = h * h + h * config.vocab_size
    return 3 * 2 * (batch * seq_len * per_token + head_tokens * head)


def model_flops_utilization(achieved_flops_per_s: float, peak_flops_per_s: float) -> float:
    """MFU: the model's matmul FLOPs per second over the machine's matmul peak in the same precision."""
    return achieved_flops_per_s / peak_flops_per_s
