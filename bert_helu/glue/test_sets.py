"""GLUE test sets (unlabelled) and the prediction files the GLUE server takes for a submission.

The server (gluebenchmark.com) wants one TSV per test set, named as in ``SUBMISSION_FILES``, each with the
header ``index<TAB>prediction``: the test file's ``index`` column (``id`` for QQP; the row number where
a file has neither), then the label as the task's TSVs spell it (``entailment``/``neutral``/
``contradiction`` for MNLI and AX, ``entailment``/``not_entailment`` for QNLI and RTE, ``0``/``1`` for
CoLA, SST-2, MRPC, QQP and WNLI) or, for STS-B, a score clipped to [0, 5]. AX (the diagnostic set) is
predicted by the MNLI model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from bert_helu.glue.tasks import HUB_DATASET, TASKS, HubUnavailableError
from bert_helu.runtime.errors import UserError, first_line

INDEX_COLUMNS = ("index", "id")  # QQP's test file says id


@dataclass(frozen=True)
class SubmissionFile:
    file: str  # the submission file name the GLUE server expects
    task: str  # the task whose fine-tuned model predicts it
    path: str  # the test file inside glue_data
    hub_config: str  # nyu-mll/glue configuration and split
    hub_split: str
    text_fields: tuple[str, ...]  # header names of the text columns in the test file


SUBMISSION_FILES: list[SubmissionFile] = [
    SubmissionFile("CoLA.tsv", "cola", "CoLA/test.tsv", "cola", "test", ("sentence",)),
    SubmissionFile("SST-2.tsv", "sst2", "SST-2/test.tsv", "sst2", "test", ("sentence",)),
    SubmissionFile("MRPC.tsv", "mrpc", "MRPC/test.tsv", "mrpc", "test", ("#1 String", "#2 String")),
    SubmissionFile("STS-B.tsv", "stsb", "STS-B/test.tsv", "stsb", "test", ("sentence1", "sentence2")),
    SubmissionFile("QQP.tsv", "qqp", "QQP/test.tsv", "qqp", "test", ("question1", "question2")),
    SubmissionFile(
        "MNLI-m.tsv", "mnli", "MNLI/test_matched.tsv", "mnli", "test_matched", ("sentence1", "sentence2")
    ),
    SubmissionFile(
        "MNLI-mm.tsv",
        "mnli",
        "MNLI/test_mismatched.tsv",
        "mnli",
        "test_mismatched",
        ("sentence1", "sentence2"),
    ),
    SubmissionFile("QNLI.tsv", "qnli", "QNLI/test.tsv", "qnli", "test", ("question", "sentence")),
    SubmissionFile("RTE.tsv", "rte", "RTE/test.tsv", "rte", "test", ("sentence1", "sentence2")),
    SubmissionFile("WNLI.tsv", "wnli", "WNLI/test.tsv", "wnli", "test", ("sentence1", "sentence2")),
    SubmissionFile("AX.tsv", "mnli", "diagnostic/diagnostic.tsv", "ax", "test", ("sentence1", "sentence2")),
]


def submission_files_of(task_name: str) -> list[SubmissionFile]:
    return [t for t in SUBMISSION_FILES if t.task == task_name]


def has_test_data(test_set: SubmissionFile, glue_dir: str | os.PathLike | None) -> bool:
    return glue_dir is None or (Path(glue_dir) / test_set.path).is_file()


def read_test_tsv(path: str | os.PathLike, test_set: SubmissionFile) -> Dataset:
    """An unlabelled GLUE test TSV as a Dataset of ``index``, ``text_a``, ``text_b``."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [line for line in lines if line.strip()]
    if len(lines) < 2:
        raise UserError(f"{path}: no examples (a test file is a header row and one row per example)")
    header = lines[0].split("\t")
    for name in test_set.text_fields:
        if name not in header:
            raise UserError(f"{path}: missing column {name!r} (header has: {', '.join(header)})")
    text_cols = [header.index(name) for name in test_set.text_fields]
    index_col = next((header.index(c) for c in INDEX_COLUMNS if c in header), None)
    needed = max([*text_cols, index_col or 0])
    index, texts = [], [[] for _ in text_cols]
    for row_no, line in enumerate(lines[1:], start=2):  # 1-based, as an editor shows them
        cells = line.split("\t")
        if len(cells) <= needed:
            raise UserError(f"{path}: row {row_no}: {len(cells)} fields, the header has {len(header)}")
        index.append(cells[index_col] if index_col is not None else str(row_no - 2))
        for out, col in zip(texts, text_cols, strict=True):
            out.append(cells[col])
    return Dataset.from_dict(
        {"index": index, "text_a": texts[0], "text_b": texts[1] if len(texts) > 1 else [None] * len(index)}
    )


def load_test_set(test_set: SubmissionFile, glue_dir: str | os.PathLike | None) -> Dataset:
    if glue_dir is not None:
        return read_test_tsv(Path(glue_dir) / test_set.path, test_set)
    import datasets

    try:
        raw = datasets.load_dataset(HUB_DATASET, test_set.hub_config, split=test_set.hub_split)
    except Exception as err:  # offline: ConnectionError, OfflineModeIsEnabled, FileNotFoundError, ...
        raise HubUnavailableError(
            f"cannot load the GLUE test set {test_set.hub_config}/{test_set.hub_split} from the hub "
            f"({HUB_DATASET}): {first_line(err, 200)}; offline, pass --glue-dir path/to/glue_data"
        ) from None
    a, *b = TASKS["mnli" if test_set.hub_config == "ax" else test_set.task].hub_text_fields
    return Dataset.from_dict(
        {
            "index": [str(i) for i in raw["idx"]],
            "text_a": raw[a],
            "text_b": raw[b[0]] if b else [None] * len(raw),
        }
    )


def prediction_lines(test_set: SubmissionFile, index: list[str], predictions) -> str:
    """The submission file's text: ``index<TAB>prediction`` per example, in the test file's order."""
    task = TASKS[test_set.task]
    if len(index) != len(predictions):
        raise ValueError(f"{test_set.file}: {len(index)} examples but {len(predictions)} predictions")
    rows = ["index\tprediction"]
    for i, pred in zip(index, predictions, strict=True):
        if task.is_regression:
            rows.append(f"{i}\t{min(5.0, max(0.0, float(pred))):.3f}")
        else:
            rows.append(f"{i}\t{task.labels[int(pred)]}")
    return "\n".join(rows) + "\n"


def read_predictions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(index, prediction) pairs of a submission file (to check or combine them)."""
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0] != "index\tprediction":
        raise UserError(f"{path}: not a GLUE submission file (first line must be 'index<TAB>prediction')")
    return [tuple(line.split("\t", 1)) for line in lines[1:] if line]
