"""MLM masking statistics: rate, 80/10/10, specials never touched, labels, determinism."""

from __future__ import annotations

import pytest
import torch

from bert_helu.data import SAMPLE_CORPUS_DIR, MLMMasker
from bert_helu.data.sources import read_text
from bert_helu.data.tokenizer import train_wordpiece


@pytest.fixture(scope="module")
def tokenizer():
    (book,) = read_text(SAMPLE_CORPUS_DIR / "books" / "pg11.txt")
    return train_wordpiece([[book.lower()]], vocab_size=800, lowercase=True)


@pytest.fixture(scope="module")
def batch(tokenizer):
    """Packed-like rows: [CLS] words [SEP] words [SEP], plus a padded tail in the last rows."""
    (book,) = read_text(SAMPLE_CORPUS_DIR / "books" / "pg11.txt")
    ids = tokenizer(book[:60_000], add_special_tokens=False)["input_ids"]
    rows, length = 96, 128
    body = torch.tensor(ids[: rows * (length - 2)]).view(rows, length - 2)
    cls = torch.full((rows, 1), tokenizer.cls_token_id)
    sep = torch.full((rows, 1), tokenizer.sep_token_id)
    out = torch.cat([cls, body, sep], dim=1)
    out[:, 60] = tokenizer.sep_token_id  # a document boundary inside each row
    out[-8:, 100:] = tokenizer.pad_token_id
    return out


def special_mask(tokenizer, ids):
    return torch.isin(ids, torch.tensor(tokenizer.all_special_ids))


@pytest.mark.parametrize("probability", [0.15, 0.25])
def test_rate_and_80_10_10(tokenizer, batch, probability):
    masker = MLMMasker(tokenizer, mlm_probability=probability)
    masked, labels = masker(batch, torch.Generator().manual_seed(0))
    assert masked.dtype == labels.dtype == torch.long and masked.shape == labels.shape == batch.shape
    maskable = ~special_mask(tokenizer, batch)
    predicted = labels != -100
    rate = predicted.sum().item() / maskable.sum().item()
    # ~11k maskable tokens: the binomial standard deviation of the rate is < 0.005.
    assert abs(rate - probability) < 0.02
    assert torch.equal(labels[predicted], batch[predicted])
    chosen = masked[predicted]
    as_mask = (chosen == tokenizer.mask_token_id).float().mean().item()
    unchanged = (chosen == batch[predicted]).float().mean().item()
    as_random = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.04
    assert abs(unchanged - 0.1) < 0.03  # includes random draws that hit the same token (1/800)
    assert abs(as_random - 0.1) < 0.03
    assert torch.equal(masked[~predicted], batch[~predicted])  # nothing else changes


def test_special_tokens_never_masked_nor_inserted(tokenizer, batch):
    masker = MLMMasker(tokenizer, mlm_probability=0.5)
    for seed in range(5):
        masked, labels = masker(batch, torch.Generator().manual_seed(seed))
        special = special_mask(tokenizer, batch)
        assert (labels[special] == -100).all()
        assert torch.equal(masked[special], batch[special])
        predicted = labels != -100
        replaced = predicted & (masked != batch) & (masked != tokenizer.mask_token_id)
        assert replaced.any()
        assert not special_mask(tokenizer, masked[replaced]).any()  # random tokens are never specials


def test_deterministic_under_generator_state(tokenizer, batch):
    masker = MLMMasker(tokenizer, mlm_probability=0.25)
    a = masker(batch, torch.Generator().manual_seed(7))
    b = masker(batch, torch.Generator().manual_seed(7))
    c = masker(batch, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    first = masker(batch, generator)
    generator.set_state(state)
    assert torch.equal(masker(batch, generator)[1], first[1])  # resumable from a saved state


def test_sparse_prediction_matches_dense_loss(tokenizer, batch):
    """The loop can run the MLM head on ``labels != -100`` only: same loss as the dense form."""
    masker = MLMMasker(tokenizer)
    masked, labels = masker(batch[:4], torch.Generator().manual_seed(1))
    logits = torch.randn(*labels.shape, len(tokenizer), generator=torch.Generator().manual_seed(2))
    dense = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
    positions = labels != -100
    sparse = torch.nn.functional.cross_entropy(logits[positions], labels[positions])
    assert torch.allclose(dense, sparse)


def test_int32_input_accepted_and_bad_probability_refused(tokenizer, batch):
    masker = MLMMasker(tokenizer)
    masked, _ = masker(batch.int(), torch.Generator().manual_seed(0))
    assert masked.dtype == torch.long
    with pytest.raises(ValueError, match="mlm_probability"):
        MLMMasker(tokenizer, mlm_probability=1.5)
