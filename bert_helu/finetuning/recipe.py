"""The fine-tuning recipe: its keys with their defaults and meaning, one run's settings
(``RunSettings``), and each task's settings resolved from the recipe (``train`` with the task's
``tasks.<name>`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass

from bert_helu.finetuning.inputs import check_recipe
from bert_helu.glue.tasks import GlueTask

# The settings of one fine-tuning run; a recipe sets them under `train:` and per task under `tasks:`.
TRAIN_DEFAULTS = {
    "epochs": 5,
    "batch_size": 16,
    "lr": 4e-5,
    "weight_decay": 0.01,
    "scheduler": "cosine",
    "warmup_ratio": 0.1,
    "max_length": 128,
    "grad_clip": 1.0,
    "eval_batch_size": 64,
    "group_by_length": True,
    "max_train_examples": None,  # cap (a fixed random subset, the same for every seed/checkpoint)
    "max_eval_examples": None,
}

# One line per TRAIN_DEFAULTS key (docs/config.md; a test fails when a key has none).
TRAIN_KEY_HELP = {
    "epochs": "passes over the training set; the dev set is evaluated after each, the last one is reported",
    "batch_size": "training examples per optimizer step (a run is one process, however many are launched)",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay (not applied to biases and LayerNorm weights)",
    "scheduler": "learning-rate schedule, a transformers get_scheduler name: linear, cosine, constant, "
    "constant_with_warmup, polynomial, ...",
    "warmup_ratio": "linear warm-up over this share of the training steps",
    "max_length": "tokens per example at most (longer ones are cut); batches are padded to their longest",
    "grad_clip": "clip the gradient norm to this value; 0: no clipping",
    "eval_batch_size": "examples per evaluation batch",
    "group_by_length": "batch examples of similar length together (less padding, faster; the order stays "
    "random between batches), as the Hugging Face Trainer's group_by_length",
    "max_train_examples": "train on at most this many examples: a fixed random subset, the same for every "
    "seed and checkpoint; null: all",
    "max_eval_examples": "evaluate on at most this many dev examples (a fixed random subset); null: all",
}


@dataclass
class RunSettings:
    train: dict  # TRAIN_DEFAULTS' keys
    int8: bool = False  # also evaluate the model after dynamic INT8 quantisation
    tokenizer: str | None = None  # instead of the checkpoint's own
    # DataLoader worker processes; not part of a run's identity: they collate batches (padding), the
    # sampler and its random order stay in the main process, so the results do not depend on them
    num_workers: int = 0


DEFAULTS = {
    "seeds": [42],
    "mixed_precision": "auto",
    "save_model": False,
    "int8": False,
    "tokenizer": None,
    "torch_threads": None,
    "num_workers": None,
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
TASK_KEYS = set(TRAIN_DEFAULTS) | set(_TASK_ONLY_KEYS)  # what a task may set under tasks.<name>

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
    "num_workers": "DataLoader worker processes that pad batches while the model computes (null: 0 on "
    "CPU, as many as 4 per GPU process on a GPU); results do not depend on it, so it is not part of a "
    "run's identity",
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
class TaskRecipe:
    """One task's resolved recipe, computed once per batch."""

    task: GlueTask
    settings: RunSettings  # what a FineTuneRun trains with
    seeds: tuple[int, ...]
    save_model: bool
    init_from: str | None  # a task whose fine-tuned model (same checkpoint, seed) starts this one
    overridden: frozenset[str]  # train keys the task sets itself

    def key(self, name: str) -> str:
        """The recipe key a train setting came from, as messages name it."""
        return f"tasks.{self.task.name}.{name}" if name in self.overridden else f"train.{name}"


def validate_recipe(cfg) -> None:
    """Check every value of the recipe, and give the tasks' train keys the types of ``train`` (in place)."""
    check_recipe(cfg, TRAIN_DEFAULTS, TASK_KEYS)


def task_recipe(cfg, task: GlueTask) -> TaskRecipe:
    """``task``'s settings in a validated recipe (``validate_recipe`` refuses unknown task keys)."""
    overrides = dict((cfg.tasks or {}).get(task.name) or {})
    train_overrides = {k: v for k, v in overrides.items() if k in TRAIN_DEFAULTS}
    return TaskRecipe(
        task=task,
        settings=RunSettings(
            train={**cfg.train, **train_overrides}, int8=bool(cfg.int8), tokenizer=cfg.tokenizer
        ),
        seeds=tuple(int(s) for s in overrides.get("seeds", cfg.seeds)),
        save_model=bool(overrides.get("save_model", cfg.save_model)),
        init_from=overrides.get("init_from"),
        overridden=frozenset(train_overrides),
    )
