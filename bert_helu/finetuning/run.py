"""Fine-tune one checkpoint on one GLUE task with one seed, and evaluate it (full precision and INT8).

The checkpoint's training activation is kept (``load_model`` restores HeLU). Batches are padded
dynamically and grouped by length, which is where most of the speed over a pad-to-128 loop comes
from (scripts/bench_finetune.py). Accelerate handles the device and bf16 autocast; a run is
always one process on one device (several processes share out whole runs: bert_helu.finetuning.processes).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, DataCollatorWithPadding, PreTrainedModel, get_scheduler
from transformers.trainer_pt_utils import LengthGroupedSampler

from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval
from bert_helu.glue.tasks import GlueSplits, GlueTask
from bert_helu.models.card import finetuned_card
from bert_helu.models.encoders import activation_of, load_model, save_model
from bert_helu.models.int8 import quantize_int8
from bert_helu.models.optimizer import decay_groups
from bert_helu.runtime.errors import UserError, first_line
from bert_helu.runtime.hashing import text_digest
from bert_helu.runtime.paths import display_path

log = logging.getLogger(__name__)

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


@dataclass
class RunOutcome:
    results: dict[str, dict]  # reported task name -> results.json content
    dev_predictions: dict = field(default_factory=dict)  # reported name -> per-example dev predictions
    test_predictions: dict = field(default_factory=dict)  # submission file -> test-set predictions


# ----------------------------------------------------------------------------------- data


def checkpoint_tokenizer(checkpoint: Path, override: str | None):
    source = override or checkpoint
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except Exception as err:  # transformers raises OSError, ValueError, ... for a dir without one
        raise UserError(
            f"{source}: no usable tokenizer ({first_line(err, 160)}); pass tokenizer=<dir> to use another"
        ) from None


def subset(ds: Dataset, limit: int | None) -> Dataset:
    """A fixed random subset (seed 0), so every seed and checkpoint trains on the same examples."""
    if limit is None or limit >= len(ds):
        return ds
    return ds.shuffle(seed=0).select(range(limit))


def tokenize(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    def encode(batch):
        pair = batch["text_b"] if batch["text_b"][0] is not None else None
        return tokenizer(batch["text_a"], pair, truncation=True, max_length=max_length)

    # An explicit fingerprint: otherwise datasets hashes the whole tokenizer with dill on every call
    # (seconds each, more than the tokenisation itself).
    key = f"{ds._fingerprint}-{tokenizer.name_or_path}-{len(tokenizer)}-{max_length}"
    fingerprint = text_digest(key)
    return ds.map(encode, batched=True, remove_columns=["text_a", "text_b"], new_fingerprint=fingerprint)


def check_vocab(ds: Dataset, model: PreTrainedModel, checkpoint: Path, tokenizer) -> None:
    """Token ids beyond the embedding table would index out of range deep inside torch: say why here."""
    vocab = model.config.vocab_size
    top = max((max(ids) for ids in ds["input_ids"] if ids), default=-1)
    if top >= vocab or len(tokenizer) > vocab:
        raise UserError(
            f"{checkpoint}: tokenizer/vocab mismatch: the tokenizer has {len(tokenizer)} tokens "
            f"(largest id in the data {top}) but the model's vocab_size is {vocab}"
        )


def train_loader(
    ds: Dataset, tokenizer, batch_size: int, seed: int, group_by_length: bool, workers: int = 0, pin=False
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    if group_by_length:
        # batches of similar length (shuffled megabatches, as the HF Trainer's group_by_length)
        lengths = [len(ids) for ids in ds["input_ids"]]
        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    else:
        sampler = torch.utils.data.RandomSampler(ds, generator=generator)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=DataCollatorWithPadding(tokenizer),
        **_loading(workers, pin),
    )


def _loading(workers: int, pin: bool) -> dict:
    """DataLoader settings for ``workers`` processes, pinned host memory when the model is on a GPU
    (copies to it can then overlap the step before)."""
    # no persistent_workers: a loader's iterator draws its workers' base seed from the global torch
    # RNG each epoch only when it is created anew, as without workers, so dropout sees the same RNG
    return {"num_workers": workers, "pin_memory": pin}


def eval_order(ds: Dataset) -> list[int]:
    """Sorted by length: the least padding. Predictions come back in this order."""
    lengths = [len(ids) for ids in ds["input_ids"]]
    return sorted(range(len(ds)), key=lengths.__getitem__)


def eval_loader(ds: Dataset, tokenizer, batch_size: int, workers: int = 0, pin=False) -> DataLoader:
    collate = DataCollatorWithPadding(tokenizer)
    return DataLoader(
        ds.select(eval_order(ds)), batch_size=batch_size, collate_fn=collate, **_loading(workers, pin)
    )


# ------------------------------------------------------------------------------ train / eval


def predict(model: nn.Module, loader: DataLoader, regression: bool, accelerator: Accelerator | None):
    model.eval()
    preds, labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits = model(**batch).logits.float()
            pred = logits.squeeze(-1) if regression else logits.argmax(-1)
            gold = batch["labels"]
            if accelerator is not None:
                pred, gold = accelerator.gather_for_metrics((pred, gold))
            preds.append(pred)  # copied to the host once, below: a copy per batch waits for the GPU
            labels.append(gold)
    return torch.cat(preds).cpu().numpy(), torch.cat(labels).cpu().numpy()


def dev_metrics(model, loaders: dict[str, DataLoader], task: GlueTask, accelerator=None, keep=None):
    """{split: metrics}; ``keep``, a dict, also receives {split: (predictions, labels)}."""
    out = {}
    for name, loader in loaders.items():
        preds, labels = predict(model, loader, task.is_regression, accelerator)
        out[name] = compute_metrics(task.metrics, preds, labels)
        if keep is not None:
            keep[name] = (preds, labels)
    return out


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr)


def load_for_task(checkpoint: Path, task: GlueTask, init_dir: Path | None) -> PreTrainedModel:
    kwargs = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    if init_dir is None:
        return load_model(checkpoint, task="classification", **kwargs)
    # Start from another task's fine-tuned encoder (MNLI for RTE/MRPC/STS-B in the Mosaic recipe)
    # with a fresh head of this task's size.
    model = load_model(init_dir, task="classification")
    model.classifier = nn.Linear(model.config.hidden_size, task.num_labels)
    model._init_weights(model.classifier)
    model.config.problem_type = kwargs.get("problem_type")
    model.config.num_labels = model.num_labels = task.num_labels  # the config setter redoes id2label
    return model


def finetune(
    checkpoint: Path,
    task: GlueTask,
    seed: int,
    data: GlueSplits,
    settings: RunSettings,
    accelerator: Accelerator,
    model_dir: Path | None = None,
    init_dir: Path | None = None,
    tracker=None,
    after_training=None,
) -> RunOutcome:
    """Train ``checkpoint`` on ``task`` and evaluate on its dev set(s) after every epoch.

    ``model_dir``: where to keep the fine-tuned model; ``init_dir``: a fine-tuned model to start from
    instead (its head replaced). ``tracker`` (a ``finetune_tracking.RunTracker``) receives the loss,
    learning rate and dev metrics; ``after_training(model, tokenizer)``, called on the main process
    with the trained model, returns the outcome's ``test_predictions`` (the batch predicts GLUE test
    sets with it).
    """
    cfg = settings.train
    set_seed(seed)  # before the head is initialised: the seed decides head weights and data order
    model = load_for_task(checkpoint, task, init_dir)
    tokenizer = checkpoint_tokenizer(checkpoint, settings.tokenizer)
    activation = activation_of(model)
    splits = encode_splits(data, tokenizer, cfg, model, checkpoint)
    model, training = train_and_evaluate(
        model, tokenizer, splits, checkpoint, task, seed, cfg, accelerator, tracker, settings.num_workers
    )

    # without the autocast wrapper accelerate put on forward: the INT8 copy must run in fp32
    trained = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    int8, int8_preds = int8_metrics(trained, splits, tokenizer, task, cfg) if settings.int8 else (None, {})
    main = accelerator.is_main_process
    test_predictions = after_training(trained, tokenizer) if after_training and main else {}
    if model_dir is not None and main:
        card = finetuned_card(
            trained, base=Path(checkpoint), task=task, seed=seed, location=str(model_dir), train=cfg,
            dev_metrics=training.history[-1]["metrics"], int8_metrics=int8, train_examples=len(splits.train),
        )  # fmt: skip
        save_model(trained, model_dir, tokenizer=tokenizer, card=card)
    accelerator.wait_for_everyone()

    common = {  # to every reported task's results
        "seed": seed,
        "checkpoint": display_path(checkpoint),
        "activation": activation,
        "train_settings": dict(cfg),
        "init_from": display_path(init_dir) if init_dir else None,
        "mixed_precision": accelerator.mixed_precision,
        "num_processes": accelerator.num_processes,
    }
    results = split_results(common, task, splits, training, cfg, int8)
    predictions = dev_predictions(
        data, splits.evals, cfg["max_eval_examples"], task, training.predictions, int8_preds
    )
    return RunOutcome(results, dev_predictions=predictions, test_predictions=test_predictions)


@dataclass
class EncodedSplits:
    train: Dataset
    evals: dict[str, Dataset]  # reported task name -> dev set


def encode_splits(data: GlueSplits, tokenizer, cfg: dict, model: PreTrainedModel, checkpoint: Path):
    """The training and dev sets (capped as the settings say) as token ids the model can embed."""
    train = tokenize(subset(data.train, cfg["max_train_examples"]), tokenizer, cfg["max_length"])
    evals = {
        name: tokenize(subset(ds, cfg["max_eval_examples"]), tokenizer, cfg["max_length"])
        for name, ds in data.evals.items()
    }
    for ds in (train, *evals.values()):
        check_vocab(ds, model, checkpoint, tokenizer)
    return EncodedSplits(train, evals)


@dataclass
class Training:
    """What the epochs left: dev metrics per epoch, the last epoch's dev predictions, the clock."""

    steps: int  # optimizer steps of the whole run
    history: list[dict] = field(default_factory=list)  # {"epoch", "metrics": {split: metrics}}
    predictions: dict = field(default_factory=dict)  # split -> (predictions, labels), last epoch
    seconds: float = 0.0  # training time, evaluation excluded
    examples: int = 0  # training examples seen by all processes


