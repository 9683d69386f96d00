"""``prepare_corpus``: sources -> cleaned, deduplicated documents -> tokenizer -> packed sequences,
cached on disk under a fingerprint of everything that determines the result.

The story, in order (each step counted in the summary):

1. read every source (``datasets.Dataset.from_generator``, files spread over ``num_proc`` processes),
   cleaning each document and noting whether it is empty or too short;
2. exact dedup on the cleaned text (64-bit hash, first occurrence kept), then a hash-chosen share of
   documents held out for validation, then source weights (repeats) on the training documents;
3. train a WordPiece tokenizer on the training documents, or load the configured one;
4. tokenize and pack into ``[CLS] ... [SEP]`` sequences (``datasets.map`` with ``num_proc``);
5. ``save_to_disk`` into a temporary directory that is renamed to ``<cache_dir>/corpus-<fingerprint>``
   only once complete (and fsynced), so an interrupted run never leaves a cache that looks finished.

A later call with the same fingerprint loads that directory (memory-mapped) in about a second.
One process builds a given corpus at a time (a lock, bert_helu.runtime.locks): a second one waits for it,
then loads what it built. The cache directory is checked for room before a build starts.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bert_helu.data.cleaning import CleaningOptions, is_validation, repeats
from bert_helu.data.corpus import PreparedCorpus, check_sources_readable, fingerprint_of
from bert_helu.data.defaults import data_config
from bert_helu.data.documents import (
    ERROR_STATUS,
    STATUS_CODES,
    balance_tasks,
    generate_documents,
    read_tasks,
    task_bytes,
    unwrap_user_error,
)
from bert_helu.data.sources import Source, file_digest, load_hub_source, parse_sources
from bert_helu.data.tokenizer import load_tokenizer, text_batches, tokenizer_digest, train_wordpiece
from bert_helu.runtime.atomic import atomic_dir, atomic_write_json, remove_leftovers
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.locks import FileLock
from bert_helu.runtime.storage import check_free_space, check_writable

SUMMARY_FILE = "summary.json"
MB = 1e6


def prepare_corpus(data_cfg) -> PreparedCorpus:
    """Build (or load from cache) the pretraining corpus described by the recipe's ``data`` section."""
    start = time.perf_counter()
    cfg = data_config(data_cfg)
    sources = parse_sources(cfg["sources"])
    check_sources_readable(sources)
    if cfg["streaming"]:
        from bert_helu.data.streaming import prepare_streaming

        return prepare_streaming(cfg, sources, start)
    hub = {s.index: load_hub_source(s, streaming=False) for s in sources if s.type == "hub"}
    fingerprint = corpus_fingerprint(cfg, sources, hub)
    cache_dir = Path(cfg["cache_dir"])
    final = cache_dir / f"corpus-{fingerprint}"
    if (final / SUMMARY_FILE).is_file():
        return load_prepared(final, start, cache_hit=True)
    with FileLock(cache_dir / f".{final.name}.lock", "data.cache_dir", wait=True, label=str(final)):
        if (final / SUMMARY_FILE).is_file():  # built by the process we waited for
            return load_prepared(final, start, cache_hit=True)
        remove_leftovers(cache_dir, prefix=final.name)  # of a killed build (we hold its lock)
        check_writable(cache_dir, "data.cache_dir")
        needed = 2 * sum(task_bytes(t) for t in read_tasks(sources, hub, 1) if "files" in t)
        check_free_space(cache_dir, needed, "data.cache_dir", "preparing this corpus")
        try:
            with atomic_dir(final) as tmp:
                summary = _build(cfg, sources, hub, fingerprint, tmp)
                summary["wall_time_s"] = round(time.perf_counter() - start, 2)
                summary["mb_per_s"] = round(summary["raw_text_mb"] / max(summary["wall_time_s"], 1e-9), 3)
                atomic_write_json(tmp / SUMMARY_FILE, summary)
        except Exception as err:
            user_error = unwrap_user_error(err)
            if user_error is not None and user_error is not err:
                raise UserError(str(user_error)) from None
            raise
    return load_prepared(final, start, cache_hit=False)


