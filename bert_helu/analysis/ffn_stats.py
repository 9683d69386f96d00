"""FFN statistics of a model over a set of texts (paper Figure 2; "ReLU Strikes Back" sparsity)."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from bert_helu.analysis.inputs import usable_length
from bert_helu.pretraining.telemetry import FFNMonitor


def batches(texts: list[tuple[str, str | None]], tokenizer, batch_size: int, max_length: int):
    """Tokenised batches (padded to the longest in the batch) of (text_a, text_b) pairs."""
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers have none; the mask hides it anyway
        tokenizer.pad_token = tokenizer.eos_token
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        first = [a for a, _ in chunk]
        second = [b for _, b in chunk]
        pairs = second if all(b is not None for b in second) else None
        yield tokenizer(
            first, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )


def collect_ffn_stats(
    model: nn.Module,
    tokenizer,
    texts: list[tuple[str, str | None]],
    batch_size: int = 32,
    max_length: int = 128,
    band_alpha: float = 0.05,
    histogram_bins: int = 320,
    histogram_range: tuple[float, float] = (-8.0, 8.0),
) -> dict:
    """Per-layer zero fraction, dead-neuron rate, HeLU-band share and pre-activation histogram.

    Padding tokens are left out (the attention mask goes to the model as a keyword).
    """
    model.eval()
    max_length = usable_length(model, max_length)
    tokens = 0
    accepted = set(inspect.signature(model.forward).parameters)
    with (
        FFNMonitor(
            model,
            histogram_bins=histogram_bins,
            histogram_range=histogram_range,
            collect_histograms=True,
            band_alpha=band_alpha,
        ) as monitor,
        torch.inference_mode(),
    ):
        for batch in batches(texts, tokenizer, batch_size, max_length):
            model(**{key: value for key, value in batch.items() if key in accepted})
            tokens += int(batch["attention_mask"].sum())
        summary = monitor.summary()
    summary.update(samples=len(texts), tokens=tokens, max_length=max_length)
    return summary
