"""Pretraining data: sources -> cleaning/dedup -> WordPiece tokenizer -> packed, cached sequences,
and MLM masking for the loop. ``bert_helu.glue.tasks`` (GLUE tasks) lives beside it.

    corpus = prepare_corpus(cfg.data)          # cfg.data defaults: DATA_DEFAULTS
    print(format_summary(corpus.summary))
    masker = MLMMasker(corpus.tokenizer, mlm_probability=0.15)
"""

from pathlib import Path

from bert_helu.data.corpus import PreparedCorpus
from bert_helu.data.defaults import DATA_DEFAULTS
from bert_helu.data.prepare import format_summary, prepare_corpus

# A small attributed slice of the real corpus (Wikipedia + Project Gutenberg), shipped for the
# offline demo and tests; see its ATTRIBUTION.md.
SAMPLE_CORPUS_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "corpus"


def sample_corpus_sources() -> list[dict]:
    """``data.sources`` for the bundled sample corpus (absolute paths: any working directory)."""
    return [
        {"type": "wikiextractor", "path": str(SAMPLE_CORPUS_DIR / "wikipedia" / "*.txt.gz")},
        {"type": "text", "path": str(SAMPLE_CORPUS_DIR / "books" / "*.txt*")},
    ]


__all__ = [
    "DATA_DEFAULTS",
    "SAMPLE_CORPUS_DIR",
    "MLMMasker",
    "PreparedCorpus",
    "format_summary",
    "prepare_corpus",
    "sample_corpus_sources",
]


def __getattr__(name):
    # MLMMasker needs torch; importing it lazily keeps a corpus cache hit free of torch's import time.
    if name == "MLMMasker":
        from bert_helu.data.masking import MLMMasker

        return MLMMasker
    raise AttributeError(f"module 'bert_helu.data' has no attribute {name!r}")