def corpus_fingerprint(cfg: dict, sources: list[Source], hub: dict) -> str:
    """Hash of everything that determines the prepared data: file contents, not their paths."""
    described = []
    for source in sources:
        entry = source.identity()
        if source.type == "hub":
            entry["hub_fingerprint"] = getattr(hub[source.index], "_fingerprint", None)
        else:
            entry["files"] = [file_digest(path) for path in source.files]
        described.append(entry)
    tokenizer = (
        {"dir": tokenizer_digest(cfg["tokenizer"])}
        if cfg["tokenizer"]
        else {"train_vocab_size": cfg["vocab_size"], "train_mb": cfg["tokenizer_train_mb"]}
    )
    keys = ("seq_len", "validation_fraction", "max_validation_sequences", "num_proc", "batch_size", "seed")
    identity = {
        "sources": described,
        "cleaning": asdict(CleaningOptions.from_config(cfg)),
        "tokenizer": tokenizer,
        **{k: cfg[k] for k in keys},
    }
    return fingerprint_of(identity)


def load_prepared(directory: Path, start: float, cache_hit: bool) -> PreparedCorpus:
    from datasets import load_from_disk

    summary = json.loads((directory / SUMMARY_FILE).read_text())
    train = load_from_disk(str(directory / "train"))
    validation = load_from_disk(str(directory / "validation"))
    summary["cache_hit"] = cache_hit
    summary["cache_path"] = str(directory)
    if cache_hit:
        summary["load_time_s"] = round(time.perf_counter() - start, 2)
    return PreparedCorpus(train, validation, directory / "tokenizer", summary, summary["fingerprint"])


# Below this much text per process, starting worker processes costs more than it saves.
MIN_BYTES_PER_PROCESS = 16_000_000


