"""The pretraining recipe: every key a recipe may set (``PRETRAIN_DEFAULTS``) and the values allowed.

Kept apart from the training code (and free of torch) so that ``python -m pretrain --prepare-only``
reads and checks a recipe without paying seconds of torch/transformers imports.
"""

from __future__ import annotations

import json
from pathlib import Path

from bert_helu.data.defaults import DATA_DEFAULTS
from bert_helu.errors import UserError

PRETRAIN_DEFAULTS = {
    "activation": "gelu",
    "seed": 42,
    "model": {
        # BertConfig field names (BERT-base); ignored when init_from is set.
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "init_from": None,  # an HF checkpoint dir to start from (its activation is swapped)
    },
    "data": DATA_DEFAULTS,
    "train": {
        "global_batch_size": 288,
        "micro_batch_size": 32,
        "max_steps": 0,  # 0: no step limit (then budget_hours must be set)
        "budget_hours": 0.0,  # 0: no wall-clock budget
        "lr": 1e-4,
        "betas": [0.9, 0.98],
        "eps": 1e-12,
        "weight_decay": 0.01,
        "grad_clip": 0.5,
        "scheduler": "one_cycle",  # one_cycle | linear | triangle | cosine | constant
        "schedule_progress": "time",  # time (elapsed / budget) | steps (step / max_steps)
        "warmup_fraction": 0.0,
        "min_lr_ratio": 0.0,
        "mlm_probability": 0.15,
        "mixed_precision": "auto",  # auto | no | bf16 | fp16
        "compile": False,
        "cpu_threads": 0,  # torch intra-op threads; 0 = torch's default (one per core)
        "max_bad_steps": 10,  # abort after this many non-finite steps in a row
        # fp16: abort after this many steps in a row skipped for overflow (the loss scale halves at
        # each; 25 halvings take the default 65536 below 1, where an overflow is no longer scaling)
        "max_overflow_steps": 25,
        "checkpoint_every_steps": 0,
        "checkpoint_every_minutes": 30.0,
        "keep_checkpoints": 2,
        "eval_every_steps": 500,
        "eval_batches": 16,  # validation set: this many global batches of the validation split
        "log_every_steps": 10,
    },
    "telemetry": {
        "enabled": True,
        "every": 200,  # start a telemetry window every this many steps
        "window": 8,  # batches per window (dead neurons: never positive over the window)
        "histogram_every": 1000,  # pre-activation histograms saved to <run>/telemetry/ this often
    },
    "logging": {
        "tensorboard": True,
        "wandb": False,
        "wandb_project": "bert-helu",
        "progress_bar": True,
    },
}


def check_values(cfg) -> None:
    """Values load_config cannot judge by type alone (it checks keys and types)."""
    tr, tel = cfg["train"], cfg["telemetry"]
    betas = tr["betas"]
    rules = [
        ("seed", cfg["seed"] >= 0, ">= 0"),
        ("data.seed", cfg["data"]["seed"] >= 0, ">= 0"),
        ("train.max_steps", tr["max_steps"] >= 0, ">= 0"),
        ("train.budget_hours", tr["budget_hours"] >= 0, ">= 0"),
        ("train.global_batch_size", tr["global_batch_size"] >= 1, ">= 1"),
        ("train.micro_batch_size", tr["micro_batch_size"] >= 1, ">= 1"),
        ("train.lr", tr["lr"] > 0, "> 0"),
        (
            "train.betas",
            len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas),
            f"two numbers in [0, 1), got {betas!r}",
        ),
        ("train.eps", tr["eps"] > 0, "> 0"),
        ("train.weight_decay", tr["weight_decay"] >= 0, ">= 0"),
        ("train.grad_clip", tr["grad_clip"] >= 0, ">= 0 (0: no clipping)"),
        ("train.mlm_probability", 0 < tr["mlm_probability"] < 1, "in (0, 1)"),
        ("train.max_bad_steps", tr["max_bad_steps"] >= 1, ">= 1"),
        ("train.max_overflow_steps", tr["max_overflow_steps"] >= 1, ">= 1"),
        ("train.keep_checkpoints", tr["keep_checkpoints"] >= 1, ">= 1"),
        ("train.log_every_steps", tr["log_every_steps"] >= 1, ">= 1"),
        ("train.eval_every_steps", tr["eval_every_steps"] >= 0, ">= 0 (0: only at the end)"),
        ("train.eval_batches", tr["eval_batches"] >= 1, ">= 1"),
        ("train.checkpoint_every_steps", tr["checkpoint_every_steps"] >= 0, ">= 0"),
        ("train.checkpoint_every_minutes", tr["checkpoint_every_minutes"] >= 0, ">= 0"),
        ("train.cpu_threads", tr["cpu_threads"] >= 0, ">= 0"),
        ("telemetry.every", tel["every"] >= 0, ">= 0"),
        (
            "telemetry.window",
            tel["window"] >= 1 and tel["window"] <= max(tel["every"], 1),
            "in [1, telemetry.every]",
        ),
        ("telemetry.histogram_every", tel["histogram_every"] >= 0, ">= 0"),
    ]
    for name, ok, expected in rules:
        if not ok:
            raise UserError(f"{name} must be {expected}")
    check_model(cfg)


def check_model(cfg) -> None:
    """Model sizes that cannot work, found before the corpus is prepared rather than after."""
    model, seq_len = cfg["model"], cfg["data"]["seq_len"]
    if model.get("init_from"):
        positions = _checkpoint_positions(Path(model["init_from"]))
        where = f"the positions of model.init_from ({model['init_from']})"
    else:
        for key, value in model.items():
            if key.endswith(("_size", "_layers", "_heads", "position_embeddings")) and (
                not _is_int(value) or value < 1
            ):
                raise UserError(f"model.{key} must be a positive integer, got {value!r}")
        hidden, heads = model.get("hidden_size"), model.get("num_attention_heads")
        if hidden and heads and hidden % heads:
            raise UserError(
                f"model.num_attention_heads {heads} must divide model.hidden_size {hidden} "
                "(each head gets hidden_size / heads dimensions)"
            )
        positions = model.get("max_position_embeddings")
        where = "model.max_position_embeddings"
    if _is_int(positions) and _is_int(seq_len) and seq_len > positions:
        raise UserError(f"data.seq_len {seq_len} is longer than the model's {positions} positions ({where})")


def _checkpoint_positions(directory: Path):
    path = directory / "config.json"
    if not path.is_file():
        raise UserError(f"model.init_from: {directory} is not a model checkpoint (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({err})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: not a model config (a JSON object expected)")
    return config.get("max_position_embeddings")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
