"""The GLUE tasks in one table, and reading them from the original ``glue_data`` TSVs or the hub.

Every task is normalised to the same three columns: ``text_a``, ``text_b`` (``None`` for
single-sentence tasks) and ``label`` (class id as the hub's ``nyu-mll/glue`` numbers it, or a float
score for STS-B), so nothing downstream needs to know where the data came from.

TSV quirks handled here (all from the GLUE release): CoLA train/dev have no header (columns are
source, label, original label, sentence); MRPC files start with a UTF-8 byte-order mark; RTE/QNLI/MNLI
labels are words; quotes are literal characters, never CSV quoting. Test sets carry no labels: they
are read for leaderboard submissions by ``bert_helu.glue.test_sets``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from bert_helu.runtime.errors import UserError, first_line

log = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"


class HubUnavailableError(UserError):
    """GLUE cannot come from the hub: no run of the batch can, so the batch stops at once."""


@dataclass(frozen=True)
class GlueTask:
    name: str  # our name, also the hub config name
    dir_name: str  # folder in glue_data/
    text_fields: tuple[str, ...]  # TSV header names (or, for headerless CoLA, column numbers as str)
    label_field: str
    labels: tuple[str, ...] | None  # TSV label strings in hub id order; None = regression
    metrics: tuple[str, ...]  # metric names as the `evaluate` GLUE metric reports them
    hub_text_fields: tuple[str, ...]
    train_file: str = "train.tsv"
    # (reported task name, TSV file, hub split): MNLI reports matched and mismatched separately
    eval_splits: tuple[tuple[str, str, str], ...] = ()
    has_header: bool = True

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def reported_names(self) -> list[str]:
        return [name for name, _, _ in self.eval_splits]


def _task(name, dir_name, text_fields, label_field, labels, metrics, hub_text_fields, **kw) -> GlueTask:
    kw.setdefault("eval_splits", ((name, "dev.tsv", "validation"),))
    return GlueTask(name, dir_name, text_fields, label_field, labels, metrics, hub_text_fields, **kw)


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        _task("cola", "CoLA", ("3",), "1", ("0", "1"), ("matthews_correlation",), ("sentence",),
              has_header=False),
        _task("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",), ("sentence",)),
        _task("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), ("f1", "accuracy"),
              ("sentence1", "sentence2")),
        _task("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, ("pearson", "spearmanr"),
              ("sentence1", "sentence2")),
        _task("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), ("f1", "accuracy"),
              ("question1", "question2")),
        _task("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
              ("entailment", "neutral", "contradiction"), ("accuracy",), ("premise", "hypothesis"),
              eval_splits=(("mnli", "dev_matched.tsv", "validation_matched"),
                           ("mnli_mismatched", "dev_mismatched.tsv", "validation_mismatched"))),
        _task("qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"),
              ("accuracy",), ("question", "sentence")),
        _task("rte", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"),
              ("accuracy",), ("sentence1", "sentence2")),
        _task("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",),
              ("sentence1", "sentence2")),
    ]
}  # fmt: skip

# The GLUE metric's config names (the hub's `glue` metric's, bert_helu/glue/glue_metric's) -> what each
# reports: every task and reported dev split, MNLI matched under both names, and the diagnostic set AX
# (MNLI-style labels, scored with Matthews correlation as the GLUE server scores it).
METRIC_CONFIGS: dict[str, tuple[str, ...]] = {
    **{reported: t.metrics for t in TASKS.values() for reported in (t.name, *t.reported_names)},
    "mnli_matched": TASKS["mnli"].metrics,
    "ax": ("matthews_correlation",),
    "hans": ("accuracy",),
}

# Names people type for a task (the GLUE folder names, "sts-b", ...) -> our name.
_ALIASES = {t.dir_name.lower().replace("-", ""): t.name for t in TASKS.values()}


def resolve_tasks(spec: str | list[str]) -> list[GlueTask]:
    """``"all"`` or a comma-separated list of task names (any case; SST-2/sst2/sst-2 alike)."""
    items = spec if isinstance(spec, list) else [spec]
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise UserError("no GLUE task given (use --tasks all or e.g. --tasks cola,sst2)")
    if [n.lower() for n in names] == ["all"]:
        return list(TASKS.values())
    tasks = []
    for name in names:
        key = name.lower().replace("-", "").replace("_", "")
        key = _ALIASES.get(key, key)
        if key not in TASKS:
            raise UserError(f"unknown GLUE task {name!r} (known: all, {', '.join(TASKS)})")
        if TASKS[key] not in tasks:
            tasks.append(TASKS[key])
    return tasks


# ------------------------------------------------------------------------------------ TSV files


def read_tsv(path: str | os.PathLike, task: GlueTask) -> Dataset:
    """One labelled GLUE TSV as a Dataset of text_a/text_b/label; UserError names file, row, field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        # utf-8-sig drops MRPC's byte-order mark, which would otherwise glue itself to the first column
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UserError(f"{path}: not UTF-8 text (line {line}, byte {err.start}: {err.reason})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines or (task.has_header and len(lines) == 1):
        raise UserError(f"{path}: no examples (empty file)")
    if task.has_header:
        header = lines[0].split("\t")
        first_row = 2  # 1-based line numbers, as an editor shows them
        columns = {}
        for field in (*task.text_fields, task.label_field):
            if field not in header:
                raise UserError(f"{path}: missing column {field!r} (header has: {', '.join(header)})")
            columns[field] = header.index(field)
        body = lines[1:]
    else:
        first_row = 1
        columns = {f: int(f) for f in (*task.text_fields, task.label_field)}
        body = lines
    label_ids = {label: i for i, label in enumerate(task.labels or ())}
    texts: list[list[str]] = [[] for _ in task.text_fields]
    labels: list[float | int] = []
    for row_no, line in enumerate(body, start=first_row):
        cells = line.split("\t")
        for field, col in columns.items():
            if col >= len(cells):
                raise UserError(f"{path}: row {row_no}: missing field {_field_name(task, field)!r}")
        for out, field in zip(texts, task.text_fields, strict=True):
            out.append(cells[columns[field]])
        raw = cells[columns[task.label_field]].strip()
        where = f"{path}: row {row_no}: field {_field_name(task, task.label_field)!r}"
        labels.append(_parse_label(raw, task, label_ids, where))
    return _as_dataset(texts, labels, task)


def _field_name(task: GlueTask, field: str) -> str:
    if task.has_header:
        return field
    names = {task.label_field: "label"} | {f: "sentence" for f in task.text_fields}
    return f"{names[field]} (column {int(field) + 1})"


def _parse_label(raw: str, task: GlueTask, label_ids: dict[str, int], where: str) -> float | int:
    if task.is_regression:
        try:
            score = float(raw)
        except ValueError:
            raise UserError(f"{where}: score {raw!r} is not a number") from None
        if not math.isfinite(score):
            raise UserError(f"{where}: score {raw!r} is not a finite number")
        return score
    if raw not in label_ids:
        raise UserError(f"{where}: label {raw!r} is not one of {', '.join(task.labels)}")
    return label_ids[raw]


def _as_dataset(texts: list[list[str]], labels: list, task: GlueTask) -> Dataset:
    columns = {"text_a": texts[0], "text_b": texts[1] if len(texts) > 1 else [None] * len(labels)}
    columns["label"] = [float(x) for x in labels] if task.is_regression else [int(x) for x in labels]
    return Dataset.from_dict(columns)


# ----------------------------------------------------------------------------------- the loaders


@dataclass
class GlueSplits:
    train: Dataset
    evals: dict[str, Dataset]  # reported task name -> dev set


def task_available(task: GlueTask, glue_dir: str | os.PathLike | None) -> bool:
    """Whether the local glue_data has what fine-tuning ``task`` needs (train and every dev file)."""
    if glue_dir is None:
        return True  # the hub has every task; a failure to reach it is an error, not a skip
    folder = Path(glue_dir) / task.dir_name
    needed = [task.train_file, *(f for _, f, _ in task.eval_splits)]
    return all((folder / name).is_file() for name in needed)


def missing_files(task: GlueTask, glue_dir: str | os.PathLike) -> list[str]:
    folder = Path(glue_dir) / task.dir_name
    needed = [task.train_file, *(f for _, f, _ in task.eval_splits)]
    return [str(folder / n) for n in needed if not (folder / n).is_file()]


def load_task(task: GlueTask, glue_dir: str | os.PathLike | None) -> GlueSplits:
    if glue_dir is not None:
        folder = Path(glue_dir) / task.dir_name
        return GlueSplits(
            train=read_tsv(folder / task.train_file, task),
            evals={name: read_tsv(folder / file, task) for name, file, _ in task.eval_splits},
        )
    return _load_from_hub(task)


def _load_from_hub(task: GlueTask) -> GlueSplits:
    import datasets
    from huggingface_hub import constants

    try:
        raw = datasets.load_dataset(HUB_DATASET, task.name)
    except Exception as err:  # datasets raises ConnectionError, OfflineModeIsEnabled, FileNotFoundError...
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        raise HubUnavailableError(
            f"cannot load GLUE task {task.name!r} from the hub ({HUB_DATASET}){offline}: "
            f"{first_line(err, 200)}; offline, pass --glue-dir path/to/glue_data "
            "(the original GLUE TSV layout)"
        ) from None

    def normalise(split: str) -> Dataset:
        ds = raw[split]
        a, *b = task.hub_text_fields
        ds = ds.rename_column(a, "text_a")
        ds = ds.rename_column(b[0], "text_b") if b else ds.add_column("text_b", [None] * len(ds))
        if task.is_regression:
            ds = ds.cast_column("label", datasets.Value("float64"))
        return ds.select_columns(["text_a", "text_b", "label"])

    return GlueSplits(
        train=normalise("train"), evals={name: normalise(split) for name, _, split in task.eval_splits}
    )
