"""What both preparation modes share: the ``PreparedCorpus`` they return, the source checks made
before any work, and how a description of the inputs becomes a cache fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bert_helu.data.sources import Source, check_readable
from bert_helu.data.tokenizer import load_tokenizer
from bert_helu.runtime.hashing import CORPUS_DIGEST_BYTES, json_digest, named_files_digest

# Bump when a code change alters prepared data, so old caches are not reused.
PIPELINE_VERSION = 4  # 4: no doubled special tokens where a piece met a document boundary


@dataclass
class PreparedCorpus:
    """Packed sequences (column ``input_ids``, each ``seq_len`` ints) and the tokenizer that made them."""

    train: object  # datasets.Dataset (IterableDataset when streaming)
    validation: object  # datasets.Dataset
    tokenizer_dir: Path
    summary: dict
    fingerprint: str
    loaded_tokenizer: object = None

    @property
    def tokenizer(self):
        """The ``transformers.PreTrainedTokenizerFast``, loaded on first use: importing transformers'
        tokenizers pulls in torch (~3 s), which a cache check (``--prepare-only``) does not need."""
        if self.loaded_tokenizer is None:
            self.loaded_tokenizer = load_tokenizer(self.tokenizer_dir)
        return self.loaded_tokenizer

    @property
    def vocabulary(self) -> str:
        """Digest of the tokenizer's files. The fingerprint names the tokenizer's recipe, not the
        vocabulary trained from it, and tokenizers' WordPiece trainer is not deterministic
        (huggingface/tokenizers#1794): a corpus rebuilt under one fingerprint may tokenize otherwise."""
        directory = Path(self.tokenizer_dir)
        if directory.is_dir():
            return named_files_digest(sorted(p for p in directory.iterdir() if p.is_file()))
        return json_digest(sorted(self.tokenizer.get_vocab().items()))  # a tokenizer named on the hub


def check_sources_readable(sources: list[Source]) -> None:
    """Fail before any work, naming the file, when a source file cannot be what its type says."""
    for source in sources:
        for path in source.files:
            check_readable(path, source.type)


def fingerprint_of(identity: dict) -> str:
    """16 hex digits naming everything in ``identity`` plus the pipeline version."""
    described = {"version": PIPELINE_VERSION, **identity}
    return json_digest(described, CORPUS_DIGEST_BYTES)
