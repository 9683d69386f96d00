"""A batch of fine-tuning runs: checkpoints x tasks x seeds, resumable, one failure never stops the rest.

Layout under the output dir: ``<run name>/<task>/seed<seed>/results.json`` (MNLI also writes
``<run name>/mnli_mismatched/seed<seed>/results.json``), with ``predictions.npz`` beside it (per-example
dev predictions, bert_helu.predictions), and ``.../model/`` when models are saved.
A results file is written atomically when its run has finished, last, with the run's identity (the
checkpoint's content and the task's resolved recipe): "the file exists with this identity" is
exactly "the run is done", so a restart skips those and redoes any run that was killed midway.
Every input is checked before the first run (bert_helu.finetune_inputs).
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration
from tqdm.auto import tqdm

from bert_helu.atomic import atomic_write_json, atomic_write_text
from bert_helu.data.glue import GlueSplits, GlueTask, load_task, missing_files
from bert_helu.data.glue_test import (
    SubmissionFile,
    has_test_data,
    load_test_set,
    prediction_lines,
    submission_files_of,
)
from bert_helu.errors import UserError
from bert_helu.finetune_inputs import (
    check_checkpoint,
    check_glue_dir,
    check_recipe,
    check_splits,
    finished,
    tokenizer_identity,
)
from bert_helu.finetune_tracking import RunTracker
from bert_helu.finetuning import TRAIN_DEFAULTS, TRAIN_KEY_HELP, RunSettings, finetune
from bert_helu.glue_submission import PREDICTIONS_DIR, predict_in_order
from bert_helu.identity import checkpoint_digest, finetune_identity
from bert_helu.named_checkpoints import NamedCheckpoint
from bert_helu.precision import resolve_mixed_precision
from bert_helu.predictions import FILE_NAME as PREDICTIONS_FILE
from bert_helu.predictions import write_predictions
from bert_helu.provenance import pretraining_provenance
from bert_helu.run_files import tracker_names

log = logging.getLogger(__name__)

DEFAULTS = {
    "seeds": [42],
    "mixed_precision": "auto",
    "save_model": False,
    "int8": False,
    "tokenizer": None,
    "torch_threads": None,
    "train": TRAIN_DEFAULTS,
    "tasks": {},
    "logging": {
        "tensorboard": True,
        "wandb": False,
        "wandb_project": "bert-helu",
        "log_every_steps": 10,
    },
}
_TASK_ONLY_KEYS = {
    "seeds": "this task's seeds (when --seeds is not given)",
    "save_model": "keep this task's fine-tuned models (true for a task others start from)",
    "init_from": "start from the fine-tuned model of this other task (same checkpoint, the same seed if "
    "there is one), with a fresh head: the Mosaic recipe starts RTE, MRPC and STS-B from MNLI",
}
_TASK_KEYS = set(TRAIN_DEFAULTS) | set(_TASK_ONLY_KEYS)

# One line per key of DEFAULTS, dotted; train.* lines are TRAIN_KEY_HELP. A test fails when one is missing.
FINETUNE_KEY_HELP = {
    "seeds": "seeds of every task (--seeds overrides them); each seed decides the head's initial weights "
    "and the data order",
    "mixed_precision": "auto (bf16 on GPUs that have it, else fp16; bf16 on CPUs with native bf16, else "
    "fp32), no (fp32), bf16 or fp16",
    "save_model": "keep each fine-tuned model in <run>/model/ (--save-models sets it)",
    "int8": "also evaluate each fine-tuned model after dynamic INT8 quantisation of its nn.Linear layers "
    "(--int8 sets it); results.json then has an int8 entry",
    "tokenizer": "a tokenizer directory to use instead of the checkpoint's own",
    "torch_threads": "torch threads on CPU (null: torch's choice, one per core). On a shared machine one "
    "thread per process can be several times faster than two competing with other jobs",
    **{f"train.{key}": text for key, text in TRAIN_KEY_HELP.items()},
    "tasks": "per-task settings that replace train.* for that task, e.g. {rte: {lr: 2.0e-5, epochs: 10}}; "
    "besides any train key a task may set: "
    + "; ".join(f"{key}: {text}" for key, text in _TASK_ONLY_KEYS.items()),
    "logging.tensorboard": "write each run's loss, learning rate and dev metrics to "
    "<run>/tensorboard/ (tensorboard --logdir results/)",
    "logging.wandb": "also log each run to Weights & Biases, named <run name>/<task>/seed<seed> and grouped "
    "by run name (pip install 'bert-helu[wandb]'; wandb login, or WANDB_MODE=offline)",
    "logging.wandb_project": "the W&B project",
    "logging.log_every_steps": "log the training loss and learning rate every this many steps",
}


@dataclass(frozen=True)
class Run:
    checkpoint: NamedCheckpoint
    task: GlueTask
    seed: int

    def dir(self, output_dir: Path, task_name: str | None = None) -> Path:
        return output_dir / self.checkpoint.name / (task_name or self.task.name) / f"seed{self.seed}"

    def result_files(self, output_dir: Path) -> list[Path]:
        return [self.dir(output_dir, name) / "results.json" for name in self.task.reported_names]

    def prediction_files(self, output_dir: Path, submissions: list[SubmissionFile]) -> list[Path]:
        return [self.dir(output_dir) / PREDICTIONS_DIR / sub.file for sub in submissions]

    def done(self, output_dir: Path, identity: dict, submissions: list[SubmissionFile] = ()) -> bool:
        """Finished by this very run (same checkpoint content and recipe), test predictions included."""
        if not finished(self.result_files(output_dir), identity):
            return False
        return all(p.is_file() for p in self.prediction_files(output_dir, submissions))

    def __str__(self) -> str:
        return f"{self.checkpoint.name}/{self.task.name}/seed{self.seed}"


@dataclass
class BatchReport:
    total: int
    skipped_done: int = 0
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


def task_settings(cfg, task: GlueTask) -> tuple[RunSettings, list[int]]:
    """The run settings of ``task``: the recipe's ``train`` with its ``tasks.<name>`` overrides."""
    overrides = dict((cfg.tasks or {}).get(task.name) or {})
    unknown = set(overrides) - _TASK_KEYS
    if unknown:
        known = ", ".join(sorted(_TASK_KEYS))
        raise UserError(
            f"recipe: tasks.{task.name}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})"
        )
    seeds = overrides.pop("seeds", cfg.seeds)
    settings = RunSettings(
        train={**cfg.train, **{k: v for k, v in overrides.items() if k in TRAIN_DEFAULTS}},
        save_model=bool(overrides.get("save_model", cfg.save_model)),
        int8=bool(cfg.int8),
        init_from=overrides.get("init_from"),
        tokenizer=cfg.tokenizer,
    )
    return settings, [int(s) for s in seeds]