def _num_proc(configured: int, n_bytes: float, n_units: int) -> int | None:
    """Processes worth using for ``n_bytes`` of text in ``n_units`` shardable pieces (None = in-process)."""
    n = min(configured, n_units, max(1, int(n_bytes // MIN_BYTES_PER_PROCESS)))
    return n if n > 1 else None


def _build(cfg: dict, sources: list[Source], hub: dict, fingerprint: str, out: Path) -> dict:
    timings: dict[str, float] = {}
    lap = _stopwatch(timings)
    work = out / "work"  # intermediate arrow files; removed before the directory is published
    documents = _read_documents(cfg, sources, hub, work)
    lap("read_clean")

    columns = documents.with_format("numpy", columns=["source", "hash", "status", "raw_bytes"])[:]
    split, summary = _dedup_and_split(documents, columns, cfg, sources)
    lap("dedup_split")

    tokenizer = _tokenizer(cfg, documents, split.train)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    lap("tokenizer")

    train, train_tokens = _tokenize_and_pack(
        documents, split.weighted, columns["raw_bytes"], tokenizer, cfg, f"{fingerprint}-train"
    )
    validation, validation_tokens = _tokenize_and_pack(
        documents, split.validation, columns["raw_bytes"], tokenizer, cfg, f"{fingerprint}-validation"
    )
    if len(validation) > cfg["max_validation_sequences"]:
        validation = validation.select(range(cfg["max_validation_sequences"]))
    if len(train) == 0:
        raise UserError(
            f"corpus too small: {train_tokens} training tokens do not fill one sequence of {cfg['seq_len']} "
            f"(sources: {', '.join(s.label for s in sources)})"
        )
    lap("tokenize_pack")

    train.save_to_disk(str(out / "train"))
    # An empty dataset needs an explicit shard to load back (datasets 5 writes none otherwise).
    validation.save_to_disk(str(out / "validation"), num_shards=1 if len(validation) == 0 else None)
    del documents, train, validation
    shutil.rmtree(work, ignore_errors=True)
    lap("save")

    summary.update(
        fingerprint=fingerprint,
        tokenizer=str(cfg["tokenizer"]) if cfg["tokenizer"] else f"trained WordPiece ({cfg['vocab_size']})",
        vocab_size=len(tokenizer),
        seq_len=cfg["seq_len"],
        tokens_train=train_tokens,
        tokens_validation=validation_tokens,
        sequences_train=int(_rows(out / "train")),
        sequences_validation=int(_rows(out / "validation")),
        num_proc=cfg["num_proc"],
        step_times_s=timings,
    )
    return summary


def _stopwatch(timings: dict[str, float]):
    """``lap(name)`` records the seconds since the previous lap under ``name``."""
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    return lap


_DOCUMENT_COLUMNS = {
    "text": "string",
    "source": "int32",
    "hash": "int64",
    "status": "int8",
    "raw_bytes": "int64",
}


def _read_documents(cfg: dict, sources: list[Source], hub: dict, work: Path):
    """Step 1: every source's documents, cleaned, with their status (kept, empty, too short)."""
    from datasets import Dataset, Features, Value

    tasks = read_tasks(sources, hub, shards_per_hub_source=cfg["num_proc"])
    read_procs = _num_proc(cfg["num_proc"], sum(map(task_bytes, tasks)), len(tasks))
    options = CleaningOptions.from_config(cfg)
    try:
        return Dataset.from_generator(
            generate_documents,
            features=Features({name: Value(kind) for name, kind in _DOCUMENT_COLUMNS.items()}),
            gen_kwargs={"tasks": balance_tasks(tasks, read_procs or 1), "options": options},
            cache_dir=str(work),
            num_proc=read_procs,
        )
    except ValueError as err:  # datasets cannot make a split of zero rows ("... corresponds to no data")
        if "no data" not in str(err):
            raise
        _check_every_source_read(sources, np.zeros(len(sources), dtype=np.int64))
        raise


@dataclass
class _Split:
    train: np.ndarray  # document indices, each once
    weighted: np.ndarray  # the training indices with source weights applied (repeated)
    validation: np.ndarray


def _dedup_and_split(documents, columns: dict, cfg: dict, sources: list[Source]) -> tuple[_Split, dict]:
    """Step 2: exact dedup, the validation hold-out, then source weights; and the document counts."""
    status, hashes, source_of = columns["status"], columns["hash"], columns["source"]
    errors = np.flatnonzero(status == ERROR_STATUS)
    if len(errors):
        raise UserError(documents[int(errors[0])]["text"])
    _check_every_source_read(sources, np.bincount(source_of, minlength=len(sources)))
    kept = np.flatnonzero(status == STATUS_CODES["kept"])
    if cfg["dedup"] and len(kept):
        _, first = np.unique(hashes[kept], return_index=True)
        unique = np.sort(kept[first])
    else:
        unique = kept
    held_out = is_validation(hashes[unique], cfg["validation_fraction"], cfg["seed"])
    validation, train = unique[held_out], unique[~held_out]
    weights = np.array([s.weight for s in sources])[source_of[train]]
    weighted = _weighted(train, hashes[train], weights, cfg["seed"])
    summary = _document_counts(sources, columns, kept, unique, train, len(validation))
    summary["train_documents_weighted"] = int(len(weighted))
    if len(weighted) == 0:
        raise UserError(_empty_corpus_message(sources, summary, cfg))
    return _Split(train, weighted, validation), summary


def _tokenizer(cfg: dict, documents, train: np.ndarray):
    """Step 3: the configured tokenizer, or WordPiece trained on the training documents."""
    if cfg["tokenizer"]:
        return load_tokenizer(cfg["tokenizer"])
    training_text = documents.select(train).select_columns(["text"])
    max_bytes = None if cfg["tokenizer_train_mb"] is None else int(cfg["tokenizer_train_mb"] * MB)
    return train_wordpiece(
        text_batches(training_text, max_bytes=max_bytes),
        vocab_size=cfg["vocab_size"],
        lowercase=cfg["lowercase"],
        length=-(-len(train) // 1000),
    )


def _rows(path: Path) -> int:
    from datasets import load_from_disk

    return load_from_disk(str(path)).num_rows


def _weighted(indices: np.ndarray, hashes: np.ndarray, weights: np.ndarray, seed: int) -> np.ndarray:
    if np.all(weights == 1.0):
        return indices
    counts = np.ones(len(indices), dtype=np.int64)
    for weight in np.unique(weights):
        chosen = weights == weight
        counts[chosen] = repeats(hashes[chosen], float(weight), seed)
    return np.repeat(indices, counts)


def _tokenize_and_pack(documents, indices: np.ndarray, raw_bytes: np.ndarray, tokenizer, cfg, name: str):
    """Step 4: packed sequences of ``documents[indices]`` (in order) and the WordPiece tokens they had."""
    import pyarrow.compute as pc
    from datasets import Dataset

    from bert_helu.data.packing import TOKENS_FEATURES, pack_batch, sequence_features, tokenize_batch

    if len(indices) == 0:  # e.g. no document fell in the validation share
        return Dataset.from_dict({"input_ids": []}, features=sequence_features(cfg["seq_len"])), 0
    documents = documents.select(indices)
    num_proc = _num_proc(cfg["num_proc"], raw_bytes[indices].sum(), -(-len(indices) // cfg["batch_size"]))
    tokens = documents.map(
        tokenize_batch,
        batched=True,
        batch_size=cfg["batch_size"],
        fn_kwargs={"tokenizer": tokenizer},
        remove_columns=documents.column_names,
        features=TOKENS_FEATURES,
        num_proc=num_proc,
        new_fingerprint=f"{name}-tokens",
        desc="tokenize",
    )
    n_tokens = int(pc.sum(pc.list_value_length(tokens.data.column("ids"))).as_py() or 0)
    # numpy format: the packer gets arrays straight from arrow instead of Python lists of ints.
    sequences = tokens.with_format("numpy").map(
        pack_batch,
        batched=True,
        batch_size=cfg["batch_size"],
        fn_kwargs={
            "seq_len": cfg["seq_len"],
            "cls_id": tokenizer.cls_token_id,
            "sep_id": tokenizer.sep_token_id,
        },
        remove_columns=["ids"],
        features=sequence_features(cfg["seq_len"]),
        num_proc=num_proc,
        new_fingerprint=f"{name}-packed",
        desc="pack",
    )
    return sequences.with_format(None), n_tokens


def _document_counts(sources, columns, kept, unique, train_docs, n_validation) -> dict:
    status, source_of, raw_bytes = columns["status"], columns["source"], columns["raw_bytes"]
    n = len(sources)
    per_source = []
    read = np.bincount(source_of, minlength=n)
    kept_per = np.bincount(source_of[unique], minlength=n)
    train_per = np.bincount(source_of[train_docs], minlength=n)
    mb = np.bincount(source_of, weights=raw_bytes, minlength=n) / MB
    for s in sources:
        per_source.append(
            {
                "source": s.label,
                "type": s.type,
                "files": len(s.files),
                "documents_in": int(read[s.index]),
                "documents_kept": int(kept_per[s.index]),
                "train_documents": int(train_per[s.index]),
                "raw_text_mb": round(float(mb[s.index]), 3),
                "weight": s.weight,
            }
        )
    return {
        "documents_in": int(len(status)),
        "empty": int(np.sum(status == STATUS_CODES["empty"])),
        "too_short": int(np.sum(status == STATUS_CODES["too_short"])),
        "duplicates": int(len(kept) - len(unique)),
        "documents_kept": int(len(unique)),
        "train_documents": int(len(train_docs)),
        "validation_documents": int(n_validation),
        "raw_text_mb": round(float(raw_bytes.sum()) / MB, 3),
        "sources": per_source,
    }


_NO_DOCUMENT_HINT = {
    "wikiextractor": "is it WikiExtractor output (<doc ...> records)?",
    "hub": "is the split empty?",
}


def _check_every_source_read(sources: list[Source], documents_read: np.ndarray) -> None:
    """A source that yields nothing is a mistake (a wrong type, an empty file), never silence."""
    for source in sources:
        if documents_read[source.index] == 0:
            where = "the dataset" if source.type == "hub" else f"{len(source.files)} file(s)"
            hint = _NO_DOCUMENT_HINT.get(source.type, "are the files empty?")
            raise UserError(f"data.sources[{source.index}] ({source.label}): no documents in {where}; {hint}")


def _empty_corpus_message(sources, summary, cfg) -> str:
    return (
        f"corpus is empty after filtering: {summary['documents_in']} documents read from "
        f"{', '.join(s.label for s in sources)}; dropped {summary['empty']} empty, {summary['too_short']} "
        f"shorter than min_chars={cfg['min_chars']}, {summary['duplicates']} duplicates, "
        f"{summary['validation_documents']} held out for validation"
    )


def format_summary(summary: dict) -> str:
    """A few human-readable lines for ``--prepare-only``."""
    lines = []
    if summary.get("mode") == "streaming":
        lines.append(
            f"corpus (streaming) {summary['fingerprint']}: documents are read, cleaned and packed on the fly"
        )
        lines.append(f"  sources: {', '.join(s['source'] for s in summary['sources'])}")
        lines.append(
            f"  tokenizer: {summary['tokenizer']}, vocab {summary['vocab_size']}; "
            f"seq_len {summary['seq_len']}; "
            f"validation: {summary['sequences_validation']} sequences (materialised)"
        )
        lines.append(f"  wall time {summary['wall_time_s']:.1f} s")
        return "\n".join(lines)
    state = (
        f"cache hit, loaded in {summary.get('load_time_s', 0):.2f} s "
        f"(built in {summary['wall_time_s']:.1f} s)"
        if summary.get("cache_hit")
        else f"built in {summary['wall_time_s']:.1f} s"
    )
    lines.append(f"corpus {summary['fingerprint']}: {state}")
    lines.append(f"  cache: {summary.get('cache_path', '?')}")
    for s in summary["sources"]:
        lines.append(
            f"  source {s['source']} ({s['type']}, {s['files']} files, weight {s['weight']:g}): "
            f"{s['documents_in']:,} documents in, {s['documents_kept']:,} kept, {s['raw_text_mb']:.1f} MB"
        )
    lines.append(
        f"  documents: {summary['documents_in']:,} in, {summary['documents_kept']:,} kept "
        f"(dropped {summary['empty']:,} empty, {summary['too_short']:,} too short, "
        f"{summary['duplicates']:,} duplicates removed); train {summary['train_documents']:,} "
        f"(weighted {summary['train_documents_weighted']:,}), validation {summary['validation_documents']:,}"
    )
    lines.append(
        f"  tokens: {summary['tokens_train']:,} train, {summary['tokens_validation']:,} validation; "
        f"sequences of {summary['seq_len']}: {summary['sequences_train']:,} train, "
        f"{summary['sequences_validation']:,} validation"
    )
    lines.append(f"  tokenizer: {summary['tokenizer']}, vocab size {summary['vocab_size']:,}")
    lines.append(
        f"  raw text {summary['raw_text_mb']:.1f} MB in {summary['wall_time_s']:.1f} s = "
        f"{summary['mb_per_s']:.2f} MB/s ({summary['num_proc']} processes)"
    )
    return "\n".join(lines)
