"""Corpus sources: which documents a recipe names, and how each file format is read.

A source is a mapping from the recipe (``data.sources``). ``parse_sources`` checks it and expands
local globs into files; ``read_documents`` yields the raw text of each document of one read task
(a file, or a shard of a hub dataset). Readers know formats, not cleaning: they only undo the
container (gzip, BOM, CRLF, ``<doc>`` tags, JSON) and split into documents.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bert_helu.runtime import hashing
from bert_helu.runtime.errors import UserError, first_line

LOCAL_TYPES = ("text", "wikiextractor", "jsonl", "parquet")
SOURCE_TYPES = (*LOCAL_TYPES, "hub")
TEXT_SPLITS = ("file", "paragraph", "line")
_KEYS = {
    "type",
    "path",
    "text_field",
    "split_documents",
    "name",
    "config",
    "split",
    "revision",
    "weight",
    "max_docs",
}
# What each key of a data.sources entry means (docs/config.md; a test checks every key has a line).
SOURCE_KEY_HELP = {
    "type": "text (plain text, .txt or .txt.gz), wikiextractor (<doc> records of WikiExtractor), jsonl, "
    "parquet, or hub (a Hugging Face hub dataset)",
    "path": "local sources: a file, a glob (books/*.txt) or a directory (read recursively)",
    "text_field": "jsonl, parquet and hub: the column holding the text (default: text)",
    "split_documents": "text: one document per file (file, the default), per blank-line paragraph "
    "(paragraph) or per line (line)",
    "name": "hub: the dataset name, e.g. wikimedia/wikipedia",
    "config": "hub: the dataset's configuration, e.g. 20231101.en",
    "split": "hub: the split to read (default: train)",
    "revision": "hub: a commit or tag of the dataset, for a fixed corpus",
    "weight": "how often the source's training documents are used: 2.5 = every document twice and half of "
    "them a third time, 0.3 = 30% of them (chosen by hash); default 1",
    "max_docs": "read at most this many documents of the source (default: all)",
}
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 8192

LOCAL_FILES_HINT = (
    "to use local files instead, list them in the recipe, e.g. "
    "data.sources: [{type: wikiextractor, path: ../shared/data/wikipedia/*.txt.gz}, "
    "{type: text, path: ../shared/data/books/*.txt}]"
)


@dataclass(frozen=True)
class Source:
    index: int
    type: str
    path: str | None = None
    files: tuple[Path, ...] = ()
    text_field: str = "text"
    split_documents: str = "file"
    name: str | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    weight: float = 1.0
    max_docs: int | None = None

    @property
    def label(self) -> str:
        if self.type != "hub":
            return self.path
        return f"hub:{self.name}" + (f"/{self.config}" if self.config else "")

    def identity(self) -> dict:
        """What of this source (besides file content) determines the documents it yields."""
        keys = ("type", "text_field", "split_documents", "name", "config", "split", "revision", "weight")
        return {k: getattr(self, k) for k in keys} | {"max_docs": self.max_docs}


def parse_sources(raw_sources) -> list[Source]:
    """Check each source mapping of the recipe; expand local paths into files (which must exist)."""
    if not isinstance(raw_sources, list) or not raw_sources:
        raise UserError("data.sources must be a non-empty list of sources, e.g. " + LOCAL_FILES_HINT)
    return [_parse_source(i, raw) for i, raw in enumerate(raw_sources)]


def _parse_source(index: int, raw) -> Source:
    where = f"data.sources[{index}]"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a source must be a mapping with a 'type', got {raw!r}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown} (known: {sorted(_KEYS)})")
    kind = raw.get("type")
    if kind not in SOURCE_TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(SOURCE_TYPES)}, got {kind!r}")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
        raise UserError(f"{where}: weight must be a positive, finite number, got {weight!r}")
    max_docs = raw.get("max_docs")
    if max_docs is not None and (isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 1):
        raise UserError(f"{where}: max_docs must be a positive integer or null, got {max_docs!r}")
    text_field = raw.get("text_field", "text")
    if not isinstance(text_field, str) or not text_field:
        raise UserError(f"{where}: text_field must be a column name, got {text_field!r}")
    split_documents = raw.get("split_documents", "file")
    if split_documents not in TEXT_SPLITS:
        raise UserError(f"{where}: split_documents must be one of {', '.join(TEXT_SPLITS)}")
    common = dict(
        index=index,
        type=kind,
        text_field=text_field,
        split_documents=split_documents,
        weight=float(weight),
        max_docs=max_docs,
    )
    if kind == "hub":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: a hub source needs 'name' (e.g. wikimedia/wikipedia)")
        return Source(
            **common,
            name=name,
            config=raw.get("config"),
            split=raw.get("split", "train"),
            revision=raw.get("revision"),
        )
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise UserError(f"{where}: a {kind} source needs 'path' (a file, directory or glob)")
    return Source(**common, path=path, files=tuple(expand_path(path)))


def expand_path(pattern: str) -> list[Path]:
    """Files named by a path, glob or directory (recursively, hidden files skipped), sorted."""
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not _hidden(p.relative_to(path))]
    else:
        files = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
    if not files:
        raise UserError(f"{pattern}: no such file (relative paths are resolved against {os.getcwd()})")
    return [f.resolve() for f in files]


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def file_digest(path: Path) -> str:
    """Content hash of a file as stored (so a changed corpus file changes the cache fingerprint)."""
    try:
        return hashing.file_digest(path)
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None


# ---------------------------------------------------------------------------------------------
# Reading local files


def check_readable(path: Path, kind: str) -> None:
    """Fail early, naming the file, when it cannot be the format its source says."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if kind == "parquet":
        if not head.startswith(_PARQUET_MAGIC):
            raise UserError(f"{path}: not a parquet file")
        return
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{path}: unreadable gzip ({err})") from None
    elif path.suffix == ".gz":
        raise UserError(f"{path}: named .gz but not a gzip file")
    _check_text(path, head)


