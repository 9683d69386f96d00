"""The pretraining recipe: every key a recipe may set (``PRETRAIN_DEFAULTS``), what it means
(``PRETRAIN_KEY_HELP``, the text of docs/config.md), how one is read (``load_recipe``) and the one
check of a resolved recipe (``check_recipe``), made before any work.

Kept apart from the training code (and free of torch) so that ``python -m pretrain --prepare-only``
reads and checks a recipe without paying seconds of torch/transformers imports.
"""

from __future__ import annotations

import json
from pathlib import Path

from bert_helu.data.defaults import DATA_DEFAULTS, DATA_KEY_HELP, check_data
from bert_helu.pretraining.schedules import Schedule
from bert_helu.runtime.config import Config, load_config
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.rules import Rule, above, at_least, broken_rule, is_int, is_number

ARCHITECTURES = ("bert", "modernbert")  # model.architecture: see bert_helu.models.encoders

PRETRAIN_DEFAULTS = {
    "activation": "gelu",
    "seed": 42,
    "model": {
        # BertConfig field names (BERT-base); ignored when init_from is set.
        "architecture": "bert",  # bert (stock post-LN BERT) | modernbert (pre-LN, no biases, gated FFN)
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "global_attn_every_n_layers": 1,  # modernbert: 1 = global attention in every layer
        "local_attention": 128,  # modernbert: window of the local-attention layers (if any)
        "init_from": None,  # an HF checkpoint dir to start from (its activation is swapped)
    },
    "data": DATA_DEFAULTS,
    "train": {
        "global_batch_size": 288,
        "micro_batch_size": 32,
        "max_steps": 0,
        "budget_hours": 0.0,
        "lr": 1e-4,
        "betas": [0.9, 0.98],
        "eps": 1e-12,
        "weight_decay": 0.01,
        "grad_clip": 0.5,
        "scheduler": "one_cycle",
        "schedule_progress": "time",
        "warmup_fraction": 0.0,
        "min_lr_ratio": 0.0,
        "mlm_probability": 0.15,
        "mixed_precision": "auto",
        "compile": False,
        "cpu_threads": 0,
        "collective_timeout_minutes": 30.0,
        "max_bad_steps": 10,
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
        "every": 200,
        "window": 8,
        "histogram_every": 1000,
    },
    "logging": {
        "tensorboard": True,
        "wandb": False,
        "wandb_project": "bert-helu",
        "progress_bar": True,
    },
}

