"""What a fine-tuning batch runs: every (checkpoint, task, seed), each with its settings, folders and
identity, planned once before the first run starts.

Layout under the output dir: ``<run name>/<task>/seed<seed>/results.json`` (MNLI also writes
``<run name>/mnli_mismatched/seed<seed>/results.json``), with ``predictions.npz`` beside it (per-example
dev predictions, bert_helu.glue.predictions), ``test_predictions/`` with ``--predict-test``
(bert_helu.glue.submission), and ``model/`` when models are saved. A run is done when its results
files exist with its identity (bert_helu.runtime.identity), and its test predictions too when it makes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bert_helu.finetuning.inputs import finished
from bert_helu.finetuning.recipe import TaskRecipe
from bert_helu.glue.submission import prediction_file
from bert_helu.glue.test_sets import SubmissionFile
from bert_helu.runtime.identity import finetune_identity
from bert_helu.runtime.named_checkpoints import NamedCheckpoint

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Run:
    checkpoint: NamedCheckpoint
    recipe: TaskRecipe
    seed: int
    root: Path  # <output dir>/<run name>: every task of this checkpoint
    identity: dict  # what the results files must say for the run to count as done
    submissions: tuple[SubmissionFile, ...] = ()  # test sets it predicts for a GLUE submission
    dir: Path = field(init=False)  # <root>/<task>/seed<seed>
    model_dir: Path | None = field(init=False)  # where the fine-tuned model is kept, if it is

    def __post_init__(self):
        self.dir = self.dir_of(self.task.name)
        self.model_dir = self.dir / "model" if self.recipe.save_model else None

    @property
    def task(self):
        return self.recipe.task

    def dir_of(self, task_name: str) -> Path:
        """This seed's folder of ``task_name``: a reported name (mnli_mismatched) or another task."""
        return self.root / task_name / f"seed{self.seed}"

    def result_file(self, reported_name: str) -> Path:
        return self.dir_of(reported_name) / "results.json"

    def done(self) -> bool:
        """Finished by this very run (same checkpoint content and recipe), test predictions included;
        a results file of another run in its place is a UserError."""
        results = [self.result_file(name) for name in self.task.reported_names]
        if not finished(results, self.identity):
            return False
        return all(prediction_file(self.dir, sub).is_file() for sub in self.submissions)

    def init_dir(self) -> Path | None:
        """The fine-tuned model of ``init_from`` this run starts from: the same seed's, else the first
        seed's there is; None (start from the checkpoint) when there is none."""
        source = self.recipe.init_from
        if not source:
            return None
        same_seed = self.dir_of(source) / "model"
        any_seed = sorted((self.root / source).glob("seed*/model/config.json"))
        candidate = same_seed if (same_seed / "config.json").is_file() else None
        candidate = candidate or (any_seed[0].parent if any_seed else same_seed)
        if (candidate / "config.json").is_file():
            return candidate
        log.info("%s: no %s model at %s; starting from the checkpoint", self, source, candidate)
        return None

    def __str__(self) -> str:
        return f"{self.checkpoint.name}/{self.task.name}/seed{self.seed}"


def plan_runs(
    checkpoints: list[NamedCheckpoint],
    recipes: list[TaskRecipe],
    output_dir: Path,
    cli_seeds: list[int] | None,
    digests: dict[str, str],
    tokenizer: str | None,
    precision: str,
    submissions: dict[str, list[SubmissionFile]],
) -> list[Run]:
    """Every (checkpoint, task, seed); a task another one starts from (``init_from``) comes first.

    ``digests``: checkpoint name -> content hash; ``tokenizer``: the override's identity;
    ``precision``: what ``mixed_precision`` resolved to; ``submissions``: task name -> test sets.
    """
    sources = {r.init_from for r in recipes if r.init_from}
    ordered = sorted(recipes, key=lambda r: r.task.name not in sources)
    runs = []
    for ckpt in checkpoints:
        for recipe in ordered:
            for seed in cli_seeds or recipe.seeds:
                identity = finetune_identity(
                    digests[ckpt.name],
                    recipe.task.name,
                    seed,
                    recipe.settings,
                    recipe.init_from,
                    tokenizer,
                    precision,
                )
                tests = tuple(submissions.get(recipe.task.name, ()))
                runs.append(Run(ckpt, recipe, seed, Path(output_dir) / ckpt.name, identity, tests))
    return runs
