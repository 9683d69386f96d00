"""scripts/get_data.py: the writers on small local data shaped as the hub serves it (read back by the
project's own readers), resuming, checksums, and failing fast where the hub is unreachable."""

import hashlib
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO
from datasets import Dataset

from bert_helu import UserError
from bert_helu.data.fetch import (
    GLUE_CONFIGS,
    Checksums,
    Report,
    books_corpus,
    glue_files,
    wikipedia_corpus,
    write_corpus,
    write_glue,
)
from bert_helu.data.sources import read_text, read_wikiextractor
from bert_helu.glue.tasks import TASKS, load_task
from bert_helu.glue.test_sets import SUBMISSION_FILES, read_test_tsv

PAIRS = [("A man is playing a guitar.", "Someone plays music."), ("Tabs\tand\nnewlines vanish.", "Yes.")]


def hub_split(config, split):
    """Two rows of one nyu-mll/glue split, with the hub's column names (test splits: label -1)."""
    task = TASKS["mnli" if config == "ax" else config]
    test = split.startswith("test")
    rows = {"idx": [10, 11]}
    for field, texts in zip(task.hub_text_fields, zip(*PAIRS, strict=True), strict=False):
        rows[field] = list(texts)
    if test:
        rows["label"] = [-1, -1]
    elif task.is_regression:
        rows["label"] = [4.25, 0.5]
    else:
        rows["label"] = [0, task.num_labels - 1]
    return Dataset.from_dict(rows)


def fake_hub(calls):
    def load(config):
        calls.append(config)
        return {split: hub_split(config, split) for _, split, _ in glue_files(config)}

    return load


def build_glue(root, calls):
    report = Report(say=lambda line: None)
    write_glue(root, GLUE_CONFIGS, fake_hub(calls), report, Checksums(root))
    return report


def test_glue_layout_reads_back_with_the_projects_readers(tmp_path):
    build_glue(tmp_path, [])
    glue = tmp_path / "glue_data"
    for task in TASKS.values():
        splits = load_task(task, glue)
        for ds in [splits.train, *splits.evals.values()]:
            assert ds["text_a"] == [PAIRS[0][0], "Tabs and newlines vanish."]
            if task.is_regression:
                assert ds["label"] == [4.25, 0.5]
            else:
                assert ds["label"] == [0, task.num_labels - 1]
            second = ds["text_b"] if len(task.hub_text_fields) > 1 else [None, None]
            assert second == ([PAIRS[0][1], PAIRS[1][1]] if len(task.hub_text_fields) > 1 else [None, None])
    for sub in SUBMISSION_FILES:  # every test file, AX included, in the layout the submission reads
        ds = read_test_tsv(glue / sub.path, sub)
        assert ds["index"] == ["10", "11"] and ds["text_a"][0] == PAIRS[0][0]
    assert (glue / "CoLA" / "train.tsv").read_text().startswith("glue\t0\t*\tA man")  # headerless, 4 columns
    assert (glue / "QQP" / "test.tsv").read_text().startswith("id\tquestion1\tquestion2\n")
    assert (glue / "diagnostic" / "diagnostic.tsv").read_text().startswith("index\tsentence1\tsentence2\n")
    expected = {
        "train.tsv",
        "dev_matched.tsv",
        "dev_mismatched.tsv",
        "test_matched.tsv",
        "test_mismatched.tsv",
    }
    assert {p.name for p in (glue / "MNLI").iterdir()} == expected


def test_checksums_cover_every_file_and_a_rerun_downloads_nothing(tmp_path):
    calls = []
    first = build_glue(tmp_path, calls)
    assert (
        calls == GLUE_CONFIGS and first.written == 30
    )  # 8 tasks x (train, dev, test), MNLI's 5, AX and first.skipped == 0
    sums = dict(reversed(line.split("  ")) for line in (tmp_path / "SHA256SUMS").read_text().splitlines())
    files = sorted(p for p in (tmp_path / "glue_data").rglob("*.tsv"))
    assert sorted(sums) == sorted(p.relative_to(tmp_path).as_posix() for p in files)
    assert all(
        hashlib.sha256(p.read_bytes()).hexdigest() == sums[p.relative_to(tmp_path).as_posix()] for p in files
    )

    calls.clear()
    (tmp_path / "glue_data" / "RTE" / "test.tsv").unlink()
    untouched = (tmp_path / "glue_data" / "RTE" / "train.tsv").stat().st_mtime_ns
    second = build_glue(tmp_path, calls)
    assert calls == ["rte"] and second.written == 1 and second.skipped == 29
    assert (tmp_path / "glue_data" / "RTE" / "train.tsv").stat().st_mtime_ns == untouched
    assert (tmp_path / "glue_data" / "RTE" / "test.tsv").is_file()


def articles(n):
    return [
        {"id": str(i), "url": f"https://en.wikipedia.org/wiki?curid={i}", "title": f'Article "{i}"',
         "text": f"Article {i} starts here.\n\nIts second paragraph.\n</doc> is just text here."}
        for i in range(n)
    ]  # fmt: skip


