"""A fine-tuning batch, top to bottom: every checkpoint x task x seed, resumable, and one failed
run never stops the others. ``finetune/__main__.py`` reads the command line and the recipe, then
calls ``run_batch``; one run's steps are bert_helu.finetuning.run.FineTuneRun's.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from bert_helu.finetuning.batch import BatchReport, run_accelerator, whole_report
from bert_helu.finetuning.inputs import check_checkpoint, check_glue_dir, tokenizer_identity
from bert_helu.finetuning.plan import Run, plan_runs
from bert_helu.finetuning.processes import join_launch
from bert_helu.finetuning.progress import BatchProgress
from bert_helu.finetuning.recipe import task_recipe, validate_recipe
from bert_helu.finetuning.run import FineTuneRun
from bert_helu.glue.submission import describe, submission_files, write_submission
from bert_helu.glue.tasks import load_task, missing_files
from bert_helu.models.hub import push_checkpoint
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.identity import checkpoint_digest
from bert_helu.runtime.precision import resolve_mixed_precision
from bert_helu.runtime.trackers import tracker_names

log = logging.getLogger(__name__)


def run_batch(
    checkpoints, tasks, cfg, output_dir: Path, glue_dir, cli_seeds=None, predict_test=False
) -> BatchReport:
    """Every run not finished yet (with ``predict_test``, a run without its test predictions is not);
    launched as several processes, this process's share of them, and the report of them all."""
    output_dir = Path(output_dir)

    # 1. Inputs: every recipe value, checkpoint and GLUE file is read and checked before the first
    #    run, so that a bad one is one line and exit status 2 with nothing written, rather than a
    #    batch that fails run by run (or hours in). Tasks whose files are absent are skipped.
    validate_recipe(cfg)
    precision = resolve_mixed_precision(cfg.mixed_precision, key="mixed_precision")
    tracker_names(cfg.logging)  # W&B asked for but not installed: said now, not at the first run
    available, absent = check_glue_dir(glue_dir, tasks)
    for task in absent:
        missing = ", ".join(missing_files(task, glue_dir))
        log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
    recipes = [task_recipe(cfg, task) for task in available]
    lengths = {recipe.key("max_length"): recipe.settings.train["max_length"] for recipe in recipes}
    digests = {}
    for checkpoint in checkpoints:
        check_checkpoint(checkpoint.path, lengths)
        digests[checkpoint.name] = checkpoint_digest(checkpoint.path)
    data = {t.name: load_task(t, glue_dir) for t in available}  # every row parsed: a bad one fails here
    submissions = {t.name: submission_files(t, glue_dir) if predict_test else [] for t in available}

    # 2. The runs, each with its folder and identity (its checkpoint's content and its task's
    #    resolved recipe). A run is done when its results files exist with its identity, so a
    #    restart skips those and redoes any run killed midway; another run's results in its place
    #    are refused now.
    runs = plan_runs(
        checkpoints, recipes, output_dir, cli_seeds, digests, tokenizer_identity(cfg.tokenizer), precision,
        submissions,
    )  # fmt: skip
    for run in runs:
        run.done()
    report = BatchReport(total=len(runs), unavailable=[t.name for t in absent])

    # 3. Processes: launched as several, each takes every N-th run (bert_helu.finetuning.processes).
    #    Runs that start from another task's model (init_from) wait in a second phase until every
    #    run of that task has ended, whichever process ran it.
    processes = join_launch()
    workers = processes.workers(cfg.num_workers)
    sources = {run.recipe.init_from for run in runs if run.recipe.init_from}
    phases = [[r for r in runs if r.task.name in sources], [r for r in runs if r.task.name not in sources]]
    mine = [processes.share(phase) for phase in phases]
    if processes.count > 1:
        log.info("%s: %d of the %d runs", processes, sum(map(len, mine)), len(runs))
    done = {run for phase in mine for run in phase if run.done()}
    report.skipped_done = len(done)
    if done:
        log.info("%d of %d runs already finished; running the other ones", len(done), sum(map(len, mine)))

    # 4. Each run: set up, trained (every epoch evaluated), evaluated (INT8 and test sets when
    #    asked) and saved, its results files last. A run that fails is reported, and the batch
    #    goes on with the next.
    progress = BatchProgress(sum(map(len, mine)), report.skipped_done, processes)
    for number, phase in enumerate(mine):
        if number:
            processes.meet()
        for run in phase:
            if run in done:
                continue
            if run.done():  # finished meanwhile by another batch on this output dir
                report.skipped_done += 1
                progress.skipped()
                continue
            progress.starting(run)
            progress.ended(
                attempt(run, data[run.task.name], precision, workers, cfg.logging, glue_dir, report)
            )
    progress.close()

    # 5. The report of every process's runs; the first process gives it (report_batch).
    return whole_report(report, processes)


def report_batch(
    report: BatchReport, checkpoints, output_dir: Path, predict_test: bool, submission_seed, push
) -> int:
    """6. What the batch did, from the first process: with ``predict_test`` each checkpoint's GLUE
    submission (``submission_seed``: None, the best dev score per task, or a seed), one line of
    counts and one per failed run, then the pushed model (``push``: (model dir, repo) or None).
    The exit status: 1 when a run failed."""
    if not report.main:
        # one of several processes: the first writes the submissions and the summary, and its exit
        # status is the batch's (a launcher stops the others as soon as one exits with a failure)
        return 0
    if predict_test:
        for checkpoint in checkpoints:
            written = write_submission(output_dir, checkpoint.name, submission_seed)
            print(describe(checkpoint.name, written), file=sys.stderr)
    print(
        f"{report.total} runs: {len(report.finished)} finished now, {report.skipped_done} already done, "
        f"{len(report.failed)} failed"
        + (f"; no data for: {', '.join(report.unavailable)}" if report.unavailable else ""),
        file=sys.stderr,
    )
    for run, message in report.failed:
        print(f"failed: {run}: {message}", file=sys.stderr)
    if report.failed:
        return 1
    if push:
        model_dir, repo = push
        if not (model_dir / "config.json").is_file():
            raise UserError(
                f"--push-to-hub: no fine-tuned model in {model_dir} (a run finished earlier without "
                "--save-models, or its task has no data); fine-tune it into another --output-dir"
            )
        url = push_checkpoint(
            model_dir, repo, f"bert-helu finetune: {model_dir.parent.relative_to(output_dir)}"
        )
        print(f"pushed {model_dir} to {url}", file=sys.stderr)
    return 0


def attempt(run: Run, data, precision: str, workers: int, logging_cfg, glue_dir, report: BatchReport) -> str:
    """One run from set-up to saved files, its outcome added to ``report``; a failure is reported,
    never raised. What happened, in a line."""
    finetuning = None
    try:
        finetuning = FineTuneRun(
            run, data, run_accelerator(precision), workers=workers, logging=logging_cfg, glue_dir=glue_dir
        )
        finetuning.setup()
        finetuning.train()
        finetuning.evaluate()
        written = finetuning.save()
    except UserError as err:
        report.failed.append((str(run), str(err)))
        return f"FAILED {run}: {err}"
    except Exception as err:  # a bug or a crash in one run must not cost the rest of the batch
        report.failed.append((str(run), f"{type(err).__name__}: {err}"))
        traceback.print_exc(file=sys.stderr)
        return f"FAILED {run}: {type(err).__name__}: {err}"
    finally:
        if finetuning:
            finetuning.close()
    report.finished.append(str(run))
    return f"done {run}: " + "; ".join(written)