def train_and_evaluate(
    model,
    tokenizer,
    splits: EncodedSplits,
    checkpoint: Path,
    task: GlueTask,
    seed: int,
    cfg: dict,
    accelerator: Accelerator,
    tracker,
    workers: int = 0,
) -> tuple[nn.Module, Training]:
    """The epochs, each followed by an evaluation of the dev sets; the model as accelerate prepared it."""
    pin = accelerator.device.type == "cuda"
    train_dl = train_loader(
        splits.train, tokenizer, cfg["batch_size"], seed, cfg["group_by_length"], workers, pin
    )
    eval_dls = {
        name: eval_loader(ds, tokenizer, cfg["eval_batch_size"], workers, pin)
        for name, ds in splits.evals.items()
    }
    optimizer = build_optimizer(model, cfg["lr"], cfg["weight_decay"])
    steps = cfg["epochs"] * math.ceil(len(splits.train) / cfg["batch_size"])
    scheduler = get_scheduler(
        cfg["scheduler"],
        optimizer,
        num_warmup_steps=int(cfg["warmup_ratio"] * steps),
        num_training_steps=steps,
    )
    model, optimizer, train_dl, scheduler, *eval_list = accelerator.prepare(
        model, optimizer, train_dl, scheduler, *eval_dls.values()
    )
    eval_dls = dict(zip(eval_dls, eval_list, strict=True))
    training = Training(steps)
    where = f"{checkpoint}: {task.name} seed {seed}"
    for epoch in range(1, cfg["epochs"] + 1):
        start = time.perf_counter()
        training.examples += train_epoch(
            model, train_dl, optimizer, scheduler, cfg["grad_clip"], accelerator, tracker, where, epoch
        )
        training.seconds += time.perf_counter() - start
        metrics = dev_metrics(model, eval_dls, task, accelerator, training.predictions)
        training.history.append({"epoch": epoch, "metrics": metrics})
        if tracker:
            tracker.epoch(epoch, metrics)
        log.info("%s %s seed %d epoch %d: %s", checkpoint, task.name, seed, epoch, metrics)
    return model, training


