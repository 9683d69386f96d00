"""Reading results.json files, and the GLUE summary conventions (columns, averages) built on them.

Everything a table shows comes from ``summarise``: per row (a checkpoint, or the replicates of one
pretraining recipe and activation: glue_eval.replicates) and per column, mean (or median) / std /
count over the row's units, in percent; and the row average under a convention. Markdown, CSV and
LaTeX are only different printings of that one summary.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bert_helu.runtime.errors import UserError
from glue_eval.replicates import Member, group_records

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
    """One table cell: a value per unit, in percent. A unit is a fine-tuning seed in a row of one
    checkpoint, and a pretraining replicate (the mean over its fine-tuning seeds) in a row of several."""

    values: dict  # unit -> value in percent
    runs: dict = field(default_factory=dict)  # unit -> fine-tuning runs averaged into it (default 1)
    how: str = "mean"  # the row's center: mean or median
    replicates: bool = False  # units are pretraining replicates (else fine-tuning seeds)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def value(self) -> float:
        """The row's center over units: what the table prints and ranks."""
        return statistics.median(self.values.values()) if self.how == "median" else self.mean

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if self.n > 1 else 0.0

    @property
    def count(self) -> str:
        """``2`` (seeds) or ``3×2`` (replicates × fine-tuning seeds each; ``3×1-2`` if uneven)."""
        if not self.replicates:
            return str(self.n)
        per = sorted({self.runs.get(u, 1) for u in self.values})
        return f"{self.n}×{per[0]}" + (f"-{per[-1]}" if len(per) > 1 else "")


@dataclass
class Row:
    name: str  # "label (activation)"
    run: str  # the label: a run name, or the common name of its replicates
    activation: str
    metrics: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (task, metric) -> cell
    avg: Cell | None = None
    avg_covers: list[str] = field(default_factory=list)
    avg_missing: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)  # its checkpoints
    records: list[dict] = field(default_factory=list)

    @property
    def replicated(self) -> bool:
        return len(self.members) > 1

    def unit_of(self, record: dict):
        """A pretraining replicate (run name) in a row of several checkpoints, else a seed."""
        return str(record["run"]) if self.replicated else int(record["seed"])

    def cell(self, task: str, metric: str) -> Cell | None:
        return self.metrics.get((task, metric))


def _value(record: dict, metric: str, delta: str | None) -> float | None:
    full = record["metrics"].get(metric)
    if delta is None:
        return full
    other = (record.get(delta) or {}).get("metrics", {}).get(metric)
    return None if other is None or full is None else other - full


def summarise(
    records: list[dict],
    average: str = "paper",
    delta: str | None = None,
    group_by: str = "recipe",
    center: str = "mean",
) -> list[Row]:
    """Rows (glue_eval.replicates groups them) of per-unit values (percent) with their average.

    ``delta="int8"``: every value is the INT8 result minus the full-precision one (Table 3).
    """
    rows = []
    for group in group_records(records, group_by):
        row = Row(group.name, group.label, group.activation, members=group.members, records=group.records)
        per_unit: dict[tuple[str, str], dict] = {}  # (task, metric) -> unit -> seed -> value
        for record in group.records:
            for metric in record["metrics"]:
                value = _value(record, metric, delta)
                if value is not None:
                    units = per_unit.setdefault((record["task"], metric), {})
                    units.setdefault(row.unit_of(record), {})[int(record["seed"])] = 100.0 * float(value)
        for key, units in per_unit.items():
            row.metrics[key] = Cell(
                {u: statistics.fmean(v.values()) for u, v in units.items()},
                runs={u: len(v) for u, v in units.items()},
                how=center,
                replicates=row.replicated,
            )
        _average(row, AVERAGES[average], center)
        rows.append(row)
    return rows


def _average(row: Row, components, center: str = "mean") -> None:
    """Per unit, the mean of the components the row has; over the units every covered component
    shares (the spread needs the same units throughout)."""
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
    cells = [c for _, cs in covered for c in cs]
    common = set.intersection(*(set(c.values) for c in cells))
    if common:
        per_unit = {
            u: statistics.fmean(statistics.fmean(c.values[u] for c in cs) for _, cs in covered)
            for u in sorted(common)
        }
        runs = {u: min(c.runs.get(u, 1) for c in cells) for u in per_unit}
        row.avg = Cell(per_unit, runs=runs, how=center, replicates=row.replicated)
    else:  # no unit shared by all: the mean of the cells' values, without a spread
        value = statistics.fmean(statistics.fmean(c.value for c in cs) for _, cs in covered)
        row.avg = Cell({0: value}, how=center, replicates=False)