def stream_of(records, starts, fail_after=None):
    def records_from(start):
        starts.append(start)
        for served, record in enumerate(records[start:]):
            if fail_after is not None and served == fail_after:
                raise KeyboardInterrupt  # the connection dropped, or the user pressed Ctrl-C
            yield record

    return records_from


def build(root, corpus, records, limit=None, fail_after=None, starts=None):
    report = Report(say=lambda line: None)
    records_from = stream_of(records, [] if starts is None else starts, fail_after)
    write_corpus(root, corpus, records_from, limit, report, Checksums(root))
    return report


def test_wikipedia_shards_are_wikiextractor_documents(tmp_path):
    build(tmp_path, wikipedia_corpus("20231101.en", shard_articles=4), articles(10))
    shards = sorted((tmp_path / "wikipedia").glob("*.txt.gz"))
    assert [p.name for p in shards] == [f"enwiki_20231101_part{i:04d}.txt.gz" for i in range(3)]
    docs = [doc for shard in shards for doc in read_wikiextractor(shard)]
    assert len(docs) == 10  # titles dropped, bodies whole, a '</doc>' inside a body did not end the record
    assert docs[3] == "\nArticle 3 starts here.\n\nIts second paragraph.\n </doc> is just text here.\n"


def test_an_interrupted_build_resumes_after_its_last_shard_with_the_same_bytes(tmp_path):
    corpus = wikipedia_corpus("20231101.en", shard_articles=4)
    records = articles(10)
    build(tmp_path / "whole", corpus, records)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "cut", corpus, records, fail_after=6)  # one shard finished, the second not
    assert [p.name for p in (tmp_path / "cut" / "wikipedia").glob("*.gz")] == [
        "enwiki_20231101_part0000.txt.gz"
    ]
    starts = []
    report = build(tmp_path / "cut", corpus, records, starts=starts)
    assert starts == [4] and report.written == 2 and report.skipped == 1
    for name in ("part0000", "part0001", "part0002"):
        whole = (tmp_path / "whole" / "wikipedia" / f"enwiki_20231101_{name}.txt.gz").read_bytes()
        assert (tmp_path / "cut" / "wikipedia" / f"enwiki_20231101_{name}.txt.gz").read_bytes() == whole
    starts.clear()
    assert build(tmp_path / "cut", corpus, records, starts=starts).written == 0 and starts == []  # all done


def test_a_larger_limit_redoes_the_partial_last_shard_and_options_may_not_change(tmp_path):
    corpus = wikipedia_corpus("20231101.en", shard_articles=4)
    build(tmp_path, corpus, articles(20), limit=5)
    starts = []
    assert build(tmp_path, corpus, articles(20), limit=5, starts=starts).written == 0 and starts == []
    build(tmp_path, corpus, articles(20), limit=10, starts=starts)
    assert starts == [4]  # the 1-article shard is redone as a full one
    counts = [sum(1 for _ in read_wikiextractor(p)) for p in sorted((tmp_path / "wikipedia").glob("*.gz"))]
    assert counts == [4, 4, 2]
    with pytest.raises(
        UserError, match="built with .*shard_records.: 4.*use the same options or another --out"
    ):
        build(tmp_path, wikipedia_corpus("20231101.en", shard_articles=8), articles(20))


def test_book_shards_are_paragraphs_of_consecutive_sentences(tmp_path):
    sentences = [{"text": f"sentence number {i} ."} for i in range(7)] + [{"text": "  "}]
    build(tmp_path, books_corpus(shard_sentences=5, sentences_per_paragraph=2), sentences)
    shards = sorted((tmp_path / "books").glob("*.txt"))
    assert [p.name for p in shards] == ["bookcorpus_part0000.txt", "bookcorpus_part0001.txt"]
    paragraphs = [doc for shard in shards for doc in read_text(shard, "paragraph")]
    assert paragraphs[0] == "sentence number 0 .\nsentence number 1 .\n"
    assert [p.count("\n") for p in paragraphs] == [2, 2, 1, 2]  # a shard's last paragraph may be shorter


def _run_script(env, tmp_path):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "scripts/get_data.py", "--out", str(tmp_path / "data")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    return done, time.monotonic() - start


def test_offline_it_stops_in_seconds_with_one_line_naming_what_it_needed(tmp_path):
    done, seconds = _run_script({**os.environ, "HF_HUB_OFFLINE": "1"}, tmp_path)
    assert done.returncode == 2 and seconds < 30
    assert done.stderr.strip().splitlines() == [
        "error: HF_HUB_OFFLINE is set, but this needs the Hugging Face hub (https://huggingface.co) for: "
        "nyu-mll/glue, wikimedia/wikipedia, bookcorpus/bookcorpus"
    ]
    assert not (tmp_path / "data").exists()


def test_an_unreachable_hub_is_one_line_too(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there: refused at once
    done, seconds = _run_script(env, tmp_path)
    assert done.returncode == 2 and seconds < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: cannot reach the Hugging Face hub at http://127.0.0.1:9"
    )
    assert lines[0].endswith("needed: nyu-mll/glue, wikimedia/wikipedia, bookcorpus/bookcorpus")
    assert not (tmp_path / "data").exists()
