"""Reading results.json files, and the GLUE summary conventions (columns, averages) built on them.

Everything a table shows comes from ``summarise``: per row (a checkpoint: run name + activation)
and per column, mean/std/count over seeds, in percent; and the row average under a convention.
Markdown, CSV and LaTeX are only different printings of that one summary.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bert_helu.errors import UserError

# The paper's Table 2 order, then CoLA (the paper leaves it out): (label, task, metric).
COLUMNS = [
    ("MNLI-m", "mnli", "accuracy"),
    ("MNLI-mm", "mnli_mismatched", "accuracy"),
    ("QQP F1", "qqp", "f1"),
    ("QNLI", "qnli", "accuracy"),
    ("SST-2", "sst2", "accuracy"),
    ("STS-B Spearman", "stsb", "spearmanr"),
    ("MRPC F1", "mrpc", "f1"),
    ("RTE", "rte", "accuracy"),
    ("WNLI", "wnli", "accuracy"),
    ("CoLA MCC", "cola", "matthews_correlation"),
]

# An average is a mean over components; a component is the mean of one or more (task, metric).
AVERAGES = {
    # the nine columns of the paper's Table 2 (no CoLA)
    "paper": [(label, [(task, metric)]) for label, task, metric in COLUMNS[:9]],
    # Cramming (Geiping & Goldstein) reports GLUE without WNLI, with STS-B Pearson
    "cramming": [
        ("MNLI-m", [("mnli", "accuracy")]),
        ("MNLI-mm", [("mnli_mismatched", "accuracy")]),
        ("QQP F1", [("qqp", "f1")]),
        ("QNLI", [("qnli", "accuracy")]),
        ("SST-2", [("sst2", "accuracy")]),
        ("CoLA MCC", [("cola", "matthews_correlation")]),
        ("STS-B Pearson", [("stsb", "pearson")]),
        ("MRPC F1", [("mrpc", "f1")]),
        ("RTE", [("rte", "accuracy")]),
    ],
    # the official GLUE score: one number per task, two-metric tasks averaged first, MNLI m/mm one task
    "glue": [
        ("CoLA", [("cola", "matthews_correlation")]),
        ("SST-2", [("sst2", "accuracy")]),
        ("MRPC", [("mrpc", "f1"), ("mrpc", "accuracy")]),
        ("STS-B", [("stsb", "pearson"), ("stsb", "spearmanr")]),
        ("QQP", [("qqp", "f1"), ("qqp", "accuracy")]),
        ("MNLI", [("mnli", "accuracy"), ("mnli_mismatched", "accuracy")]),
        ("QNLI", [("qnli", "accuracy")]),
        ("RTE", [("rte", "accuracy")]),
        ("WNLI", [("wnli", "accuracy")]),
    ],
}

REQUIRED_KEYS = ("task", "seed", "checkpoint", "activation", "metrics")


def load_results(paths) -> list[dict]:
    """Every results.json under the given dirs (or the given files), sorted by path."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("results.json")))
        else:
            raise UserError(f"{path}: no such results file or directory")
    records = []
    for file in files:
        try:
            record = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{file}: not a readable results.json ({err})") from None
        missing = [k for k in REQUIRED_KEYS if k not in (record if isinstance(record, dict) else {})]
        if missing:
            raise UserError(f"{file}: not a fine-tuning result (missing {', '.join(missing)})")
        _check_record(record, file)
        record.setdefault("run", Path(record["checkpoint"]).name)
        record["_file"] = str(file)
        records.append(record)
    if not records:
        raise UserError(f"no results.json under {', '.join(map(str, paths))}")
    _refuse_duplicates(records)
    return records


def _check_record(record: dict, file: Path) -> None:
    """Values a table would otherwise crash on, or silently print as nan."""
    seed = record["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{file}: seed must be an integer, got {seed!r}")
    for where, metrics in [("metrics", record["metrics"]), *_extra_metrics(record)]:
        if not isinstance(metrics, dict):
            raise UserError(f"{file}: {where} must be a mapping of metric names to numbers")
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UserError(f"{file}: {where}.{name} must be a finite number, got {value!r}")


def _extra_metrics(record: dict) -> list[tuple[str, object]]:
    """Metrics of other evaluations of the same run (``int8``: the quantised model's)."""
    return [
        (f"{key}.metrics", value["metrics"])
        for key, value in record.items()
        if key == "int8" and isinstance(value, dict) and "metrics" in value
    ]


def _refuse_duplicates(records: list[dict]) -> None:
    """One run found twice (two results folders given, or one copied into another) would have one
    of its values silently replace the other in a table."""
    seen: dict[tuple, str] = {}
    for record in records:
        key = (str(record["run"]), str(record["activation"]), str(record["task"]), record["seed"])
        if key in seen:
            raise UserError(
                f"the same run ({key[0]} ({key[1]}), {key[2]}, seed {key[3]}) is in both {seen[key]} and "
                f"{record['_file']}; pass only one of them"
            )
        seen[key] = record["_file"]


@dataclass
class Cell:
    values: dict[int, float]  # seed -> value in percent

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if self.n > 1 else 0.0


@dataclass
class Row:
    name: str  # "run (activation)"
    run: str
    activation: str
    metrics: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (task, metric) -> cell
    avg: Cell | None = None
    avg_covers: list[str] = field(default_factory=list)
    avg_missing: list[str] = field(default_factory=list)

    def cell(self, task: str, metric: str) -> Cell | None:
        return self.metrics.get((task, metric))


def _value(record: dict, metric: str, delta: str | None) -> float | None:
    full = record["metrics"].get(metric)
    if delta is None:
        return full
    other = (record.get(delta) or {}).get("metrics", {}).get(metric)
    return None if other is None or full is None else other - full


def summarise(records: list[dict], average: str = "paper", delta: str | None = None) -> list[Row]:
    """Rows of per-seed values (percent) with their average under ``average``.

    ``delta="int8"``: every value is the INT8 result minus the full-precision one (Table 3).
    """
    rows: dict[tuple[str, str], Row] = {}
    for record in records:
        key = (str(record["run"]), str(record["activation"]))
        row = rows.setdefault(key, Row(name=f"{key[0]} ({key[1]})", run=key[0], activation=key[1]))
        for metric in record["metrics"]:
            value = _value(record, metric, delta)
            if value is not None:
                cell = row.metrics.setdefault((record["task"], metric), Cell({}))
                cell.values[int(record["seed"])] = 100.0 * float(value)
    for row in rows.values():
        _average(row, AVERAGES[average])
    return list(rows.values())


def _average(row: Row, components) -> None:
    """Mean of the components the row has; std over the seeds every covered component shares."""
    covered = []
    for label, parts in components:
        cells = [row.cell(t, m) for t, m in parts]
        if all(cells):
            covered.append((label, cells))
        else:
            row.avg_missing.append(label)
    row.avg_covers = [label for label, _ in covered]
    if not covered:
        return
    common = set.intersection(*(set(c.values) for _, cells in covered for c in cells))
    if common:
        per_seed = {
            s: statistics.fmean(statistics.fmean(c.values[s] for c in cells) for _, cells in covered)
            for s in sorted(common)
        }
        row.avg = Cell(per_seed)
    else:  # no seed shared by all: the mean of means, without a spread
        row.avg = Cell({0: statistics.fmean(statistics.fmean(c.mean for c in cells) for _, cells in covered)})