def _check_text(path: Path, head: bytes) -> None:
    if b"\x00" in head:
        raise UserError(f"{path}: not a text file (binary content, NUL byte at offset {head.index(0)})")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # a character cut by the sniff window is fine
            raise UserError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None


def _open_text(path: Path):
    """Text lines of a plain or gzipped file: BOM dropped, CRLF read as LF (universal newlines)."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115 (closed by caller)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline=None)


def _lines(path: Path) -> Iterator[str]:
    try:
        with _open_text(path) as f:
            yield from f
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start} of a block)") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise UserError(f"{path}: unreadable gzip ({err or 'truncated'})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None


def read_text(path: Path, split_documents: str = "file") -> Iterator[str]:
    """Plain text: the whole file is one document, or one per blank-line paragraph, or per line."""
    if split_documents == "line":
        yield from (line.rstrip("\n") for line in _lines(path))
        return
    if split_documents == "file":
        yield "".join(_lines(path))
        return
    paragraph: list[str] = []
    for line in _lines(path):
        if line.strip():
            paragraph.append(line)
        elif paragraph:
            yield "".join(paragraph)
            paragraph = []
    if paragraph:
        yield "".join(paragraph)


_DOC_OPEN = re.compile(r"^<doc[\s>]")


def read_wikiextractor(path: Path) -> Iterator[str]:
    """WikiExtractor output: one document per ``<doc ...>`` ... ``</doc>``.

    The first line of a record repeats the title; it is dropped so that a title-only stub (a
    redirect or an empty article) yields an empty document, which cleaning then filters and counts.
    """
    body: list[str] | None = None
    title_pending = False
    for line in _lines(path):
        if _DOC_OPEN.match(line):
            body, title_pending = [], True
        elif line.startswith("</doc>"):
            if body is not None:
                yield "".join(body)
            body = None
        elif body is not None:
            if title_pending and line.strip():
                title_pending = False  # the title line
                continue
            body.append(line)


def read_jsonl(path: Path, text_field: str) -> Iterator[str]:
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        if not isinstance(record, dict) or text_field not in record:
            raise UserError(f"{path}:{number}: no field {text_field!r} (set text_field in the source)")
        text = record[text_field]
        yield "" if text is None else str(text)


def read_parquet(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        if text_field not in parquet.schema_arrow.names:
            raise UserError(
                f"{path}: no column {text_field!r} (columns: {', '.join(parquet.schema_arrow.names)}; "
                "set text_field in the source)"
            )
        for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                yield "" if text is None else str(text)
    except UserError:
        raise
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise UserError(f"{path}: unreadable parquet ({first_line(err)})") from None


def read_file(source: Source, path: Path) -> Iterator[str]:
    if source.type == "text":
        return read_text(path, source.split_documents)
    if source.type == "wikiextractor":
        return read_wikiextractor(path)
    if source.type == "jsonl":
        return read_jsonl(path, source.text_field)
    if source.type == "parquet":
        return read_parquet(path, source.text_field)
    raise ValueError(source.type)


# ---------------------------------------------------------------------------------------------
# Hugging Face hub


def load_hub_source(source: Source, streaming: bool):
    """The hub dataset of a source (downloaded into the HF cache, or streamed), failing fast offline."""
    import datasets
    from huggingface_hub import constants

    what = f"data.sources[{source.index}] (hub dataset {source.name!r})"
    if not constants.HF_HUB_OFFLINE and not Path(source.name).exists():  # a local dataset dir needs no hub
        _probe_hub(source, what)
    try:
        ds = datasets.load_dataset(
            source.name, source.config, split=source.split, revision=source.revision, streaming=streaming
        )
    except Exception as err:  # offline errors come as ConnectionError, OSError, ValueError, ...
        offline = (
            " (HF_HUB_OFFLINE is set and it is not in the local cache)" if constants.HF_HUB_OFFLINE else ""
        )
        raise UserError(f"{what}: cannot load{offline}: {first_line(err)}; {LOCAL_FILES_HINT}") from None
    columns = ds.column_names or []
    if columns and source.text_field not in columns:
        raise UserError(f"{what}: no column {source.text_field!r} (columns: {', '.join(columns)})")
    return ds


def _probe_hub(source: Source, what: str, timeout: float = 5.0) -> None:
    """One short request before ``load_dataset``, whose retries take ~25 s when the hub is unreachable."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(source.name, revision=source.revision, timeout=timeout)
    except GatedRepoError:
        return  # reachable; load_dataset explains what access is needed
    except RepositoryNotFoundError:
        raise UserError(f"{what}: no such dataset on the hub (or it is private)") from None
    except HfHubHTTPError:
        return  # the hub answered: let load_dataset report the details
    except Exception as err:  # no answer at all: connection refused, DNS, timeout, proxy
        raise UserError(
            f"{what}: hub unreachable ({first_line(err)}); if it is already in the HF cache set "
            f"HF_HUB_OFFLINE=1, or {LOCAL_FILES_HINT}"
        ) from None
