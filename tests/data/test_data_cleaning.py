"""Cleaning steps and the hash rules behind dedup, the validation split and source weights."""

from __future__ import annotations

import numpy as np

from bert_helu.data.cleaning import (
    EMPTY,
    KEPT,
    TOO_SHORT,
    CleaningOptions,
    clean_document,
    clean_text,
    is_validation,
    repeats,
)
from bert_helu.runtime.hashing import text_hash


def test_normalise_lowercase_collapse_whitespace():
    options = CleaningOptions(lowercase=True, unicode_normalization="NFC")
    text = "Caf\u0065\u0301  au\u00a0Lait\r\n\r\n\tDE   Paris \u2003"
    assert clean_text(text, options) == "caf\u00e9 au lait de paris"
    assert clean_text(text, CleaningOptions(lowercase=False)) == "Caf\u00e9 au Lait DE Paris"
    assert clean_text("\ufb01ne", CleaningOptions(unicode_normalization="NFKC")) == "fine"  # ligature


def test_empty_and_too_short_documents_are_flagged():
    options = CleaningOptions(min_chars=10)
    assert clean_document(" \r\n\t ", options) == ("", EMPTY)
    assert clean_document("Too short", options) == ("too short", TOO_SHORT)
    assert clean_document("Long enough text", options) == ("long enough text", KEPT)


def test_dedup_hash_sees_through_case_and_whitespace_after_cleaning():
    options = CleaningOptions()
    a, _ = clean_document("The  Same\r\nDocument", options)
    b, _ = clean_document("the same document", options)
    assert text_hash(a) == text_hash(b)
    assert text_hash(a) != text_hash(a + ".")
    assert -(2**63) <= text_hash(a) < 2**63


def test_validation_split_fraction_and_stability():
    hashes = np.array([text_hash(f"document {i}") for i in range(20_000)])
    held_out = is_validation(hashes, 0.05, seed=42)
    assert abs(held_out.mean() - 0.05) < 0.006
    assert np.array_equal(held_out, is_validation(hashes, 0.05, seed=42))
    assert not np.array_equal(held_out, is_validation(hashes, 0.05, seed=43))
    assert bool(is_validation(hashes[3], 0.05, 42)) == held_out[3]  # scalar form (streaming) agrees


def test_weights_repeat_documents_on_average():
    hashes = np.array([text_hash(f"d{i}") for i in range(20_000)])
    assert (repeats(hashes, 2.0, seed=1) == 2).all()
    assert abs(repeats(hashes, 2.5, seed=1).mean() - 2.5) < 0.02
    assert set(np.unique(repeats(hashes, 0.3, seed=1))) == {0, 1}
    assert abs(repeats(hashes, 0.3, seed=1).mean() - 0.3) < 0.02
