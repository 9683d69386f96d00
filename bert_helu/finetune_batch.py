"""A batch of fine-tuning runs: checkpoints x tasks x seeds, resumable, one failure never stops the rest.

Every input is read and checked before the first run (bert_helu.finetune_inputs), and every run is
planned with its settings, folders and identity (bert_helu.finetune_plan). A run's results files are
written atomically when it has finished, last, with its identity (the checkpoint's content and the
task's resolved recipe): "the file exists with this identity" is exactly "the run is done", so a
restart skips those and redoes any run that was killed midway.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration
from tqdm.auto import tqdm

from bert_helu.data.glue import GlueSplits, load_task, missing_files
from bert_helu.errors import UserError
from bert_helu.finetune_inputs import check_checkpoint, check_glue_dir, check_splits, tokenizer_identity
from bert_helu.finetune_plan import Run, plan_runs
from bert_helu.finetune_recipe import task_recipe, validate_recipe
from bert_helu.finetune_results import write_run_files
from bert_helu.finetune_tracking import RunTracker
from bert_helu.finetuning import finetune
from bert_helu.glue_submission import SubmissionTestSets, submission_files
from bert_helu.identity import checkpoint_digest
from bert_helu.precision import resolve_mixed_precision
from bert_helu.trackers import tracker_names

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    total: int
    skipped_done: int = 0
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


def run_batch(
    checkpoints, tasks, cfg, output_dir: Path, glue_dir, cli_seeds=None, predict_test=False
) -> BatchReport:
    """Every run not finished yet; with ``predict_test`` a run is finished once its test predictions
    exist too (a run finished without them is done again)."""
    output_dir = Path(output_dir)
    precision = resolve_mixed_precision(cfg.mixed_precision, key="mixed_precision")
    tracker_names(cfg.logging)  # W&B asked for but not installed: say so before the first run
    processes = _processes()
    runs, data, report = _checked_inputs(
        checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, processes, predict_test
    )
    todo = [r for r in runs if not r.done()]
    report.skipped_done = len(runs) - len(todo)
    if report.skipped_done:
        log.info(
            "%d of %d runs already finished; running the other %d", report.skipped_done, len(runs), len(todo)
        )

    # over the whole batch: runs done / total, and the ETA of the rest
    bar = tqdm(
        total=len(runs),
        initial=report.skipped_done,
        unit="run",
        desc="fine-tuning",
        disable=not processes.is_main_process,
    )
    for run in todo:
        bar.set_postfix_str(str(run))
        if run.done():  # finished meanwhile by another batch on this output dir
            report.skipped_done += 1
            bar.update(1)
            continue
        try:
            # a fresh Accelerator per run: it holds references to its prepared model/optimizer, and
            # dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)
            outcome_files = _one_run(run, cfg, data[run.task.name], _accelerator(precision), glue_dir)
            report.finished.append(str(run))
            if processes.is_main_process:
                bar.write(f"done {run}: " + "; ".join(outcome_files))
        except UserError as err:
            report.failed.append((str(run), str(err)))
            bar.write(f"FAILED {run}: {err}")
        except Exception as err:  # a bug or a crash in one run must not cost the rest of the batch
            report.failed.append((str(run), f"{type(err).__name__}: {err}"))
            bar.write(f"FAILED {run}: {type(err).__name__}: {err}")
            traceback.print_exc(file=sys.stderr)
        bar.update(1)
    bar.close()
    return report


def _processes() -> PartialState:
    """This process's place among the batch's processes, without an Accelerator: the state that every
    run's Accelerator then shares (accelerate keeps one per process)."""
    return PartialState(cpu=_cpu_only())


def _accelerator(precision: str) -> Accelerator:
    # split_batches: a recipe's batch size is the global one, each process gets its share of a batch
    return Accelerator(
        cpu=_cpu_only(),
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )


def _cpu_only() -> bool:
    # said explicitly: without it, torchrun on a machine without GPUs gives N single-process runs
    return not torch.cuda.is_available()


def _checked_inputs(
    checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, processes, predict_test
) -> tuple[list[Run], dict[str, GlueSplits], BatchReport]:
    """Every input read and checked before the first run: (runs, data per task, report)."""
    validate_recipe(cfg)
    available, absent = check_glue_dir(glue_dir, tasks)
    report = BatchReport(total=0, unavailable=[t.name for t in absent])
    for task in absent:
        missing = ", ".join(missing_files(task, glue_dir))
        log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
    recipes = [task_recipe(cfg, task) for task in available]
    lengths = {}
    for recipe in recipes:
        train = recipe.settings.train
        for key in ("batch_size", "eval_batch_size"):
            check_splits(train[key], processes.num_processes, recipe.key(key))
        lengths[recipe.key("max_length")] = train["max_length"]
    digests = {}
    for ckpt in checkpoints:
        check_checkpoint(ckpt.path, lengths)
        digests[ckpt.name] = checkpoint_digest(ckpt.path)
    data = {t.name: load_task(t, glue_dir) for t in available}  # parses every file: bad rows fail here
    submissions = {t.name: submission_files(t, glue_dir) if predict_test else [] for t in available}
    runs = plan_runs(
        checkpoints,
        recipes,
        output_dir,
        cli_seeds,
        digests,
        tokenizer_identity(cfg.tokenizer),
        precision,
        submissions,
    )
    for run in runs:
        run.done()  # results of another run in its place are refused now
    report.total = len(runs)
    return runs, data, report


def _one_run(run: Run, cfg, data: GlueSplits, accelerator, glue_dir) -> list[str]:
    """Train and evaluate one run, then (main process) write its files; what was written."""
    test_sets = SubmissionTestSets(run.submissions, glue_dir)
    train = run.recipe.settings.train

    def predict_tests(model, tokenizer) -> dict:
        return test_sets.predict(model, tokenizer, run.task, train["max_length"], train["eval_batch_size"])

    tracker = None
    if accelerator.is_main_process and tracker_names(cfg.logging):
        tracker = RunTracker(cfg.logging, run.dir, str(run), run.checkpoint.name, run.task.name, train)
    try:
        outcome = finetune(
            run.checkpoint.path, run.task, run.seed, data, run.recipe.settings, accelerator, run.model_dir,
            run.init_dir(), tracker=tracker, after_training=predict_tests if run.submissions else None,
        )  # fmt: skip
    finally:
        if tracker:
            tracker.close()
    return write_run_files(run, outcome, test_sets) if accelerator.is_main_process else []
