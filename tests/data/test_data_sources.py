"""Reading each source format (real sample files where possible) and refusing bad sources."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from bert_helu.data import SAMPLE_CORPUS_DIR
from bert_helu.data.sources import (
    check_readable,
    expand_path,
    load_hub_source,
    parse_sources,
    read_file,
    read_jsonl,
    read_parquet,
    read_text,
    read_wikiextractor,
)
from bert_helu.runtime.errors import UserError

WIKI_SAMPLE = SAMPLE_CORPUS_DIR / "wikipedia" / "enwiki_extract_part00_first3000.txt.gz"
ALICE = SAMPLE_CORPUS_DIR / "books" / "pg11.txt"  # CRLF line endings, as in the shared corpus


def test_wikiextractor_one_document_per_doc_title_dropped_stubs_empty():
    documents = list(read_wikiextractor(WIKI_SAMPLE))
    assert len(documents) == 3000  # every <doc> record, stubs included (cleaning drops and counts them)
    # Record 1 is "Marcus Claudius Tacitus": a title-only stub.
    assert documents[0].strip() == ""
    # Record 2's first line repeats the title; the body starts after it.
    assert documents[1].lstrip().startswith("Jarred Shaw (born September 28, 1990)")
    assert "<doc" not in documents[1] and "</doc>" not in documents[1]
    stubs = sum(1 for d in documents if not d.strip())
    assert 1500 < stubs < 2500  # most records of a WikiExtractor dump are redirects/stubs


def test_text_crlf_and_bom_handled(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst line\r\nsecond line\r\n\r\nNext paragraph\r\n")
    (whole,) = read_text(path, "file")
    assert "\r" not in whole and "\ufeff" not in whole
    assert whole.startswith("First line\nsecond")
    assert list(read_text(path, "paragraph")) == ["First line\nsecond line\n", "Next paragraph\n"]
    assert list(read_text(path, "line")) == ["First line", "second line", "", "Next paragraph"]


def test_real_crlf_book_reads_without_carriage_returns():
    (book,) = read_text(ALICE, "file")
    assert "\r" not in book
    assert "Alice" in book and len(book) > 100_000


def test_gzipped_text_reads_like_plain(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(ALICE.read_bytes()[:5000])
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(read_text(packed, "paragraph")) == list(read_text(plain, "paragraph"))


def test_jsonl_text_field_and_errors(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"body": "one"}) + "\n\n" + json.dumps({"body": None}) + "\n")
    assert list(read_jsonl(path, "body")) == ["one", ""]
    with pytest.raises(UserError, match=r"docs.jsonl:1: no field 'text'"):
        list(read_jsonl(path, "text"))
    path.write_text('{"body": "ok"}\n{not json\n')
    with pytest.raises(UserError, match=r"docs.jsonl:2: not a JSON line"):
        list(read_jsonl(path, "body"))


def test_parquet_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"content": ["alpha", None, "gamma"], "id": [1, 2, 3]}), path)
    assert list(read_parquet(path, "content")) == ["alpha", "", "gamma"]
    with pytest.raises(UserError, match=r"docs.parquet: no column 'text'"):
        list(read_parquet(path, "text"))


def test_parse_sources_expands_globs_and_directories(tmp_path):
    (tmp_path / "AA").mkdir()
    (tmp_path / "AA" / "wiki_00").write_text("<doc id=1>\nT\nbody\n</doc>\n")
    (tmp_path / "AA" / ".hidden").write_text("x")
    (source,) = parse_sources([{"type": "wikiextractor", "path": str(tmp_path)}])
    assert [p.name for p in source.files] == ["wiki_00"]
    assert list(read_file(source, source.files[0])) == ["body\n"]
    assert expand_path(str(tmp_path / "AA" / "wiki_*"))[0].name == "wiki_00"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "pdf", "path": "x"}, "type must be one of"),
        ({"type": "text"}, "needs 'path'"),
        ({"type": "text", "path": "x", "colour": "red"}, "unknown key"),
        ({"type": "text", "path": "x", "weight": 0}, "weight must be a positive, finite number"),
        ({"type": "text", "path": "x", "max_docs": 2.5}, "max_docs must be a positive integer"),
        ({"type": "hub"}, "needs 'name'"),
        ("books/*.txt", "must be a mapping"),
    ],
)
def test_bad_source_mappings_are_refused(raw, message):
    with pytest.raises(UserError, match=message):
        parse_sources([raw])


def test_missing_path_names_it(tmp_path):
    with pytest.raises(UserError, match=r"nowhere/\*\.txt: no such file"):
        parse_sources([{"type": "text", "path": str(tmp_path / "nowhere" / "*.txt")}])


def test_binary_file_is_not_text(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(UserError, match=r"model.bin: not a text file"):
        check_readable(path, "text")


def test_gz_that_is_not_gzip_and_truncated_gzip(tmp_path):
    fake = tmp_path / "fake.txt.gz"
    fake.write_text("plain text pretending")
    with pytest.raises(UserError, match=r"fake.txt.gz: named .gz but not a gzip file"):
        check_readable(fake, "text")
    truncated = tmp_path / "cut.txt.gz"
    truncated.write_bytes(WIKI_SAMPLE.read_bytes()[:100_000])
    check_readable(truncated, "wikiextractor")  # the head is fine: the damage shows while reading
    with pytest.raises(UserError, match=r"cut.txt.gz: unreadable gzip"):
        list(read_wikiextractor(truncated))


def test_hub_offline_fails_fast_pointing_at_local_files(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    (source,) = parse_sources([{"type": "hub", "name": "wikimedia/wikipedia", "config": "20231101.en"}])
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"hub dataset 'wikimedia/wikipedia'.*type: wikiextractor, path:"):
        load_hub_source(source, streaming=False)
    assert time.perf_counter() - start < 10


def test_hub_unreachable_fails_fast(monkeypatch):
    from huggingface_hub import constants

    # Online mode, but the endpoint refuses connections: the short probe answers, not a 25 s retry loop.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    (source,) = parse_sources([{"type": "hub", "name": "bookcorpus"}])
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"hub unreachable.*HF_HUB_OFFLINE=1.*local files"):
        load_hub_source(source, streaming=True)
    assert time.perf_counter() - start < 10
