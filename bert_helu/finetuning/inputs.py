"""Everything a fine-tuning batch reads, checked before its first run starts.

A bad recipe value, checkpoint, GLUE file or output folder is one line and exit status 2 with
nothing written, rather than a batch that fails run by run (or hours in). What can only go wrong
while a run trains (a loss that diverges, say) still fails that run alone.

Results already in the output folder are matched by identity (bert_helu.runtime.identity): the same run is
skipped, a run of another checkpoint content or recipe in its place is refused, naming what differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bert_helu.glue.tasks import TASKS, GlueTask, missing_files, task_available
from bert_helu.runtime.config import coerce
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.rules import Rule, above, at_least, broken_rule, is_int

# The recipe's top-level settings and the values each `train` setting must hold.
_RECIPE_RULES: dict[str, Rule] = {
    "torch_threads": (lambda v: v is None or (is_int(v) and v >= 1), "a positive integer or null"),
    "num_workers": (lambda v: v is None or (is_int(v) and v >= 0), "an integer >= 0 or null"),
}
_SEEDS_RULE: Rule = (
    lambda v: isinstance(v, list) and bool(v) and all(is_int(s) and s >= 0 for s in v),
    "a list of integers >= 0",
)
_TRAIN_RULES: dict[str, Rule] = {
    "epochs": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "eval_batch_size": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "max_length": (lambda v: is_int(v) and v >= 8, "an integer >= 8"),
    "lr": above(0),
    "weight_decay": at_least(0),
    "warmup_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "grad_clip": at_least(0, "0: no clipping"),
    "max_train_examples": (lambda v: v is None or (is_int(v) and v >= 1), "null or a positive integer"),
    "max_eval_examples": (lambda v: v is None or (is_int(v) and v >= 1), "null or a positive integer"),
}


def check_recipe(cfg, train_defaults: dict, task_keys: set[str]) -> None:
    """Values the recipe loader cannot judge by type (it knows no per-task keys, nor ranges)."""
    _check(cfg, {**_RECIPE_RULES, "seeds": _SEEDS_RULE})
    _check(cfg.train, _TRAIN_RULES, "train.")
    for name, overrides in (cfg.tasks or {}).items():
        where = f"tasks.{name}"
        if name not in TASKS:
            raise UserError(f"recipe: tasks: unknown GLUE task {name!r} (known: {', '.join(TASKS)})")
        if not isinstance(overrides, dict):
            raise UserError(
                f"recipe: {where} must be a mapping of settings (e.g. {{epochs: 3}}), got {overrides!r}"
            )
        unknown = set(overrides) - task_keys
        if unknown:
            known = ", ".join(sorted(task_keys))
            raise UserError(f"recipe: {where}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})")
        for key in set(overrides) & set(train_defaults):
            overrides[key] = coerce(f"{where}.{key}", train_defaults[key], overrides[key], "recipe")
        _check({**cfg.train, **overrides}, {**_TRAIN_RULES, "seeds": _SEEDS_RULE}, f"{where}.")
        init_from = overrides.get("init_from")
        if init_from is not None and init_from not in TASKS:
            raise UserError(f"recipe: {where}.init_from: unknown GLUE task {init_from!r}")


def _check(values: dict, rules: dict[str, Rule], where: str = "") -> None:
    broken = broken_rule(values, rules)
    if broken:
        key, value, expected = broken
        raise UserError(f"recipe: {where}{key} must be {expected}, got {value!r}")


def check_glue_dir(glue_dir, tasks: list[GlueTask]) -> tuple[list[GlueTask], list[GlueTask]]:
    """(tasks whose files are there, tasks absent); a folder with none of them is an error."""
    if glue_dir is None:
        return list(tasks), []  # the hub has every task
    if not Path(glue_dir).is_dir():
        raise UserError(f"--glue-dir {glue_dir}: no such directory")
    available = [t for t in tasks if task_available(t, glue_dir)]
    if not available:
        names = ", ".join(t.name for t in tasks)
        raise UserError(
            f"--glue-dir {glue_dir} holds none of the tasks asked for ({names}); "
            f"expected the GLUE layout, e.g. {missing_files(tasks[0], glue_dir)[0]}"
        )
    return available, [t for t in tasks if t not in available]


def check_checkpoint(path: Path, max_lengths: dict[str, int]) -> None:
    """A model checkpoint (a config.json object, safetensors weights) long enough for the recipe."""
    from bert_helu.models.encoders import load_model_config

    config = load_model_config(path)  # a UserError for a missing, unreadable or non-object config.json
    if not list(Path(path).glob("*.safetensors")):
        raise UserError(f"{path}: no *.safetensors weights (bert_helu never loads pickled .bin files)")
    positions = getattr(config, "max_position_embeddings", None)
    for where, length in max_lengths.items():
        if is_int(positions) and length > positions:
            raise UserError(f"recipe: {where} {length} is longer than the {positions} positions of {path}")


def finished(result_files: list[Path], identity: dict) -> bool:
    """Whether every results file of a run is there and of this run; one of another run is refused."""
    from bert_helu.runtime.identity import check_identity

    present = [p for p in result_files if p.is_file()]
    for path in present:
        try:
            found = json.loads(path.read_text()).get("identity")
        except (OSError, ValueError, AttributeError):
            raise UserError(f"{path}: not a readable results.json; remove it to redo the run") from None
        check_identity(found, identity, path.parent, advice="use another --output-dir, or remove it to redo")
    return len(present) == len(result_files)


def tokenizer_identity(tokenizer) -> str | None:
    """A tokenizer override by content when it is a folder (by name otherwise: a hub id)."""
    if tokenizer is None:
        return None
    if os.path.isdir(tokenizer):
        from bert_helu.data.tokenizer import tokenizer_digest

        return tokenizer_digest(tokenizer)
    return str(tokenizer)
