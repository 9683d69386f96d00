"""A batch of fine-tuning runs: checkpoints x tasks x seeds, resumable, one failure never stops the rest.

Every input is read and checked before the first run (bert_helu.finetuning.inputs), and every run is
planned with its settings, folders and identity (bert_helu.finetuning.plan). A run's results files are
written atomically when it has finished, last, with its identity (the checkpoint's content and the
task's resolved recipe): "the file exists with this identity" is exactly "the run is done", so a
restart skips those and redoes any run that was killed midway. Launched as several processes, each
takes its share of whole runs (bert_helu.finetuning.processes).
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from tqdm.auto import tqdm

from bert_helu.finetuning.inputs import check_checkpoint, check_glue_dir, tokenizer_identity
from bert_helu.finetuning.plan import Run, plan_runs
from bert_helu.finetuning.processes import Processes, join_launch
from bert_helu.finetuning.recipe import task_recipe, validate_recipe
from bert_helu.finetuning.results import write_run_files
from bert_helu.finetuning.run import finetune
from bert_helu.finetuning.tracking import RunTracker
from bert_helu.glue.submission import SubmissionTestSets, submission_files
from bert_helu.glue.tasks import GlueSplits, load_task, missing_files
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.identity import checkpoint_digest
from bert_helu.runtime.precision import resolve_mixed_precision
from bert_helu.runtime.processes import make_accelerator
from bert_helu.runtime.trackers import tracker_names

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    total: int
    skipped_done: int = 0
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    main: bool = True  # whether this process reports the batch (the first of several, or the only one)


def run_batch(
    checkpoints, tasks, cfg, output_dir: Path, glue_dir, cli_seeds=None, predict_test=False
) -> BatchReport:
    """Every run not finished yet; with ``predict_test`` a run is finished once its test predictions
    exist too (a run finished without them is done again). Launched as several processes, this
    process's share of them, and the report of them all."""
    output_dir = Path(output_dir)
    precision = resolve_mixed_precision(cfg.mixed_precision, key="mixed_precision")
    tracker_names(cfg.logging)  # W&B asked for but not installed: say so before the first run
    runs, data, report = _checked_inputs(
        checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, predict_test
    )
    processes = join_launch()
    workers = processes.workers(cfg.num_workers)
    # runs that start from another task's model (init_from) after every run of that task has ended
    sources = {run.recipe.init_from for run in runs if run.recipe.init_from}
    phases = [[r for r in runs if r.task.name in sources], [r for r in runs if r.task.name not in sources]]
    mine = [processes.share(phase) for phase in phases]
    if processes.count > 1:
        log.info("%s: %d of the %d runs", processes, sum(map(len, mine)), len(runs))
    done = {run for phase in mine for run in phase if run.done()}
    report.skipped_done = len(done)
    if done:
        log.info("%d of %d runs already finished; running the other ones", len(done), sum(map(len, mine)))

    # over this process's runs: done / total, and the ETA of the rest
    bar = tqdm(
        total=sum(map(len, mine)),
        initial=report.skipped_done,
        unit="run",
        desc="fine-tuning",
        disable=not processes.is_main,
    )
    for number, phase in enumerate(mine):
        if number:
            processes.meet()
        for run in phase:
            if run in done:
                continue
            if run.done():  # finished meanwhile by another batch on this output dir
                report.skipped_done += 1
                bar.update(1)
                continue
            _attempt(run, cfg, data, precision, glue_dir, workers, processes, report, bar)
    bar.close()
    return _whole(report, processes)


def _attempt(run, cfg, data, precision, glue_dir, workers, processes, report, bar) -> None:
    """One run, its outcome in ``report``: a failure is reported, never raised."""
    bar.set_postfix_str(str(run))
    said = f"[{processes}] " if processes.count > 1 else ""
    try:
        # a fresh Accelerator per run: it holds references to its prepared model/optimizer, and
        # dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)
        outcome_files = _one_run(run, cfg, data[run.task.name], _accelerator(precision), glue_dir, workers)
        report.finished.append(str(run))
        bar.write(f"{said}done {run}: " + "; ".join(outcome_files))
    except UserError as err:
        report.failed.append((str(run), str(err)))
        bar.write(f"{said}FAILED {run}: {err}")
    except Exception as err:  # a bug or a crash in one run must not cost the rest of the batch
        report.failed.append((str(run), f"{type(err).__name__}: {err}"))
        bar.write(f"{said}FAILED {run}: {type(err).__name__}: {err}")
        traceback.print_exc(file=sys.stderr)
    bar.update(1)


def _whole(report: BatchReport, processes: Processes) -> BatchReport:
    """The batch's report from every process's (the same on each); only the first one reports it."""
    reports = processes.gather(report)
    return BatchReport(
        total=report.total,
        skipped_done=sum(r.skipped_done for r in reports),
        finished=[run for r in reports for run in r.finished],
        failed=[failure for r in reports for failure in r.failed],
        unavailable=report.unavailable,
        main=processes.is_main,
    )


def _accelerator(precision: str) -> Accelerator:
    # batches come from pinned memory on a GPU: their copy need not wait for the step before
    non_blocking = torch.cuda.is_available()
    return make_accelerator(precision, dataloader_config=DataLoaderConfiguration(non_blocking=non_blocking))


def _checked_inputs(
    checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, predict_test
) -> tuple[list[Run], dict[str, GlueSplits], BatchReport]:
    """Every input read and checked before the first run: (runs, data per task, report)."""
    validate_recipe(cfg)
    available, absent = check_glue_dir(glue_dir, tasks)
    report = BatchReport(total=0, unavailable=[t.name for t in absent])
    for task in absent:
        missing = ", ".join(missing_files(task, glue_dir))
        log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
    recipes = [task_recipe(cfg, task) for task in available]
    lengths = {recipe.key("max_length"): recipe.settings.train["max_length"] for recipe in recipes}
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


def _one_run(run: Run, cfg, data: GlueSplits, accelerator, glue_dir, workers: int) -> list[str]:
    """Train and evaluate one run, then (main process) write its files; what was written."""
    test_sets = SubmissionTestSets(run.submissions, glue_dir)
    settings = replace(run.recipe.settings, num_workers=workers)
    train = settings.train

    def predict_tests(model, tokenizer) -> dict:
        return test_sets.predict(model, tokenizer, run.task, train["max_length"], train["eval_batch_size"])

    tracker = None
    if accelerator.is_main_process and tracker_names(cfg.logging):
        tracker = RunTracker(cfg.logging, run.dir, str(run), run.checkpoint.name, run.task.name, train)
    try:
        outcome = finetune(
            run.checkpoint.path, run.task, run.seed, data, settings, accelerator, run.model_dir,
            run.init_dir(), tracker=tracker, after_training=predict_tests if run.submissions else None,
        )  # fmt: skip
    finally:
        if tracker:
            tracker.close()
    return write_run_files(run, outcome, test_sets) if accelerator.is_main_process else []
