"""Read tasks -> cleaned documents, the first stage of both the cached and the streaming pipeline.

A read task is one local file, or a shard of a hub dataset; a source with ``max_docs`` is one task
over all its files so the cap is counted in order. ``datasets`` spreads tasks over processes
(``from_generator(num_proc=...)``) or streams them (``IterableDataset.from_generator``).
"""

from __future__ import annotations

from collections.abc import Iterator

from bert_helu.data.cleaning import KEPT, CleaningOptions, clean_document
from bert_helu.data.sources import Source, read_file
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.hashing import text_hash

STATUS_CODES = {KEPT: 0, "empty": 1, "too_short": 2}
# A worker reports a bad file as a row with this status (text = the message) rather than raising:
# exceptions from datasets' worker processes reach the parent wrapped, without their cause.
ERROR_STATUS = 9


def read_tasks(sources: list[Source], hub_datasets: dict, shards_per_hub_source: int) -> list[dict]:
    tasks: list[dict] = []
    for source in sources:
        if source.type == "hub":
            dataset = hub_datasets[source.index]
            if source.max_docs is not None or not hasattr(dataset, "__len__"):  # streamed: one task
                tasks.append({"source": source, "dataset": dataset})
            else:
                n = max(1, min(shards_per_hub_source, len(dataset)))
                tasks += [
                    {"source": source, "dataset": dataset.shard(n, k, contiguous=True)} for k in range(n)
                ]
        elif source.max_docs is not None:
            tasks.append({"source": source, "files": list(source.files)})
        else:
            tasks += [{"source": source, "files": [path]} for path in source.files]
    return tasks


def balance_tasks(tasks: list[dict], num_proc: int) -> list[dict]:
    """Reorder tasks so that ``datasets``' contiguous split into ``num_proc`` groups gets similar bytes.

    ``datasets`` gives each process a contiguous run of tasks, the first ``len % num_proc`` runs one
    longer; largest task first, each goes to the lightest run that still has room. Four Wikipedia
    shards followed by sixteen books would otherwise give one process all of Wikipedia.
    """
    n_groups = min(num_proc, len(tasks))
    if n_groups <= 1:
        return tasks
    base, extra = divmod(len(tasks), n_groups)
    room = [base + (g < extra) for g in range(n_groups)]
    groups: list[list[dict]] = [[] for _ in range(n_groups)]
    loads = [0] * n_groups
    for task in sorted(tasks, key=task_bytes, reverse=True):
        g = min((g for g in range(n_groups) if len(groups[g]) < room[g]), key=lambda g: loads[g])
        groups[g].append(task)
        loads[g] += task_bytes(task)
    return [task for group in groups for task in group]


def task_bytes(task: dict) -> int:
    """Uncompressed size estimate: a gzip file records it (mod 2^32) in its last four bytes."""
    if "files" not in task:
        return len(task["dataset"]) if hasattr(task["dataset"], "__len__") else 0
    total = 0
    for path in task["files"]:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b" and size >= 4:
                f.seek(size - 4)
                size = max(size, int.from_bytes(f.read(4), "little"))
        total += size
    return total


def _raw_documents(task: dict) -> Iterator[str]:
    source: Source = task["source"]
    if "dataset" in task:
        for row in task["dataset"]:
            text = row.get(source.text_field)
            yield "" if text is None else str(text)
        return
    for path in task["files"]:
        yield from read_file(source, path)


def task_documents(task: dict, options: CleaningOptions) -> Iterator[dict]:
    """Every document of a task, cleaned, with its status (dropped ones keep an empty text)."""
    source: Source = task["source"]
    kept = 0
    for raw in _raw_documents(task):
        cleaned, status = clean_document(raw, options)
        yield {
            "text": cleaned if status == KEPT else "",
            "source": source.index,
            "hash": text_hash(cleaned),
            "status": STATUS_CODES[status],
            "raw_bytes": len(raw.encode("utf-8")),
        }
        kept += status == KEPT
        if source.max_docs is not None and kept >= source.max_docs:
            return


def generate_documents(tasks: list[dict], options: CleaningOptions) -> Iterator[dict]:
    """``Dataset.from_generator`` entry point (``tasks`` is the list datasets shards over processes)."""
    for task in tasks:
        try:
            yield from task_documents(task, options)
        except UserError as err:
            yield {
                "text": str(err),
                "source": task["source"].index,
                "hash": 0,
                "status": ERROR_STATUS,
                "raw_bytes": 0,
            }
            return


def unwrap_user_error(err: BaseException) -> UserError | None:
    """The UserError a worker raised, if ``datasets`` wrapped it (DatasetGenerationError, ...)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None
