"""Build the local data layout the recipes and tests read, from the Hugging Face hub.

    <out>/glue_data/<Task>/{train,dev,test}.tsv   the nine GLUE tasks in the original TSV layout (MNLI:
                                                  dev_matched, dev_mismatched, test_matched, test_mismatched),
                                                  and diagnostic/diagnostic.tsv (AX)
    <out>/wikipedia/enwiki_<config>_partNNNN.txt.gz   English Wikipedia in WikiExtractor's <doc> format
    <out>/books/bookcorpus_partNNNN.txt               BookCorpus, one sentence a line, blank-line paragraphs
    <out>/SHA256SUMS                                  sha256 of every file written (sha256sum -c reads it)

Downloading is kept apart from writing: each writer takes the records (a ``datasets.Dataset`` per GLUE
split, an iterator of dicts for the corpora), so the format is tested on small local data. Every file is
written atomically and a file that exists is finished: running again skips it, and a corpus resumes
after its last finished shard (``<part>/.get_data.json`` records the shards).
"""

from __future__ import annotations

import gzip
import html
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bert_helu.glue.tasks import HUB_DATASET, TASKS, GlueTask
from bert_helu.glue.test_sets import SUBMISSION_FILES
from bert_helu.runtime.atomic import atomic_write_json
from bert_helu.runtime.errors import UserError, first_line
from bert_helu.runtime.hashing import sha256_bytes, sha256_file

WIKIPEDIA = "wikimedia/wikipedia"
BOOKCORPUS = "bookcorpus/bookcorpus"
CHECKSUMS = "SHA256SUMS"


# ------------------------------------------------------------------------------- checksums


class Checksums:
    """``<out>/SHA256SUMS`` (``sha256  relative/path`` lines), rewritten after every finished file."""

    def __init__(self, root: Path):
        self.root, self.path = root, root / CHECKSUMS
        self.sums: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                digest, _, name = line.partition("  ")
                if name:
                    self.sums[name] = digest

    def record(self, path: Path, digest: str) -> None:
        self.sums[path.relative_to(self.root).as_posix()] = digest
        text = "".join(f"{d}  {n}\n" for n, d in sorted(self.sums.items()))
        _atomic_bytes(self.path, text.encode())

    def known(self, path: Path) -> str:
        """The recorded sha256 of an existing file (computed once if it was never recorded)."""
        name = path.relative_to(self.root).as_posix()
        if name not in self.sums:
            self.record(path, sha256_file(path))
        return self.sums[name]


