"""GLUE examples as token ids: one tokenization for the splits a run trains and evaluates on, and
for the test sets a GLUE submission predicts, so that both see the same ids."""

from __future__ import annotations

from datasets import Dataset

from bert_helu.runtime.hashing import text_digest


def tokenize(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    """``text_a`` (and ``text_b`` for pair tasks) as ``input_ids`` and the tokenizer's other columns,
    cut to ``max_length`` tokens; unpadded (batches are padded to their longest)."""

    def encode(batch):
        pair = batch["text_b"] if batch["text_b"][0] is not None else None
        return tokenizer(batch["text_a"], pair, truncation=True, max_length=max_length)

    # An explicit fingerprint: otherwise datasets hashes the whole tokenizer with dill on every call
    # (seconds each, more than the tokenisation itself).
    key = f"{ds._fingerprint}-{tokenizer.name_or_path}-{len(tokenizer)}-{max_length}"
    fingerprint = text_digest(key)
    return ds.map(encode, batched=True, remove_columns=["text_a", "text_b"], new_fingerprint=fingerprint)