def train_epoch(model, loader, optimizer, scheduler, grad_clip, accelerator, tracker, where, epoch) -> int:
    """One pass over the training set; the examples seen by all processes (``where``: the run, for the
    message if the loss diverges)."""
    model.train()
    seen = 0
    losses = LossWindow(accelerator.device, f"{where}: loss became {{}} in epoch {epoch}")
    for batch in loader:
        loss = model(**batch).loss
        accelerator.backward(loss)
        if grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seen += len(batch["labels"]) * accelerator.num_processes
        losses.add(loss)
        if tracker:
            tracker.step(losses.read, scheduler.get_last_lr()[0])
    losses.read()
    return seen


class LossWindow:
    """The training losses since the last read, summed where they were computed.

    Reading a loss makes the host wait until the device has computed it: once per step that keeps
    the GPU from running ahead of Python. So losses are read only when they are logged and at the
    end of an epoch; a non-finite loss fails the run then (its mean since the last read is not finite).
    """

    def __init__(self, device: torch.device, message: str):
        self.total = torch.zeros((), device=device)
        self.count = 0
        self.message = message  # "{}" is the mean loss

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss.detach().float()
        self.count += 1

    def read(self) -> float | None:
        """The mean since the last read (None: no step since), then empty."""
        if not self.count:
            return None
        mean = self.total.item() / self.count
        self.total.zero_()
        self.count = 0
        if not math.isfinite(mean):
            raise UserError(self.message.format(mean))
        return mean


