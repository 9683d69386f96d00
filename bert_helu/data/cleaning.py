"""Document cleaning: Unicode normalisation, lower-casing, whitespace collapse, length filter, and
the 64-bit hashes used for exact dedup and for hash-based choices (validation split, weights).

Each step is a pure function of one document, so it runs in any worker and in streaming mode alike;
``clean_document`` says why a document is dropped so every step can be counted.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from bert_helu.runtime.errors import UserError

KEPT, EMPTY, TOO_SHORT, DUPLICATE = "kept", "empty", "too_short", "duplicate"
_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


@dataclass(frozen=True)
class CleaningOptions:
    lowercase: bool = True
    unicode_normalization: str = "NFC"
    min_chars: int = 64
    dedup: bool = True

    @classmethod
    def from_config(cls, cfg) -> CleaningOptions:
        form = cfg.get("unicode_normalization") or ""
        if form and form not in _FORMS:
            raise UserError(
                f"data.unicode_normalization must be one of {', '.join(_FORMS)} or '', got {form!r}"
            )
        if cfg["min_chars"] < 0:
            raise UserError(f"data.min_chars must be >= 0, got {cfg['min_chars']}")
        return cls(bool(cfg["lowercase"]), form, int(cfg["min_chars"]), bool(cfg["dedup"]))


def clean_text(text: str, options: CleaningOptions) -> str:
    if options.unicode_normalization:
        text = unicodedata.normalize(options.unicode_normalization, text)
    if options.lowercase:
        text = text.lower()
    # split() with no argument splits on every Unicode whitespace run (\r, \n, \t, NBSP, ...).
    return " ".join(text.split())


def clean_document(text: str, options: CleaningOptions) -> tuple[str, str]:
    """``(cleaned text, status)`` where status is KEPT, EMPTY or TOO_SHORT."""
    cleaned = clean_text(text, options)
    if not cleaned:
        return cleaned, EMPTY
    if len(cleaned) < options.min_chars:
        return cleaned, TOO_SHORT
    return cleaned, KEPT


def unit_interval(hashes, seed: int, salt: int) -> np.ndarray:
    """A reproducible uniform number in [0, 1) per document hash, independent for each salt.

    SplitMix64 finaliser over (hash, seed, salt): choices made from it (validation split, weight
    sampling) depend only on a document's content, so streaming and cached preparation agree.
    """
    with np.errstate(over="ignore"):
        x = np.asarray(hashes, dtype=np.int64).view(np.uint64)
        x = x + np.uint64((seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


SPLIT_SALT, WEIGHT_SALT = 1, 2


def is_validation(hashes, fraction: float, seed: int) -> np.ndarray:
    return unit_interval(hashes, seed, SPLIT_SALT) < fraction


def repeats(hashes, weight: float, seed: int) -> np.ndarray:
    """How many times each training document is used for a source of this weight.

    weight 2.5 -> every document twice, and a third time for half of them (chosen by hash);
    weight 0.3 -> 30% of the documents once, the rest not at all.
    """
    whole, fraction = divmod(weight, 1.0)
    extra = unit_interval(hashes, seed, WEIGHT_SALT) < fraction
    return (int(whole) + extra).astype(np.int64)
