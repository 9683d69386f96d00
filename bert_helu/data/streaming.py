"""Streaming preparation: for a corpus larger than RAM or disk (``data.streaming: true``).

Nothing is packed ahead of time: ``train`` is a ``datasets.IterableDataset`` that reads, cleans,
dedups, tokenizes and packs as the loop consumes it, so memory holds one batch of documents plus
the dedup set (8 bytes a document). Only two things are computed up front:

- the tokenizer (if not given), trained on the first ``tokenizer_train_mb`` (default 256) MB of
  training text and cached under ``<cache_dir>/tokenizer-<fingerprint>``;
- the validation split, materialised from the held-out documents met first in the stream (up to
  ``max_validation_sequences``).

The same hash rules as the cached pipeline choose validation documents and weight repeats, so both
modes yield the same sequences from the same files (with ``num_proc: 1``).
Dedup is per iterator: a ``DataLoader`` with several workers dedups within each worker's shard.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bert_helu.data.cleaning import CleaningOptions, is_validation, repeats
from bert_helu.data.corpus import PreparedCorpus, fingerprint_of
from bert_helu.data.documents import STATUS_CODES, read_tasks, task_documents
from bert_helu.data.sources import Source, load_hub_source
from bert_helu.data.tokenizer import load_tokenizer, tokenizer_digest, train_wordpiece
from bert_helu.runtime.atomic import atomic_dir

DEFAULT_TOKENIZER_TRAIN_MB = 256


def stream_documents(
    tasks: list[dict], options: CleaningOptions, split: str, fraction: float, seed: int
) -> Iterator[dict]:
    """Cleaned, deduplicated documents of one split, weights applied to ``train``."""
    seen: set[int] = set()
    for task in tasks:
        weight = task["source"].weight
        for document in task_documents(task, options):
            if document["status"] != STATUS_CODES["kept"]:
                continue
            digest = document["hash"]
            if options.dedup:
                if digest in seen:
                    continue
                seen.add(digest)
            if bool(is_validation(digest, fraction, seed)) != (split == "validation"):
                continue
            copies = 1 if split == "validation" else int(repeats(digest, weight, seed))
            for _ in range(copies):
                yield {"text": document["text"]}


def prepare_streaming(cfg: dict, sources: list[Source], start: float):
    from datasets import Dataset, Features, IterableDataset, Value

    from bert_helu.data.packing import sequence_features, tokenize_and_pack_batch

    options = CleaningOptions.from_config(cfg)
    hub = {s.index: load_hub_source(s, streaming=True) for s in sources if s.type == "hub"}
    tasks = read_tasks(sources, hub, shards_per_hub_source=1)
    fingerprint = _stream_fingerprint(cfg, sources, options)
    split_kwargs = {
        "tasks": tasks,
        "options": options,
        "fraction": cfg["validation_fraction"],
        "seed": cfg["seed"],
    }

    tokenizer, tokenizer_dir = _stream_tokenizer(cfg, split_kwargs, fingerprint)

    text_features = Features({"text": Value("string")})
    train = IterableDataset.from_generator(
        stream_documents, features=text_features, gen_kwargs={**split_kwargs, "split": "train"}
    ).map(
        tokenize_and_pack_batch,
        batched=True,
        batch_size=cfg["batch_size"],
        fn_kwargs={"tokenizer": tokenizer, "seq_len": cfg["seq_len"]},
        remove_columns=["text"],
        features=sequence_features(cfg["seq_len"]),
    )
    validation = Dataset.from_dict(
        {"input_ids": _validation_sequences(cfg, split_kwargs, tokenizer).tolist()},
        features=sequence_features(cfg["seq_len"]),
    )
    summary = {
        "mode": "streaming",
        "fingerprint": fingerprint,
        "sources": [
            {"source": s.label, "type": s.type, "files": len(s.files), "weight": s.weight} for s in sources
        ],
        "tokenizer": str(cfg["tokenizer"])
        if cfg["tokenizer"]
        else f"trained WordPiece ({cfg['vocab_size']})",
        "tokenizer_dir": str(tokenizer_dir),
        "vocab_size": len(tokenizer),
        "seq_len": cfg["seq_len"],
        "sequences_validation": validation.num_rows,
        "cache_hit": False,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    return PreparedCorpus(train, validation, tokenizer_dir, summary, fingerprint, loaded_tokenizer=tokenizer)


def _validation_sequences(cfg: dict, split_kwargs: dict, tokenizer) -> np.ndarray:
    """Packed held-out documents from the start of the stream, up to ``max_validation_sequences``."""
    from bert_helu.data.packing import tokenize_and_pack_batch

    wanted, found, packed = cfg["max_validation_sequences"], 0, []
    if cfg["validation_fraction"] == 0:  # nothing to look for: do not read the stream
        return np.empty((0, cfg["seq_len"]), dtype=np.int32)
    batch: list[str] = []
    documents = stream_documents(**split_kwargs, split="validation")
    for document in itertools.chain(documents, [None]):
        if document is not None:
            batch.append(document["text"])
        if batch and (document is None or len(batch) == cfg["batch_size"]):
            rows = tokenize_and_pack_batch({"text": batch}, tokenizer, cfg["seq_len"])["input_ids"]
            packed.append(np.asarray(rows, dtype=np.int32).reshape(-1, cfg["seq_len"]))
            found += len(packed[-1])
            batch = []
            if found >= wanted:
                break
    if not packed:
        return np.empty((0, cfg["seq_len"]), dtype=np.int32)
    return np.concatenate(packed)[:wanted]


def _stream_tokenizer(cfg: dict, split_kwargs: dict, fingerprint: str):
    if cfg["tokenizer"]:
        return load_tokenizer(cfg["tokenizer"]), Path(cfg["tokenizer"])
    directory = Path(cfg["cache_dir"]) / f"tokenizer-{fingerprint}"
    if not (directory / "tokenizer.json").is_file():
        train_mb = cfg["tokenizer_train_mb"] or DEFAULT_TOKENIZER_TRAIN_MB

        def batches() -> Iterator[list[str]]:
            seen, batch = 0, []
            for document in stream_documents(**split_kwargs, split="train"):
                batch.append(document["text"])
                seen += len(document["text"])
                if len(batch) == 1000 or seen >= train_mb * 1e6:
                    yield batch
                    batch = []
                if seen >= train_mb * 1e6:
                    return
            if batch:
                yield batch

        tokenizer = train_wordpiece(batches(), vocab_size=cfg["vocab_size"], lowercase=cfg["lowercase"])
        with atomic_dir(directory) as tmp:
            tokenizer.save_pretrained(str(tmp))
    return load_tokenizer(directory), directory


def _stream_fingerprint(cfg: dict, sources: list[Source], options: CleaningOptions) -> str:
    """Files are identified by size and mtime here: hashing a corpus larger than disk is not an option."""
    described = []
    for source in sources:
        entry = source.identity()
        entry["files"] = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in source.files]
        described.append(entry)
    tokenizer = (
        {"dir": tokenizer_digest(cfg["tokenizer"])} if cfg["tokenizer"] else {"vocab": cfg["vocab_size"]}
    )
    identity = {
        "streaming": True,
        "sources": described,
        "cleaning": options.__dict__,
        "tokenizer": tokenizer,
        "train_mb": cfg["tokenizer_train_mb"],
        "seed": cfg["seed"],
        "validation_fraction": cfg["validation_fraction"],
    }
    return fingerprint_of(identity)
