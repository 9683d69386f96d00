"""The WordPiece tokenizer: train one on the cleaned corpus, or load an existing directory.

A trained tokenizer is saved with ``save_pretrained`` so ``transformers.AutoTokenizer.from_pretrained``
loads it with no project code, and it carries its own normaliser (BertNormalizer, lower-casing and
accent stripping for the uncased recipe): GLUE text later gets the same treatment as the corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from bert_helu.runtime.errors import UserError, first_line
from bert_helu.runtime.hashing import named_files_digest

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def train_wordpiece(texts: Iterable[list[str]], vocab_size: int, lowercase: bool, length: int | None = None):
    """A BERT WordPiece tokenizer trained on batches of cleaned documents."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 100:
        raise UserError(f"data.vocab_size must be at least {len(SPECIAL_TOKENS) + 100}, got {vocab_size}")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##"
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        do_lower_case=lowercase,
        model_max_length=512,
    )


def load_tokenizer(directory: str | Path):
    """``AutoTokenizer.from_pretrained(directory)`` as a fast tokenizer with the BERT special tokens."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: tokenizer directory not found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as err:  # transformers raises OSError, ValueError, json errors, ...
        raise UserError(
            f"{directory}: not a tokenizer transformers can load ({first_line(err, 200)})"
        ) from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise UserError(
            f"{directory}: needs a fast tokenizer (tokenizer.json), got {type(tokenizer).__name__}"
        )
    missing = [
        name
        for name in ("cls_token", "sep_token", "mask_token", "pad_token")
        if getattr(tokenizer, name) is None
    ]
    if missing:
        raise UserError(f"{directory}: tokenizer lacks BERT special tokens: {', '.join(missing)}")
    return tokenizer


def tokenizer_digest(directory: str | Path) -> str:
    """Content hash of the files that define a tokenizer (for the cache fingerprint)."""
    directory = Path(directory)
    files = [directory / name for name in _TOKENIZER_FILES if (directory / name).is_file()]
    if not files:
        raise UserError(f"{directory}: not a tokenizer directory (none of {', '.join(_TOKENIZER_FILES)})")
    return named_files_digest(files)


def text_batches(
    dataset, column: str = "text", batch_size: int = 1000, max_bytes: int | None = None
) -> Iterator[list[str]]:
    """Batches of a text column for ``train_from_iterator``, stopping after ``max_bytes`` if given."""
    seen = 0
    for batch in dataset.iter(batch_size=batch_size):
        texts = batch[column]
        yield texts
        seen += sum(len(t) for t in texts)
        if max_bytes is not None and seen >= max_bytes:
            return