# One line per key of PRETRAIN_DEFAULTS, dotted ("train.lr"); the data.* lines are DATA_KEY_HELP.
# Adding a key to the defaults means adding its line here: a test fails otherwise.
PRETRAIN_KEY_HELP = {
    "activation": "the FFN activation: a registered name or name:key=value,... (helu:alpha=0.05); "
    "--activation sets it too, and --list-activations shows them all",
    "seed": "seed of model initialisation, masking and data order",
    "model.architecture": "bert (stock post-LayerNorm BERT) or modernbert (the crammed encoder: "
    "pre-LayerNorm, no biases, gated FFN, rotary positions; ModernBertForMaskedLM), see "
    "docs/crammed_encoder.md",
    "model.hidden_size": "width of the encoder (ignored with model.init_from)",
    "model.num_hidden_layers": "number of transformer layers",
    "model.num_attention_heads": "attention heads per layer (must divide hidden_size)",
    "model.intermediate_size": "width of the feed-forward block, where the activation is applied "
    "(modernbert: the activations per token; the gated block's input projection is twice as wide)",
    "model.max_position_embeddings": "longest sequence the position embeddings cover (>= data.seq_len)",
    "model.hidden_dropout_prob": "dropout on hidden states (Cramming pretrains with 0)",
    "model.attention_probs_dropout_prob": "dropout on attention probabilities",
    "model.global_attn_every_n_layers": "modernbert: global attention every this many layers, local (sliding "
    "window) attention in between; 1 = global in every layer, as Cramming",
    "model.local_attention": "modernbert: the window, in tokens, of local-attention layers (if any)",
    "model.init_from": "start from this Hugging Face checkpoint directory instead of a fresh model, with its "
    "FFN activation swapped for 'activation' (relufying a GELU model, say); its tokenizer is used "
    "unless data.tokenizer is set, and the model.* sizes above are ignored",
    **{f"data.{key}": text for key, text in DATA_KEY_HELP.items()},
    "train.global_batch_size": "sequences per optimizer step over all processes; gradient accumulation "
    "makes up the difference (global = micro x accumulation x processes)",
    "train.micro_batch_size": "sequences per forward/backward pass in each process (lower it when memory "
    "is short; the global batch and the result stay the same)",
    "train.max_steps": "stop after this many optimizer steps; 0: no step limit (then budget_hours must be "
    "set)",
    "train.budget_hours": "stop after this much training time (validation and checkpointing are not "
    "counted), Cramming's budget; 0: no time limit. With both set the first one reached ends the run",
    "train.lr": "peak learning rate (AdamW)",
    "train.betas": "AdamW betas, two numbers in [0, 1)",
    "train.eps": "AdamW epsilon",
    "train.weight_decay": "AdamW weight decay (not applied to biases and LayerNorm weights)",
    "train.grad_clip": "clip the gradient norm to this value; 0: no clipping",
    "train.scheduler": "learning-rate schedule: one_cycle (linear up over the first half, down over the "
    "second: Cramming's budget one-cycle), linear (warm-up, then linear decay to 0), triangle (warm-up, "
    "then linear decay to min_lr_ratio), cosine (warm-up, then cosine to min_lr_ratio), constant "
    "(warm-up, then the peak)",
    "train.schedule_progress": "what drives the schedule: time (elapsed / budget_hours, so a faster "
    "activation gets more steps from the same budget) or steps (step / max_steps)",
    "train.warmup_fraction": "linear warm-up over this share of the run, for linear, triangle, cosine and "
    "constant; one_cycle has its own ramp and ignores it",
    "train.min_lr_ratio": "floor of the triangle and cosine schedules, as a share of the peak",
    "train.mlm_probability": "share of tokens masked for the MLM loss (BERT: 0.15)",
    "train.mixed_precision": "auto (bf16 on GPUs that have it, else fp16; bf16 on CPUs with native bf16, "
    "AVX512-BF16 or AMX, else fp32), no (fp32), bf16 or fp16",
    "train.compile": "torch.compile the model after accelerate wraps it (DDP keeps its overlap); the first "
    "steps are slow while it compiles; telemetry windows run the eager model (hooks work there)",
    "train.collective_timeout_minutes": "how long a process waits for the others in a collective call "
    "(torch.distributed's timeout); the corpus is prepared before the processes connect, so this only "
    "has to cover a checkpoint save or an evaluation",
    "train.cpu_threads": "torch threads per process on CPU; 0: torch's default (one per core). On a shared "
    "machine fewer threads can be faster",
    "train.max_bad_steps": "a step whose loss or gradient is not finite is skipped; the run stops after "
    "this many in a row",
    "train.max_overflow_steps": "fp16 only: the run stops after this many steps in a row skipped for "
    "overflow by the loss scaler (each halves the scale; 25 take the default 65,536 below 1)",
    "train.checkpoint_every_steps": "save a resumable checkpoint every this many steps; 0: off",
    "train.checkpoint_every_minutes": "save a resumable checkpoint every this many minutes of training; "
    "0: off",
    "train.keep_checkpoints": "checkpoints kept in <run>/checkpoints/ (older ones are deleted)",
    "train.eval_every_steps": "validation MLM loss every this many steps; 0: only at the end",
    "train.eval_batches": "micro-batches of the validation set per evaluation",
    "train.log_every_steps": "log the training loss, learning rate, gradient norm and tokens/s every this "
    "many steps (metrics.jsonl and the trackers)",
    "telemetry.enabled": "record FFN activation statistics during training (exact zeros, dead neurons, "
    "pre-activations in HeLU's band) into metrics.jsonl and the trackers",
    "telemetry.every": "start a telemetry window every this many steps (0: never)",
    "telemetry.window": "steps per window; dead neurons are those never positive over the window",
    "telemetry.histogram_every": "also save pre-activation histograms this often (steps), to "
    "<run>/telemetry/histograms-step*.json and TensorBoard; 0: never",
    "logging.tensorboard": "write metrics to <run>/tensorboard/ (tensorboard --logdir runs/)",
    "logging.wandb": "also log to Weights & Biases (pip install 'bert-helu[wandb]'; wandb login, or "
    "WANDB_MODE=offline)",
    "logging.wandb_project": "the W&B project; the run is named after the output directory",
    "logging.progress_bar": "show a progress bar with loss, learning rate, tokens/s and budget left",
}


