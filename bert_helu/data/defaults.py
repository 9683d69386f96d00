"""The ``data:`` section of the pretraining recipe, with every key's default.

``bert_helu.config.load_config`` refuses unknown keys and values of the wrong type, so each key
here has a default of the type it expects (``None`` accepts anything; a list accepts any list).
Each source in ``sources`` is a free-form mapping, checked by ``bert_helu.data.sources.parse_sources``.
"""

from __future__ import annotations

DATA_DEFAULTS: dict = {
    # Each source: {type: wikiextractor|text|jsonl|parquet|hub, path: glob or directory (relative to
    # the current dir), text_field: "text" (jsonl/parquet/hub), split_documents: file|paragraph|line
    # (text), name/config/split/revision (hub), weight: 1.0 (upsampling factor of the source's
    # training documents, fractions sampled by hash), max_docs: null (read at most this many)}.
    "sources": [
        {"type": "wikiextractor", "path": "../shared/data/wikipedia/*.txt.gz"},
        {"type": "text", "path": "../shared/data/books/*.txt"},
    ],
    # Cleaning (the uncased recipe of bert-base-uncased and Cramming).
    "lowercase": True,
    "unicode_normalization": "NFC",  # NFC, NFKC, NFD, NFKD, or "" for none
    "min_chars": 64,  # documents shorter than this after cleaning are dropped
    "dedup": True,  # exact document-level dedup on the cleaned text
    # Tokenizer: an existing directory (AutoTokenizer.from_pretrained), or null to train WordPiece.
    "tokenizer": None,
    "vocab_size": 32768,
    "tokenizer_train_mb": None,  # cap on training text (MB); null = all (streaming: first 256 MB)
    # Packing.
    "seq_len": 128,
    "validation_fraction": 0.01,  # documents held out for MLM validation (chosen by hash)
    "max_validation_sequences": 2000,
    "num_proc": 2,
    "batch_size": 1000,  # documents per tokenize/pack batch (a batch's last partial sequence is dropped)
    "cache_dir": ".cache/bert_helu",
    "streaming": False,
    "seed": 42,
}
