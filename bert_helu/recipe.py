"""The pretraining recipe: every key a recipe may set (``PRETRAIN_DEFAULTS``) and the values allowed.

Kept apart from the training code (and free of torch) so that ``python -m pretrain --prepare-only``
reads and checks a recipe without paying seconds of torch/transformers imports.
"""

from __future__ import annotations

from bert_helu.data.defaults import DATA_DEFAULTS
from bert_helu.errors import UserError

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
        "checkpoint_every_steps": 0,
        "checkpoint_every_minutes": 30.0,
        "keep_checkpoints": 2,
        "eval_every_steps": 500,
        "eval_batches": 16,
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
    tr, tel, model = cfg["train"], cfg["telemetry"], cfg["model"]
    rules = [
        ("model.architecture", model["architecture"] in ("bert", "modernbert"), "bert or modernbert"),
        ("model.global_attn_every_n_layers", model["global_attn_every_n_layers"] >= 1, ">= 1"),
        ("train.max_steps", tr["max_steps"] >= 0, ">= 0"),
        ("train.budget_hours", tr["budget_hours"] >= 0, ">= 0"),
        ("train.lr", tr["lr"] > 0, "> 0"),
        (
            "train.betas",
            len(tr["betas"]) == 2 and all(0 <= b < 1 for b in tr["betas"]),
            "two numbers in [0, 1)",
        ),
        ("train.eps", tr["eps"] > 0, "> 0"),
        ("train.weight_decay", tr["weight_decay"] >= 0, ">= 0"),
        ("train.grad_clip", tr["grad_clip"] >= 0, ">= 0 (0: no clipping)"),
        ("train.mlm_probability", 0 < tr["mlm_probability"] < 1, "in (0, 1)"),
        ("train.max_bad_steps", tr["max_bad_steps"] >= 1, ">= 1"),
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