def load_recipe(path, overrides: list[str] = ()) -> Config:
    """The resolved recipe: defaults <- YAML file <- ``dotted.key=value`` overrides (unchecked)."""
    cfg = load_config(PRETRAIN_DEFAULTS, path, overrides)
    if cfg.model.init_from and not cfg.data.tokenizer:
        cfg.data.tokenizer = str(cfg.model.init_from)  # the vocabulary must be the checkpoint's
    return cfg


def check_recipe(cfg, to_train: bool = False) -> list[str]:
    """Every rule on a resolved recipe that its keys' types do not already enforce (``load_config``
    does those); a UserError naming the key for the first one broken. ``to_train``: also what only
    a training run needs (an end, an activation that exists). Returns warnings for the user."""
    _check_values(cfg)
    check_model(cfg)
    check_data(cfg["data"])
    tr = cfg["train"]
    schedule = Schedule.from_recipe(tr)
    if to_train:
        from bert_helu.activations import parse_spec  # imports torch: only when training

        parse_spec(cfg["activation"])
        if not (tr["max_steps"] or tr["budget_hours"]):
            raise UserError("set train.max_steps or train.budget_hours (or both): a run needs an end")
        schedule.progress_of(0, tr["max_steps"], 0.0, tr["budget_hours"] * 3600)  # its budget is set
    warnings = []
    if tr["scheduler"] == "one_cycle" and tr["warmup_fraction"]:
        warnings.append(
            f"train.warmup_fraction={tr['warmup_fraction']:g} has no effect with train.scheduler="
            "one_cycle, whose ramp over the first half of the run is the warm-up"
        )
    return warnings


def _value_rules(cfg) -> dict[str, Rule]:
    betas, every = cfg["train"]["betas"], cfg["telemetry"]["every"]
    return {
        "model.architecture": (lambda v: v in ARCHITECTURES, " or ".join(ARCHITECTURES)),
        "model.global_attn_every_n_layers": at_least(1),
        "seed": at_least(0),
        "train.max_steps": at_least(0),
        "train.budget_hours": at_least(0),
        "train.global_batch_size": at_least(1),
        "train.micro_batch_size": at_least(1),
        "train.lr": above(0),
        "train.betas": (
            lambda v: len(v) == 2 and all(is_number(b) and 0 <= b < 1 for b in v),
            f"two numbers in [0, 1), got {betas!r}",
        ),
        "train.eps": above(0),
        "train.weight_decay": at_least(0),
        "train.grad_clip": at_least(0, "0: no clipping"),
        "train.mlm_probability": (lambda v: 0 < v < 1, "in (0, 1)"),
        "train.max_bad_steps": at_least(1),
        "train.max_overflow_steps": at_least(1),
        "train.keep_checkpoints": at_least(1),
        "train.log_every_steps": at_least(1),
        "train.eval_every_steps": at_least(0, "0: only at the end"),
        "train.eval_batches": at_least(1),
        "train.checkpoint_every_steps": at_least(0),
        "train.checkpoint_every_minutes": at_least(0),
        "train.cpu_threads": at_least(0),
        "train.collective_timeout_minutes": above(0),
        "telemetry.every": at_least(0),
        "telemetry.window": (lambda v: 1 <= v <= max(every, 1), "in [1, telemetry.every]"),
        "telemetry.histogram_every": at_least(0),
    }


def _check_values(cfg) -> None:
    broken = broken_rule(cfg, _value_rules(cfg))
    if broken:
        name, _, expected = broken
        raise UserError(f"{name} must be {expected}")


def check_model(cfg) -> None:
    """Model sizes that cannot work, found before the corpus is prepared rather than after."""
    model, seq_len = cfg["model"], cfg["data"]["seq_len"]
    if model.get("init_from"):
        positions = _checkpoint_positions(Path(model["init_from"]))
        where = f"the positions of model.init_from ({model['init_from']})"
    else:
        for key, value in model.items():
            if key.endswith(("_size", "_layers", "_heads", "position_embeddings")) and (
                not is_int(value) or value < 1
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
    if is_int(positions) and is_int(seq_len) and seq_len > positions:
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