def int8_metrics(model, splits: EncodedSplits, tokenizer, task: GlueTask, cfg: dict) -> tuple[dict, dict]:
    """Dev metrics of the model after dynamic INT8 quantisation, and its predictions, per split."""
    qmodel = quantize_int8(model)
    plain = {name: eval_loader(ds, tokenizer, cfg["eval_batch_size"]) for name, ds in splits.evals.items()}
    predictions = {}
    return dev_metrics(qmodel, plain, task, keep=predictions), predictions


def split_results(
    common: dict, task: GlueTask, splits: EncodedSplits, training: Training, cfg: dict, int8: dict | None
) -> dict[str, dict]:
    """results.json content per reported task name: the ``common`` facts, then that dev set's numbers."""
    history = training.history
    primary = task.metrics[0]
    results = {}
    for name in splits.evals:
        best = max(history, key=lambda h: h["metrics"][name][primary])
        results[name] = {
            "task": name,
            **common,
            "metrics": history[-1]["metrics"][name],  # the last epoch is the reported result
            "epoch": history[-1]["epoch"],
            "best_epoch": {"epoch": best["epoch"], "metrics": best["metrics"][name], "selected_by": primary},
            "history": [{"epoch": h["epoch"], "metrics": h["metrics"][name]} for h in history],
            "num_train_examples": len(splits.train),
            "num_eval_examples": len(splits.evals[name]),
            "train_seconds": round(training.seconds, 2),
            "train_examples_per_second": (
                round(training.examples / training.seconds, 2) if training.seconds else None
            ),
            "global_batch_size": cfg["batch_size"],  # per optimizer step, over all processes
            "optimizer_steps": training.steps,
        }
        if int8 is not None:
            results[name]["int8"] = {"metrics": int8[name], "method": "torch.ao dynamic qint8, nn.Linear"}
    return results


def dev_predictions(data: GlueSplits, eval_ds, limit, task: GlueTask, full: dict, int8: dict) -> dict:
    """Per split, the last epoch's predictions keyed by dev row (bert_helu.glue.predictions)."""
    out = {}
    for name, ds in eval_ds.items():
        # the dev rows `subset` kept, in the order the eval loader served them
        rows = subset(Dataset.from_dict({"row": range(len(data.evals[name]))}), limit)["row"]
        ids = np.asarray(rows)[eval_order(ds)]
        preds, labels = full[name]
        expected = np.asarray(ds["label"], dtype=labels.dtype)[eval_order(ds)]
        if not np.array_equal(labels, expected):  # the order assumed above no longer holds
            raise RuntimeError(f"{task.name}/{name}: predictions are not in eval_order; cannot index them")
        int8_preds = int8[name][0] if name in int8 else None
        out[name] = from_eval(ids, preds, labels, int8_preds, regression=task.is_regression)
    return out