def validate_recipe(cfg) -> None:
    """Check every value of the recipe, and give the tasks' train keys the types of ``train`` (in place)."""
    check_recipe(cfg, TRAIN_DEFAULTS, _TASK_KEYS)


def plan_runs(checkpoints, tasks, cfg, cli_seeds: list[int] | None) -> list[Run]:
    """Every (checkpoint, task, seed); a task another one starts from (``init_from``) comes first."""
    sources = {s.init_from for t in tasks if (s := task_settings(cfg, t)[0]).init_from}
    ordered = sorted(tasks, key=lambda t: t.name not in sources)
    runs = []
    for ckpt in checkpoints:
        for task in ordered:
            seeds = cli_seeds or task_settings(cfg, task)[1]
            runs.extend(Run(ckpt, task, seed) for seed in seeds)
    return runs


def run_batch(
    checkpoints, tasks, cfg, output_dir: Path, glue_dir, cli_seeds=None, predict_test=False
) -> BatchReport:
    """Every run not finished yet; with ``predict_test`` a run is finished once its test predictions
    exist too (a run finished without them is done again)."""
    output_dir = Path(output_dir)
    precision = resolve_mixed_precision(cfg.mixed_precision, key="mixed_precision")
    tracker_names(cfg.logging)  # W&B asked for but not installed: say so before the first run
    accelerator = _accelerator(precision)
    runs, data, identities, report = _checked_inputs(
        checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, accelerator.num_processes
    )
    tasks_planned = {r.task.name: r.task for r in runs}
    submissions = {n: _submissions(t, glue_dir) if predict_test else [] for n, t in tasks_planned.items()}
    todo = [r for r in runs if not r.done(output_dir, identities[r], submissions[r.task.name])]
    report.skipped_done = len(runs) - len(todo)
    if report.skipped_done:
        log.info(
            "%d of %d runs already finished; running the other %d", report.skipped_done, len(runs), len(todo)
        )

    # over the whole batch: runs done / total, and the ETA of the rest
    only_main = not accelerator.is_main_process
    bar = tqdm(
        total=len(runs), initial=report.skipped_done, unit="run", desc="fine-tuning", disable=only_main
    )
    for run in todo:
        bar.set_postfix_str(str(run))
        # finished meanwhile by another batch on this output dir
        if run.done(output_dir, identities[run], submissions[run.task.name]):
            report.skipped_done += 1
            bar.update(1)
            continue
        try:
            # a fresh Accelerator per run: it holds references to its prepared model/optimizer, and
            # dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)
            run_accelerator = _accelerator(precision)
            outcome_files = _one_run(
                run,
                cfg,
                output_dir,
                data[run.task.name],
                identities[run],
                run_accelerator,
                submissions[run.task.name],
                glue_dir,
            )
            report.finished.append(str(run))
            if accelerator.is_main_process:
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


def _submissions(task: GlueTask, glue_dir) -> list[SubmissionFile]:
    """The task's submission files whose test data exists (all of them from the hub)."""
    present = [sub for sub in submission_files_of(task.name) if has_test_data(sub, glue_dir)]
    for sub in submission_files_of(task.name):
        if sub not in present:
            log.warning(
                "no test file %s: %s will be missing from the submission", Path(glue_dir) / sub.path, sub.file
            )
    return present


