"""A batch of fine-tuning runs: checkpoints x tasks x seeds, resumable, one failure never stops the rest.

Layout under the output dir: ``<run name>/<task>/seed<seed>/results.json`` (MNLI also writes
``<run name>/mnli_mismatched/seed<seed>/results.json``), with ``predictions.npz`` beside it (per-example
dev predictions, bert_helu.predictions), and ``.../model/`` when models are saved.
A results file is written atomically when its run has finished, and last, so "the file exists" is
exactly "the run is done": a restart skips those and redoes any run that was killed midway.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import Accelerator
from tqdm.auto import tqdm

from bert_helu.atomic import atomic_write_json
from bert_helu.data.glue import (
    TASKS,
    GlueSplits,
    GlueTask,
    HubUnavailableError,
    load_task,
    missing_files,
    task_available,
)
from bert_helu.errors import UserError
from bert_helu.finetuning import TRAIN_DEFAULTS, RunSettings, finetune
from bert_helu.precision import resolve_mixed_precision
from bert_helu.predictions import FILE_NAME as PREDICTIONS_FILE
from bert_helu.predictions import write_predictions
from bert_helu.provenance import pretraining_provenance

log = logging.getLogger(__name__)

DEFAULTS = {
    "seeds": [42],
    "mixed_precision": "auto",  # auto | no | bf16 | fp16, resolved as in pretraining (bf16 only where native)
    "save_model": False,  # fine-tuned models are large; results.json is what the tables need
    "int8": False,
    "tokenizer": None,  # default: the checkpoint's own tokenizer files
    # CPU threads for torch (default: torch's choice). On a shared machine 1 thread per process can be
    # several times faster than 2 threads competing with other jobs.
    "torch_threads": None,
    "train": TRAIN_DEFAULTS,
    # per task: any `train` key, plus seeds, save_model, init_from (a task run first, same seed)
    "tasks": {},
}
_TASK_KEYS = set(TRAIN_DEFAULTS) | {"seeds", "save_model", "init_from"}

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

    def done(self, output_dir: Path) -> bool:
        return all(p.is_file() for p in self.result_files(output_dir))

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
    for name in cfg.tasks or {}:
        if name not in TASKS:
            raise UserError(f"recipe: tasks: unknown GLUE task {name!r} (known: {', '.join(TASKS)})")
        init_from = (cfg.tasks[name] or {}).get("init_from")
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


def run_batch(checkpoints, tasks, cfg, output_dir: Path, glue_dir, cli_seeds=None) -> BatchReport:
    output_dir = Path(output_dir)
    validate_recipe(cfg)
    available = []
    report = BatchReport(total=0)
    for task in tasks:
        if task_available(task, glue_dir):
            available.append(task)
        else:
            missing = ", ".join(missing_files(task, glue_dir))
            log.warning("skipping GLUE task %s: data absent (%s); it shows as n/a", task.name, missing)
            report.unavailable.append(task.name)
    runs = plan_runs(checkpoints, available, cfg, cli_seeds)
    report.total = len(runs)
    todo = [r for r in runs if not r.done(output_dir)]
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
        if run.done(output_dir):  # finished meanwhile by another batch on the same output dir
            report.skipped_done += 1
            bar.update(1)
            continue
        try:
            # a fresh Accelerator per run: it holds references to its prepared model/optimizer, and
            # dropping it frees them without accelerate's free_memory (a full gc.collect, seconds)
            run_accelerator = Accelerator(mixed_precision=precision)
            outcome_files = _one_run(run, cfg, output_dir, glue_dir, data_cache, run_accelerator)
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


def _task_data(task: GlueTask, glue_dir, cache: dict) -> GlueSplits:
    if task.name not in cache:
        try:
            cache[task.name] = load_task(task, glue_dir)
        except UserError as err:
            cache[task.name] = err  # a bad file fails every run of the task with the same message
    if isinstance(cache[task.name], UserError):
        raise cache[task.name]
    return cache[task.name]


def _one_run(run: Run, cfg, output_dir: Path, glue_dir, data_cache, accelerator) -> list[str]:
    settings, _ = task_settings(cfg, run.task)
    data = _task_data(run.task, glue_dir, data_cache)
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
    outcome = finetune(
        run.checkpoint.path, run.task, run.seed, data, settings, accelerator, model_dir, init_dir
    )
    written = []
    if accelerator.is_main_process:
        # what replicate grouping needs: the checkpoint's pretraining seed and recipe
        pretraining = pretraining_provenance(
            run.checkpoint.path, outcome.results[run.task.name]["activation"]
        )
        # the mismatched file first: the run only counts as done once the task's own file exists
        for name in reversed(run.task.reported_names):
            result = {"run": run.checkpoint.name, **outcome.results[name], "pretraining": pretraining}
            if outcome.model_dir is not None:
                result["model_dir"] = str(outcome.model_dir)
            if name in outcome.extra.get("predictions", {}):
                write_predictions(
                    run.dir(output_dir, name) / PREDICTIONS_FILE, outcome.extra["predictions"][name]
                )
                result["predictions"] = PREDICTIONS_FILE
            atomic_write_json(run.dir(output_dir, name) / "results.json", result)
            shown = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
            written.append(f"{name} {shown}")
    return written
