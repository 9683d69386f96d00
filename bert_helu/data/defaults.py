"""The ``data:`` section of the pretraining recipe: every key's default (``DATA_DEFAULTS``) and
meaning (``DATA_KEY_HELP``, the text of docs/config.md; a test fails when a key has none).

``bert_helu.runtime.config.load_config`` refuses unknown keys and values of the wrong type, so each key
here has a default of the type it expects (``None`` accepts anything; a list accepts any list).
Each source in ``sources`` is a free-form mapping, checked by ``bert_helu.data.sources.parse_sources``
(its keys are described in ``bert_helu.data.sources.SOURCE_KEY_HELP``).
"""

from __future__ import annotations

from bert_helu.runtime.errors import UserError
from bert_helu.runtime.rules import is_int, is_number

DATA_DEFAULTS: dict = {
    "sources": [
        {"type": "wikiextractor", "path": "../shared/data/wikipedia/*.txt.gz"},
        {"type": "text", "path": "../shared/data/books/*.txt"},
    ],
    "lowercase": True,
    "unicode_normalization": "NFC",
    "min_chars": 64,
    "dedup": True,
    "tokenizer": None,
    "vocab_size": 32768,
    "tokenizer_train_mb": None,
    "seq_len": 128,
    "validation_fraction": 0.01,
    "max_validation_sequences": 2000,
    "num_proc": 2,
    "batch_size": 1000,
    "cache_dir": ".cache/bert_helu",
    "streaming": False,
    "seed": 42,
}

# One line per key of DATA_DEFAULTS (without the "data." prefix).
DATA_KEY_HELP = {
    "sources": "where the text comes from: a list of sources, each a mapping whose keys are listed under "
    "'Corpus sources' below; relative paths are resolved against the current directory",
    "lowercase": "lowercase the text (the uncased recipe of bert-base-uncased and Cramming)",
    "unicode_normalization": "Unicode normalization of the text: NFC, NFKC, NFD, NFKD, or an empty string "
    "for none",
    "min_chars": "documents shorter than this many characters after cleaning are dropped",
    "dedup": "drop exact duplicate documents (compared after cleaning; the first one is kept)",
    "tokenizer": "a tokenizer directory to use (anything AutoTokenizer loads); null trains a WordPiece "
    "tokenizer on the training documents. Set to model.init_from when that is set and this is null",
    "vocab_size": "vocabulary size of the trained WordPiece tokenizer",
    "tokenizer_train_mb": "at most this many MB of text train the tokenizer; null: all of it (streaming: "
    "the first 256 MB)",
    "seq_len": "tokens per packed training sequence, [CLS] and [SEP] included",
    "validation_fraction": "share of documents held out for the validation MLM loss (chosen by a hash of "
    "the text, so the same documents whatever the order)",
    "max_validation_sequences": "the validation set is cut to this many sequences",
    "num_proc": "processes that read, tokenize and pack the corpus",
    "batch_size": "documents per tokenize-and-pack batch; the last partial sequence of each batch is dropped",
    "cache_dir": "where the prepared corpus is cached, under a fingerprint of the sources' content and of "
    "every option above; a later run with the same fingerprint loads it in about a second",
    "streaming": "read, clean, dedup and pack the text on the fly instead of preparing a cache first (for "
    "corpora larger than memory or disk; with several loader workers, dedup is per worker)",
    "seed": "seed of the validation hold-out and of source upsampling",
}


def data_config(data_cfg) -> dict:
    """``data_cfg`` (a recipe's ``data`` section, or some of its keys) completed with the defaults
    and checked by ``check_data``."""
    cfg = {**DATA_DEFAULTS, **dict(data_cfg or {})}
    unknown = sorted(set(cfg) - set(DATA_DEFAULTS))
    if unknown:
        raise UserError(f"unknown data option(s) {unknown} (known: {sorted(DATA_DEFAULTS)})")
    check_data(cfg)
    return cfg


def check_data(cfg: dict) -> None:
    """The values of a complete ``data`` section that its types alone do not rule out."""
    from bert_helu.data.cleaning import CleaningOptions

    positive_ints = ("vocab_size", "seq_len", "num_proc", "batch_size", "max_validation_sequences")
    for key in positive_ints:
        if not is_int(cfg[key]) or cfg[key] < 1:
            raise UserError(f"data.{key} must be a positive integer, got {cfg[key]!r}")
    if cfg["seq_len"] < 8:
        raise UserError(f"data.seq_len must be at least 8, got {cfg['seq_len']}")
    if not 0.0 <= cfg["validation_fraction"] < 1.0:
        raise UserError(f"data.validation_fraction must be in [0, 1), got {cfg['validation_fraction']}")
    if cfg["seed"] < 0:
        raise UserError("data.seed must be >= 0")
    mb = cfg["tokenizer_train_mb"]
    if mb is not None and (not is_number(mb) or mb <= 0):
        raise UserError(f"data.tokenizer_train_mb must be a positive number or null, got {mb!r}")
    CleaningOptions.from_config(cfg)