def _accelerator(precision: str) -> Accelerator:
    # split_batches: a recipe's batch size is the global one, each process gets its share of a batch;
    # cpu: without it, torchrun on a machine without GPUs gives N single-process runs
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )


def _checked_inputs(checkpoints, tasks, cfg, output_dir, glue_dir, cli_seeds, precision, processes):
    """Every input read and checked before the first run: (runs, data per task, identities, report)."""
    validate_recipe(cfg)
    available, absent = check_glue_dir(glue_dir, tasks)
    report = BatchReport(total=0, unavailable=[t.name for t in absent])
    for task in absent:
        missing = ", ".join(missing_files(task, glue_dir))
        log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
    settings = {t.name: task_settings(cfg, t)[0] for t in available}
    lengths = {}
    for task in available:
        own = (cfg.tasks or {}).get(task.name) or {}
        train = settings[task.name].train
        for key in ("batch_size", "eval_batch_size"):
            check_splits(train[key], processes, f"tasks.{task.name}.{key}" if key in own else f"train.{key}")
        lengths[f"tasks.{task.name}.max_length" if "max_length" in own else "train.max_length"] = train[
            "max_length"
        ]
    digests = {}
    for ckpt in checkpoints:
        check_checkpoint(ckpt.path, lengths)
        digests[ckpt.name] = checkpoint_digest(ckpt.path)
    data = {t.name: load_task(t, glue_dir) for t in available}  # parses every file: bad rows fail here
    runs = plan_runs(checkpoints, available, cfg, cli_seeds)
    tokenizer = tokenizer_identity(cfg.tokenizer)
    identities = {
        run: finetune_identity(
            digests[run.checkpoint.name],
            run.task.name,
            run.seed,
            settings[run.task.name],
            tokenizer,
            precision,
        )
        for run in runs
    }
    for run in runs:
        run.done(output_dir, identities[run])  # results of another run in its place are refused now
    report.total = len(runs)
    return runs, data, identities, report


def _one_run(
    run: Run, cfg, output_dir: Path, data: GlueSplits, identity: dict, accelerator, submissions, glue_dir
) -> list[str]:
    settings, _ = task_settings(cfg, run.task)
    tests = {sub: load_test_set(sub, glue_dir) for sub in submissions}
    init_dir = None
    if settings.init_from:
        same_seed = run.dir(output_dir, settings.init_from) / "model"
        any_seed = sorted(
            (output_dir / run.checkpoint.name / settings.init_from).glob("seed*/model/config.json")
        )
        candidate = same_seed if (same_seed / "config.json").is_file() else None
        candidate = candidate or (any_seed[0].parent if any_seed else same_seed)
        if (candidate / "config.json").is_file():
            init_dir = candidate
        else:
            log.info(
                "%s: no %s model at %s; starting from the checkpoint", run, settings.init_from, candidate
            )
    model_dir = run.dir(output_dir) / "model" if settings.save_model else None

    def predict_tests(model, tokenizer) -> dict:
        size, length = settings.train["eval_batch_size"], settings.train["max_length"]
        return {
            sub: predict_in_order(model, tokenizer, ds, run.task, length, size) for sub, ds in tests.items()
        }

    tracker = None
    if accelerator.is_main_process and tracker_names(cfg.logging):
        tracker = RunTracker(
            cfg.logging, run.dir(output_dir), str(run), run.checkpoint.name, run.task.name, settings.train
        )
    try:
        outcome = finetune(
            run.checkpoint.path, run.task, run.seed, data, settings, accelerator, model_dir, init_dir,
            tracker=tracker, after_training=predict_tests if tests else None,
        )  # fmt: skip
    finally:
        if tracker:
            tracker.close()
    written = []
    if accelerator.is_main_process:
        for (
            sub,
            predictions,
        ) in outcome.test_predictions.items():  # before results.json: it marks the run done
            lines = prediction_lines(sub, tests[sub]["index"], predictions)
            atomic_write_text(run.dir(output_dir) / PREDICTIONS_DIR / sub.file, lines)
        # what replicate grouping needs: the checkpoint's pretraining seed and recipe
        pretraining = pretraining_provenance(
            run.checkpoint.path, outcome.results[run.task.name]["activation"]
        )
        # the mismatched file first: the run only counts as done once the task's own file exists
        for name in reversed(run.task.reported_names):
            result = {"run": run.checkpoint.name, **outcome.results[name], "identity": identity}
            result["pretraining"] = pretraining
            if outcome.model_dir is not None:
                result["model_dir"] = str(outcome.model_dir)
            if name in outcome.dev_predictions:
                write_predictions(run.dir(output_dir, name) / PREDICTIONS_FILE, outcome.dev_predictions[name])
                result["predictions"] = PREDICTIONS_FILE
            atomic_write_json(run.dir(output_dir, name) / "results.json", result)
            shown = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
            written.append(f"{name} {shown}")
        written += [f"test predictions {sub.file}" for sub in outcome.test_predictions]
    return written
