"""What makes two runs the same run: every recipe value that changes the result.

A pretraining run's identity is its whole resolved recipe except the logistics below (how it is
logged, saved and spread over hardware, which a resumed run may change). Data is identified by the
prepared corpus's fingerprint (the content of the source files and tokenizer recipe, not their paths)
and by its vocabulary (the tokenizer's files: tokenizers' WordPiece trainer is not deterministic,
huggingface/tokenizers#1794, so a corpus rebuilt under the same fingerprint can tokenize otherwise), a
starting checkpoint by the hash of its files, precision by what ``auto`` resolved to. A run
directory holds one identity: resuming or rerunning it with another is refused, naming the keys
that differ.

A fine-tuning result is keyed to the content of the checkpoint it started from and to the task's
resolved recipe, so a retrained checkpoint or a changed recipe is a new run, never a stale hit.
"""

from __future__ import annotations

import json
from pathlib import Path

from bert_helu.runtime.errors import UserError
from bert_helu.runtime.hashing import named_files_digest

# Recipe keys that change neither the trained model nor a number the run reports: a resumed run may
# change them. Replicate grouping (bert_helu.models.provenance) leaves them out too.
LOGISTICS = (
    "train.micro_batch_size",  # the global batch is fixed; micro-batches only cut it for memory
    "train.compile",
    "train.cpu_threads",
    "train.collective_timeout_minutes",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_minutes",
    "train.keep_checkpoints",
    "train.eval_every_steps",  # evaluation reads the model, it never changes it
    "train.log_every_steps",
    "train.max_bad_steps",
    "train.max_overflow_steps",
    "data.cache_dir",
    "telemetry",
    "logging",
)

# Recipe keys that change what a run reports (its validation loss), never the model it trains: part
# of a run's identity (a finished run asked again with another validation set did not measure it),
# not of its recipe as a replicate.
MEASUREMENT = ("train.eval_batches",)

# Recipe keys that leave the trained model unchanged: how it was operated and how it was measured.
NOT_IN_MODEL = LOGISTICS + MEASUREMENT

# Files of a checkpoint directory that decide what it computes (weights, config, tokenizer).
_CHECKPOINT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


# Identity keys that runs saved by earlier versions do not have: such a run is compared without them
# (it still resumes), a run that recorded one is compared with it.
ADDED_LATER = ("data.vocabulary",)


def pretrain_identity(
    cfg, activation: str, precision: str, corpus_fingerprint: str, vocabulary: str | None = None
) -> dict:
    """The identity of a pretraining run (JSON values, comparable with what a run saved).
    ``vocabulary``: the digest of the corpus's tokenizer files (PreparedCorpus.vocabulary)."""
    recipe = without(cfg, LOGISTICS)
    recipe["activation"] = activation  # canonical spec ("helu:alpha=0.05"), not as typed
    recipe["train"]["mixed_precision"] = precision  # what "auto" resolved to on this machine
    data = recipe["data"]
    for key in ("sources", "tokenizer"):  # both are in the corpus fingerprint, by content
        data.pop(key, None)
    data["corpus"] = corpus_fingerprint
    if vocabulary is not None:
        data["vocabulary"] = vocabulary
    if recipe["model"].get("init_from"):
        recipe["model"]["init_from"] = checkpoint_digest(recipe["model"]["init_from"])
    return recipe


def finetune_identity(
    checkpoint_digest: str, task: str, seed: int, settings, init_from: str | None, tokenizer, precision
) -> dict:
    """The identity of one fine-tuning run (``settings``: bert_helu.finetuning.recipe.RunSettings;
    ``init_from``: the task whose fine-tuned model it starts from)."""
    return json.loads(
        json.dumps(
            {
                "checkpoint": checkpoint_digest,
                "task": task,
                "seed": seed,
                "train": settings.train,
                "int8": settings.int8,
                "init_from": init_from,
                "tokenizer": tokenizer,
                "mixed_precision": precision,
            }
        )
    )


def checkpoint_digest(directory: str | Path) -> str:
    """Hash of a Hugging Face checkpoint's content: weights, config and tokenizer files."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise UserError(f"{directory}: not a model checkpoint (no config.json)")
    files = sorted(directory.glob("*.safetensors")) + [
        directory / name for name in _CHECKPOINT_FILES if (directory / name).is_file()
    ]
    try:
        return named_files_digest(files)
    except OSError as err:
        raise UserError(f"{directory}: cannot read the checkpoint ({err.strerror or err})") from None


def without(tree: dict, dotted_keys) -> dict:
    """A deep copy of ``tree`` (JSON values) without the dotted keys (``train.compile``, ``logging``)."""
    tree = json.loads(json.dumps(tree, default=str))
    for dotted in dotted_keys:
        *parents, last = dotted.split(".")
        node = tree
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return tree


def differences(found, expected) -> list[str]:
    """``key: X there, Y here`` for every dotted key whose value differs."""
    a, b = _flatten(found), _flatten(expected)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, _ABSENT) != b.get(key, _ABSENT):
            out.append(f"{key} {_show(a.get(key, _ABSENT))} there, {_show(b.get(key, _ABSENT))} here")
    return out


def check_identity(found, expected: dict, where, advice: str = "use another --output-dir") -> None:
    recorded = _flatten(found) if isinstance(found, dict) else {}
    expected = without(expected, [key for key in ADDED_LATER if key not in recorded])
    if found == expected:
        return
    diff = differences(found, expected)
    shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
    if len(diff) == 1 and diff[0].startswith("data.vocabulary "):
        advice = (
            "the corpus cache was rebuilt and its trained tokenizer came out otherwise (tokenizers' "
            f"trainer is not deterministic): restore the cache this run was made with, or {advice}"
        )
    raise UserError(f"{where} belongs to a different run ({shown}); {advice}")


_ABSENT = object()


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip(".") or "(all)": value}


def _show(value) -> str:
    return "absent" if value is _ABSENT else json.dumps(value)
