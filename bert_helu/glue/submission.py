"""GLUE leaderboard submissions: test-set predictions per run, and the zip of one checkpoint's best runs.

With ``finetune --predict-test`` every run predicts its task's test sets right after training and
writes them, in the server's format, to ``<run dir>/test_predictions/<file>`` (before results.json,
which marks the run finished). ``write_submission`` then takes, per submission file, the predictions
of the chosen seed (the best dev score, or a given seed) into ``<output>/<run name>/submission/`` and
``submission.zip`` (the files at the zip's top level, as the server wants), with
``submission.json`` saying where each file came from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding

from bert_helu.glue.encoding import tokenize
from bert_helu.glue.tasks import TASKS, GlueTask
from bert_helu.glue.test_sets import (
    SUBMISSION_FILES,
    SubmissionFile,
    has_test_data,
    load_test_set,
    prediction_lines,
    submission_files_of,
)
from bert_helu.runtime.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PREDICTIONS_DIR = "test_predictions"


def prediction_file(run_dir: Path, sub: SubmissionFile) -> Path:
    """Where a run keeps its predictions of one submission file."""
    return Path(run_dir) / PREDICTIONS_DIR / sub.file


def submission_files(task: GlueTask, glue_dir: str | os.PathLike | None) -> list[SubmissionFile]:
    """The task's submission files whose test data exists (all of them from the hub)."""
    present = [sub for sub in submission_files_of(task.name) if has_test_data(sub, glue_dir)]
    for sub in submission_files_of(task.name):
        if sub not in present:
            log.warning(
                "no test file %s: %s will be missing from the submission", Path(glue_dir) / sub.path, sub.file
            )
    return present


class SubmissionTestSets:
    """A run's GLUE test sets: read before it trains (a bad file fails the run before its training),
    predicted by the trained model, and written in the server's format."""

    def __init__(self, submissions: list[SubmissionFile], glue_dir: str | os.PathLike | None):
        self.sets = {sub: load_test_set(sub, glue_dir) for sub in submissions}

    def predict(self, model, tokenizer, task: GlueTask, max_length: int, batch_size: int) -> dict:
        """Submission file -> predictions of each test row, in the file's order."""
        return {
            sub: predict_in_order(model, tokenizer, ds, task, max_length, batch_size)
            for sub, ds in self.sets.items()
        }

    def write(self, run_dir: Path, predictions: dict) -> None:
        for sub, preds in predictions.items():
            atomic_write_text(
                prediction_file(run_dir, sub), prediction_lines(sub, self.sets[sub]["index"], preds)
            )


def predict_in_order(model, tokenizer, ds: Dataset, task: GlueTask, max_length: int, batch_size: int):
    """Class ids (or STS-B scores) for every row of ``ds``, in its order; batches sorted by length."""
    encoded = tokenize(ds.select_columns(["text_a", "text_b"]), tokenizer, max_length)
    rows = encoded.to_list()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    collate = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    out = np.zeros(len(rows), dtype=np.float64 if task.is_regression else np.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in chosen]).items()}
            logits = model(**batch).logits.float()
            pred = logits.squeeze(-1) if task.is_regression else logits.argmax(-1)
            out[chosen] = pred.cpu().numpy()
    return out


@dataclass
class Submission:
    zip_path: Path
    sources: dict[str, dict] = field(default_factory=dict)  # file -> seed, task, dev metric
    missing: dict[str, str] = field(default_factory=dict)  # file -> why


def write_submission(output_dir: Path, run_name: str, seed: int | None = None) -> Submission:
    """Gather one checkpoint's test predictions into the server's layout; ``seed=None`` picks the best."""
    root = Path(output_dir) / run_name
    folder = root / "submission"
    shutil.rmtree(folder, ignore_errors=True)  # a file dropped since the last time must not linger
    folder.mkdir(parents=True)
    report = Submission(zip_path=root / "submission.zip")
    for sub in SUBMISSION_FILES:
        choice = _choose_seed(root / sub.task, sub, seed)
        if isinstance(choice, str):
            report.missing[sub.file] = choice
            continue
        run_dir, info = choice
        shutil.copyfile(prediction_file(run_dir, sub), folder / sub.file)
        report.sources[sub.file] = info
    tmp = report.zip_path.with_name(f".{report.zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(report.sources):
            archive.write(folder / name, arcname=name)
    tmp.replace(report.zip_path)
    atomic_write_json(
        root / "submission.json",
        {"zip": str(report.zip_path), "files": report.sources, "missing": report.missing},
    )
    return report


def _choose_seed(task_dir: Path, sub: SubmissionFile, seed: int | None):
    """(run dir, info) of the seed whose predictions go in, or the reason there is none."""
    task = TASKS[task_dir.name]
    metric = task.metrics[0]
    candidates = []
    for run_dir in sorted(task_dir.glob("seed*")):
        results = run_dir / "results.json"
        if not (prediction_file(run_dir, sub).is_file() and results.is_file()):
            continue
        run_seed = int(run_dir.name.removeprefix("seed"))
        score = json.loads(results.read_text())["metrics"][metric]
        candidates.append((run_dir, {"seed": run_seed, "task": task.name, f"dev_{metric}": score}))
    if not candidates:
        return (
            f"no finished {task.name} run with test predictions (finetune --predict-test needs "
            f"{task.dir_name}'s train, dev and test files)"
        )
    if seed is not None:
        chosen = [c for c in candidates if c[1]["seed"] == seed]
        if not chosen:
            found = ", ".join(str(c[1]["seed"]) for c in candidates)
            return f"no {task.name} run with seed {seed} (seeds with predictions: {found})"
        return chosen[0]
    # the best dev score; on a tie the smallest seed, so the choice does not depend on listing order
    return max(candidates, key=lambda c: (c[1][f"dev_{metric}"], -c[1]["seed"]))


def describe(run_name: str, report: Submission) -> str:
    lines = [f"GLUE submission for {run_name}: {report.zip_path} ({len(report.sources)} of 11 files)"]
    for file, info in report.sources.items():
        metric = next(k for k in info if k.startswith("dev_"))
        lines.append(f"  {file:<12} {info['task']} seed {info['seed']} ({metric[4:]} {info[metric]:.4f})")
    for file, why in report.missing.items():
        lines.append(f"  {file:<12} missing: {why}")
    if report.missing:
        lines.append("  the GLUE server scores a submission only when it has all 11 files")
    return "\n".join(lines)
