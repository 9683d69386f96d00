"""A batch of fine-tuning runs: checkpoints x tasks x seeds, resumable, one failure never stops the rest.

Layout under the output dir: ``<run name>/<task>/seed<seed>/results.json`` (MNLI also writes
``<run name>/mnli_mismatched/seed<seed>/results.json``), and ``.../model/`` when models are saved.
A results file is written atomically when its run has finished, so "the file exists" is exactly
"the run is done": a restart skips those and redoes any run that was killed midway.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import Accelerator
from tqdm.auto import tqdm

from bert_helu.atomic import atomic_write_json, atomic_write_text
from bert_helu.config import coerce
from bert_helu.data.glue import (
    TASKS,
    GlueSplits,
    GlueTask,
    HubUnavailableError,
    load_task,
    missing_files,
    task_available,
)
from bert_helu.data.glue_test import (
    SubmissionFile,
    has_test_data,
    load_test_set,
    prediction_lines,
    submission_files_of,
)
from bert_helu.errors import UserError
from bert_helu.finetune_tracking import RunTracker
from bert_helu.finetuning import TRAIN_DEFAULTS, TRAIN_KEY_HELP, RunSettings, finetune
from bert_helu.glue_submission import PREDICTIONS_DIR, predict_in_order
from bert_helu.precision import resolve_mixed_precision
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

# Folder names that say nothing about which run made a checkpoint: use the parent's name instead.
_ANONYMOUS_DIRS = {"final", "model", "checkpoint", "best", "last"}


@dataclass(frozen=True)
class Checkpoint:
    name: str
    path: Path


@dataclass(frozen=True)
class Run:
    checkpoint: Checkpoint
    task: GlueTask
    seed: int

    def dir(self, output_dir: Path, task_name: str | None = None) -> Path:
        return output_dir / self.checkpoint.name / (task_name or self.task.name) / f"seed{self.seed}"

    def result_files(self, output_dir: Path) -> list[Path]:
        return [self.dir(output_dir, name) / "results.json" for name in self.task.reported_names]

    def prediction_files(self, output_dir: Path, submissions: list[SubmissionFile]) -> list[Path]:
        return [self.dir(output_dir) / PREDICTIONS_DIR / sub.file for sub in submissions]

    def done(self, output_dir: Path, submissions: list[SubmissionFile] = ()) -> bool:
        needed = self.result_files(output_dir) + self.prediction_files(output_dir, submissions)
        return all(p.is_file() for p in needed)

    def __str__(self) -> str:
        return f"{self.checkpoint.name}/{self.task.name}/seed{self.seed}"


@dataclass
class BatchReport:
    total: int
    skipped_done: int = 0
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


def parse_checkpoints(items: list[str]) -> list[Checkpoint]:
    """``path`` or ``name=path``; a run is named by its folder (``runs/helu/final`` -> ``helu``)."""
    out: list[Checkpoint] = []
    for item in items:
        name, eq, raw = item.partition("=")
        path = Path(raw if eq else item)
        if not eq:
            name = path.parent.name if path.name in _ANONYMOUS_DIRS and path.parent.name else path.name
        if not name or "/" in name:
            raise UserError(f"checkpoint {item!r}: cannot name it; write name=path")
        if any(c.name == name for c in out):
            raise UserError(f"two checkpoints are both named {name!r}; write name=path for one of them")
        out.append(Checkpoint(name, path))
    return out


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
    """Check the open ``tasks`` mapping, and give its train keys the types of ``train`` (in place)."""
    for name in cfg.tasks or {}:
        if name not in TASKS:
            raise UserError(f"recipe: tasks: unknown GLUE task {name!r} (known: {', '.join(TASKS)})")
        settings = cfg.tasks[name] or {}
        for key in set(settings) & set(TRAIN_DEFAULTS):
            settings[key] = coerce(f"tasks.{name}.{key}", TRAIN_DEFAULTS[key], settings[key], "recipe")
        init_from = settings.get("init_from")
        if init_from is not None and init_from not in TASKS:
            raise UserError(f"recipe: tasks.{name}.init_from: unknown GLUE task {init_from!r}")


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
    validate_recipe(cfg)
    tracker_names(cfg.logging)  # W&B asked for but not installed: say so before the first run
    available = []
    report = BatchReport(total=0)
    for task in tasks:
        if task_available(task, glue_dir):
            available.append(task)
        else:
            missing = ", ".join(missing_files(task, glue_dir))
            log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
            report.unavailable.append(task.name)
    submissions = {t.name: _submissions(t, glue_dir) if predict_test else [] for t in available}
    runs = plan_runs(checkpoints, available, cfg, cli_seeds)
    report.total = len(runs)
    todo = [r for r in runs if not r.done(output_dir, submissions[r.task.name])]
    report.skipped_done = len(runs) - len(todo)
    if report.skipped_done:
        log.info(
            "%d of %d runs already finished; running the other %d", report.skipped_done, len(runs), len(todo)
        )

    precision = resolve_mixed_precision(cfg.mixed_precision, key="mixed_precision")
    accelerator = Accelerator(mixed_precision=precision)
    data_cache: dict[str, GlueSplits | UserError] = {}
    # over the whole batch: runs done / total, and the ETA of the rest
    only_main = not accelerator.is_main_process
    bar = tqdm(
        total=len(runs), initial=report.skipped_done, unit="run", desc="fine-tuning", disable=only_main
    )
    for run in todo:
        bar.set_postfix_str(str(run))
        if run.done(output_dir, submissions[run.task.name]):  # finished meanwhile by another batch
            report.skipped_done += 1
            bar.update(1)
            continue
        try:
            # a fresh Accelerator per run: it holds references to its prepared model/optimizer, and
            # dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)
            run_accelerator = Accelerator(mixed_precision=precision)
            outcome_files = _one_run(
                run, cfg, output_dir, glue_dir, data_cache, run_accelerator, submissions[run.task.name]
            )
            report.finished.append(str(run))
            bar.write(f"done {run}: " + "; ".join(outcome_files))
        except HubUnavailableError:
            bar.close()
            raise
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


def _cached(key: str, cache: dict, load):
    """``load()`` once per key; a bad file fails every run that needs it with the same message."""
    if key not in cache:
        try:
            cache[key] = load()
        except UserError as err:
            cache[key] = err
    if isinstance(cache[key], UserError):
        raise cache[key]
    return cache[key]


def _task_data(task: GlueTask, glue_dir, cache: dict) -> GlueSplits:
    return _cached(task.name, cache, lambda: load_task(task, glue_dir))


def _one_run(run: Run, cfg, output_dir: Path, glue_dir, data_cache, accelerator, submissions) -> list[str]:
    settings, _ = task_settings(cfg, run.task)
    data = _task_data(run.task, glue_dir, data_cache)
    tests = {
        sub: _cached(f"test:{sub.file}", data_cache, lambda s=sub: load_test_set(s, glue_dir))
        for sub in submissions
    }
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
        for sub, predictions in outcome.extra.items():  # before results.json, which marks the run done
            lines = prediction_lines(sub, tests[sub]["index"], predictions)
            atomic_write_text(run.dir(output_dir) / PREDICTIONS_DIR / sub.file, lines)
        # the mismatched file first: the run only counts as done once the task's own file exists
        for name in reversed(run.task.reported_names):
            result = {"run": run.checkpoint.name, **outcome.results[name]}
            if outcome.model_dir is not None:
                result["model_dir"] = str(outcome.model_dir)
            atomic_write_json(run.dir(output_dir, name) / "results.json", result)
            shown = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
            written.append(f"{name} {shown}")
        written += [f"test predictions {sub.file}" for sub in outcome.extra]
    return written
