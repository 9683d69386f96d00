"""Small corpus recipes on the bundled sample."""

from __future__ import annotations

from bert_helu.data import SAMPLE_CORPUS_DIR

WIKI = SAMPLE_CORPUS_DIR / "wikipedia" / "enwiki_extract_part00_first3000.txt.gz"


ALICE = SAMPLE_CORPUS_DIR / "books" / "pg11.txt"


GATSBY = SAMPLE_CORPUS_DIR / "books" / "pg64317.txt.gz"


def small_config(cache_dir, **extra) -> dict:
    return {
        "sources": [
            {"type": "wikiextractor", "path": str(WIKI), "max_docs": 150},
            {"type": "text", "path": str(ALICE)},
        ],
        "vocab_size": 1000,
        "seq_len": 64,
        "validation_fraction": 0.05,
        "num_proc": 1,
        "cache_dir": str(cache_dir),
        **extra,
    }