def _atomic_bytes(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


@dataclass
class Report:
    """What a build did, file by file: printed as it goes (sizes and checksums)."""

    say: Callable[[str], None] = print
    written: int = 0
    skipped: int = 0

    def file(self, root: Path, path: Path, digest: str, new: bool) -> None:
        self.written += new
        self.skipped += not new
        state = "wrote " if new else "exists"
        self.say(
            f"{state} {path.relative_to(root).as_posix():<52} {path.stat().st_size:>14,} B  sha256 {digest}"
        )


# ------------------------------------------------------------------------------------- GLUE


def _clean(text) -> str:
    """GLUE TSVs have no quoting: a tab or newline inside a text would break the row."""
    return " ".join(str(text).split())


def _index_column(task: GlueTask) -> str:
    return "id" if task.name == "qqp" else "index"


def glue_files(config: str) -> list[tuple[str, str, str]]:
    """(path in glue_data, hub split, kind) of every file of one nyu-mll/glue configuration."""
    if config == "ax":
        return [(sub.path, sub.hub_split, "test") for sub in SUBMISSION_FILES if sub.hub_config == "ax"]
    task = TASKS[config]
    files = [(f"{task.dir_name}/{task.train_file}", "train", "labelled")]
    files += [(f"{task.dir_name}/{file}", split, "labelled") for _, file, split in task.eval_splits]
    files += [(sub.path, sub.hub_split, "test") for sub in SUBMISSION_FILES if sub.hub_config == config]
    return files


def glue_tsv(config: str, kind: str, rows) -> str:
    """One split of a nyu-mll/glue configuration (hub columns) as the GLUE release's TSV.

    Labelled files get the columns the project's reader uses, under the release's header names (the
    hub drops the others, e.g. MNLI's parses or MRPC's sentence ids); CoLA train/dev have no header
    and keep the release's four columns (source, label, original judgement, sentence).
    """
    task = TASKS["mnli" if config == "ax" else config]
    hub_fields = task.hub_text_fields
    lines = []
    if kind == "test":
        sub = next(s for s in SUBMISSION_FILES if s.hub_config == config)
        lines.append("\t".join([_index_column(task), *sub.text_fields]))
        for row in rows:
            lines.append("\t".join([str(row["idx"]), *(_clean(row[f]) for f in hub_fields)]))
    elif not task.has_header:  # CoLA
        for row in rows:
            label = task.labels[row["label"]]
            lines.append("\t".join(["glue", label, "" if label == "1" else "*", _clean(row["sentence"])]))
    else:
        header = [_index_column(task), *task.text_fields, task.label_field]
        lines.append("\t".join(header))
        for row in rows:
            label = repr(float(row["label"])) if task.is_regression else task.labels[row["label"]]
            lines.append("\t".join([str(row["idx"]), *(_clean(row[f]) for f in hub_fields), label]))
    return "\n".join(lines) + "\n"


def write_glue(
    root: Path, configs: list[str], load: Callable[[str], dict], report: Report, sums: Checksums
) -> None:
    """Every file of each configuration; ``load(config)`` (the download) only runs for missing files."""
    for config in configs:
        files = glue_files(config)
        if all((root / "glue_data" / path).is_file() for path, _, _ in files):
            for path, _, _ in files:
                report.file(root, root / "glue_data" / path, sums.known(root / "glue_data" / path), new=False)
            continue
        splits = load(config)
        for path, split, kind in files:
            target = root / "glue_data" / path
            if target.is_file():
                report.file(root, target, sums.known(target), new=False)
                continue
            if split not in splits:
                raise UserError(f"{HUB_DATASET}/{config}: no split {split!r} (has: {', '.join(splits)})")
            digest = _atomic_bytes(target, glue_tsv(config, kind, splits[split]).encode())
            sums.record(target, digest)
            report.file(root, target, digest, new=True)


GLUE_CONFIGS = [*TASKS, "ax"]


# ---------------------------------------------------------------------------- text corpora


def wikiextractor_doc(record: dict) -> str:
    """A Wikipedia article as WikiExtractor writes it: <doc> tag, title line, blank line, body."""
    title = _clean(record.get("title", ""))
    attributes = (
        f'id="{html.escape(str(record.get("id", "")))}" url="{html.escape(str(record.get("url", "")))}"'
    )
    # a body line that looks like a tag would end the record early when read back
    body = "\n".join(
        (" " + line) if line.startswith(("<doc", "</doc>")) else line
        for line in str(record.get("text", "")).strip("\n").split("\n")
    )
    return f'<doc {attributes} title="{html.escape(title)}">\n{title}\n\n{body}\n</doc>\n'


def book_paragraphs(records: list[dict], sentences_per_paragraph: int) -> str:
    """BookCorpus sentences (consecutive in their books), one a line, a blank line every N sentences."""
    sentences = [_clean(r.get("text", "")) for r in records]
    sentences = [s for s in sentences if s]
    groups = [
        sentences[i : i + sentences_per_paragraph] for i in range(0, len(sentences), sentences_per_paragraph)
    ]
    return "".join("\n".join(group) + "\n\n" for group in groups)


@dataclass(frozen=True)
class Corpus:
    part: str  # folder under <out>
    prefix: str  # shard file names: <prefix>_partNNNN<suffix>
    suffix: str
    shard_records: int
    render: Callable[[list[dict]], str]
    identity: dict  # what the shards hold; a folder built with another identity is refused


def write_corpus(
    root: Path,
    corpus: Corpus,
    records_from: Callable[[int], Iterator[dict]],
    limit: int | None,
    report: Report,
    sums: Checksums,
) -> None:
    """Shards of ``corpus.shard_records`` records each, resuming after the last finished one.

    ``records_from(n)`` yields the records from the n-th on (the download: the stream skips ahead).
    A final partial shard counts as finished only if it ended the data or reached ``limit``.
    """
    folder = root / corpus.part
    state_path = folder / ".get_data.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if state and state["identity"] != corpus.identity:
        raise UserError(
            f"{folder}: built with {state['identity']}, not {corpus.identity}; "
            "use the same options or another --out"
        )
    shards = list(state["shards"]) if state else []
    done = 0
    kept = []
    for shard in shards:
        finished = shard["records"] == corpus.shard_records
        last_ok = shard is shards[-1] and (
            state["exhausted"] or (limit is not None and done + shard["records"] >= limit)
        )
        if not (finished or last_ok) or not (folder / shard["file"]).is_file():
            break
        kept.append(shard)
        done += shard["records"]
    exhausted = bool(state and state["exhausted"] and len(kept) == len(shards))
    for shard in kept:
        report.file(root, folder / shard["file"], shard["sha256"], new=False)
    if exhausted or (limit is not None and done >= limit):
        return
    records = records_from(done)
    while limit is None or done < limit:
        want = corpus.shard_records if limit is None else min(corpus.shard_records, limit - done)
        batch = []
        for record in records:
            batch.append(record)
            if len(batch) == want:
                break
        if not batch:
            exhausted = True
            break
        name = f"{corpus.prefix}_part{len(kept):04d}{corpus.suffix}"
        data = corpus.render(batch).encode()
        if corpus.suffix.endswith(".gz"):
            buffer = io.BytesIO()
            with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:  # mtime 0: reproducible bytes
                gz.write(data)
            data = buffer.getvalue()
        digest = _atomic_bytes(folder / name, data)
        sums.record(folder / name, digest)
        kept.append({"file": name, "records": len(batch), "sha256": digest})
        done += len(batch)
        if len(batch) < want:
            exhausted = True
        atomic_write_json(state_path, {"identity": corpus.identity, "shards": kept, "exhausted": exhausted})
        report.file(root, folder / name, digest, new=True)
        if exhausted:
            break
    atomic_write_json(state_path, {"identity": corpus.identity, "shards": kept, "exhausted": exhausted})


def wikipedia_corpus(config: str, shard_articles: int) -> Corpus:
    return Corpus(
        part="wikipedia",
        prefix=f"enwiki_{config.split('.')[0]}",
        suffix=".txt.gz",
        shard_records=shard_articles,
        render=lambda records: "".join(map(wikiextractor_doc, records)),
        identity={"dataset": WIKIPEDIA, "config": config, "shard_records": shard_articles},
    )


def books_corpus(shard_sentences: int, sentences_per_paragraph: int) -> Corpus:
    return Corpus(
        part="books",
        prefix="bookcorpus",
        suffix=".txt",
        shard_records=shard_sentences,
        render=lambda records: book_paragraphs(records, sentences_per_paragraph),
        identity={
            "dataset": BOOKCORPUS,
            "shard_records": shard_sentences,
            "sentences_per_paragraph": sentences_per_paragraph,
        },
    )


# --------------------------------------------------------------------------------- the hub


def require_hub(datasets: list[str], timeout: float = 5.0) -> None:
    """Fail in seconds, in one line naming what was needed, when the hub cannot be reached."""
    from huggingface_hub import HfApi, constants

    needed = ", ".join(datasets)
    if constants.HF_HUB_OFFLINE:
        raise UserError(
            f"HF_HUB_OFFLINE is set, but this needs the Hugging Face hub ({constants.ENDPOINT}) for: {needed}"
        )
    try:
        HfApi().dataset_info(datasets[0], timeout=timeout)
    except Exception as err:  # DNS, refused connection, timeout, proxy, or an HTTP error from the hub
        raise UserError(
            f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({first_line(err, 160)}); "
            f"needed: {needed}"
        ) from None


def hub_glue(config: str) -> dict:
    import datasets

    return dict(datasets.load_dataset(HUB_DATASET, config))


def hub_stream(name: str, config: str | None) -> Callable[[int], Iterator[dict]]:
    def records_from(start: int) -> Iterator[dict]:
        import datasets

        stream = datasets.load_dataset(name, config, split="train", streaming=True)
        return iter(stream.skip(start) if start else stream)

    return records_from
