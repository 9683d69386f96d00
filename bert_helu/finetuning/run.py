"""One fine-tuning run (a checkpoint, a GLUE task, a seed) as one object, ``FineTuneRun``, whose
steps the batch (finetune/batch.py) calls in order: ``setup`` (tokenizer, model, encoded splits,
loaders, optimizer, schedule, tracker), ``train`` (the epochs, each followed by a dev evaluation),
``evaluate`` (the trained model: INT8 metrics and test-set predictions when asked) and ``save``
(the model when asked, then the results files). The run's state lives on the object between steps.

The checkpoint's training activation is kept (``load_model`` restores HeLU). Batches are padded
dynamically and grouped by length, which is where most of the speed over a pad-to-128 loop comes
from (scripts/bench_finetune.py). Accelerate handles the device and bf16 autocast; a run is
always one process on one device (several processes share out whole runs: bert_helu.finetuning.processes).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
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

from bert_helu.finetuning.plan import Run
from bert_helu.finetuning.results import RunOutcome, write_run_files
from bert_helu.finetuning.tracking import RunTracker
from bert_helu.glue.encoding import tokenize
from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval
from bert_helu.glue.submission import SubmissionTestSets
from bert_helu.glue.tasks import GlueSplits, GlueTask
from bert_helu.models.card import finetuned_card
from bert_helu.models.encoders import activation_of, load_model, save_model
from bert_helu.models.int8 import quantize_int8
from bert_helu.models.optimizer import decay_groups
from bert_helu.runtime.errors import UserError, first_line
from bert_helu.runtime.paths import display_path
from bert_helu.runtime.trackers import tracker_names

log = logging.getLogger(__name__)


class FineTuneRun:
    """One planned run (bert_helu.finetuning.plan.Run) on ``data``, its task's GLUE splits, with a
    fresh ``accelerator``; ``workers``: DataLoader workers; ``logging``: the recipe's ``logging``
    section (None: no tracker); ``glue_dir``: where its test sets are, when it predicts them."""

    def __init__(
        self, run: Run, data: GlueSplits, accelerator: Accelerator, *, workers=0, logging=None, glue_dir=None
    ):
        self.run, self.data, self.accelerator = run, data, accelerator
        self.task, self.seed, self.checkpoint = run.task, run.seed, Path(run.checkpoint.path)
        self.settings = replace(run.recipe.settings, num_workers=workers)
        self.cfg = self.settings.train
        self.logging, self.glue_dir = logging, glue_dir
        self.main = accelerator.is_main_process
        self.tracker = None
        self.history: list[dict] = []  # {"epoch", "metrics": {split: metrics}} per epoch
        self.last_predictions: dict = {}  # split -> (predictions, labels) of the last epoch
        self.train_seconds = 0.0  # training time, evaluation excluded
        self.examples_seen = 0  # training examples seen by all processes
        self.outcome: RunOutcome | None = None

    def setup(self) -> None:
        """Everything the epochs need, in the order that fixes the run's random numbers."""
        # read before training: a bad test file fails the run before its training
        self.test_sets = SubmissionTestSets(self.run.submissions, self.glue_dir)
        self.init_dir = self.run.init_dir()
        set_seed(self.seed)  # before the head is initialised: the seed decides head weights and data order
        self.model = load_for_task(self.checkpoint, self.task, self.init_dir)
        self.tokenizer = checkpoint_tokenizer(self.checkpoint, self.settings.tokenizer)
        self.activation = activation_of(self.model)
        self.splits = encode_splits(self.data, self.tokenizer, self.cfg, self.model, self.checkpoint)
        cfg, tokenizer, workers = self.cfg, self.tokenizer, self.settings.num_workers
        pin = self.accelerator.device.type == "cuda"
        train_dl = train_loader(
            self.splits.train, tokenizer, cfg["batch_size"], self.seed, cfg["group_by_length"], workers, pin
        )
        eval_dls = {
            name: eval_loader(ds, tokenizer, cfg["eval_batch_size"], workers, pin)
            for name, ds in self.splits.evals.items()
        }
        optimizer = build_optimizer(self.model, cfg["lr"], cfg["weight_decay"])
        self.steps = cfg["epochs"] * math.ceil(len(self.splits.train) / cfg["batch_size"])
        scheduler = get_scheduler(
            cfg["scheduler"],
            optimizer,
            num_warmup_steps=int(cfg["warmup_ratio"] * self.steps),
            num_training_steps=self.steps,
        )
        self.model, self.optimizer, self.train_dl, self.scheduler, *eval_list = self.accelerator.prepare(
            self.model, optimizer, train_dl, scheduler, *eval_dls.values()
        )
        self.eval_dls = dict(zip(eval_dls, eval_list, strict=True))
        if self.main and self.logging and tracker_names(self.logging):
            self.tracker = RunTracker(
                self.logging, self.run.dir, str(self.run), self.run.checkpoint.name, self.task.name, cfg
            )

    def train(self) -> None:
        """The epochs, each followed by an evaluation of the dev sets (the last one is reported)."""
        for epoch in range(1, self.cfg["epochs"] + 1):
            start = time.perf_counter()
            self.examples_seen += self.train_epoch(epoch)
            self.train_seconds += time.perf_counter() - start
            metrics = dev_metrics(
                self.model, self.eval_dls, self.task, self.accelerator, self.last_predictions
            )
            self.history.append({"epoch": epoch, "metrics": metrics})
            if self.tracker:
                self.tracker.epoch(epoch, metrics)
            log.info("%s %s seed %d epoch %d: %s", self.checkpoint, self.task.name, self.seed, epoch, metrics)

    def train_epoch(self, epoch: int) -> int:
        """One pass over the training set; the examples seen by all processes."""
        model, accelerator, grad_clip = self.model, self.accelerator, self.cfg["grad_clip"]
        optimizer, scheduler = self.optimizer, self.scheduler
        model.train()
        seen = 0
        where = f"{self.checkpoint}: {self.task.name} seed {self.seed}"
        losses = LossWindow(accelerator.device, f"{where}: loss became {{}} in epoch {epoch}")
        for batch in self.train_dl:
            loss = model(**batch).loss
            accelerator.backward(loss)
            if grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seen += len(batch["labels"]) * accelerator.num_processes
            losses.add(loss)
            if self.tracker:
                self.tracker.step(losses.read, scheduler.get_last_lr()[0])
        losses.read()
        return seen

    def evaluate(self) -> RunOutcome:
        """The trained model's results: the dev metrics of every epoch, INT8 metrics when the recipe
        asks, the test-set predictions of a GLUE submission when the run makes them."""
        # without the autocast wrapper accelerate put on forward: the INT8 copy must run in fp32
        self.trained = self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
        self.int8, int8_preds = (
            int8_metrics(self.trained, self.splits, self.tokenizer, self.task, self.cfg)
            if self.settings.int8
            else (None, {})
        )
        tests = {}
        if self.run.submissions and self.main:
            tests = self.test_sets.predict(
                self.trained, self.tokenizer, self.task, self.cfg["max_length"], self.cfg["eval_batch_size"]
            )
        common = {  # to every reported task's results
            "seed": self.seed,
            "checkpoint": display_path(self.checkpoint),
            "activation": self.activation,
            "train_settings": dict(self.cfg),
            "init_from": display_path(self.init_dir) if self.init_dir else None,
            "mixed_precision": self.accelerator.mixed_precision,
            "num_processes": self.accelerator.num_processes,
        }
        results = {name: self.results_of(name, common) for name in self.splits.evals}
        limit = self.cfg["max_eval_examples"]
        predictions = dev_predictions(
            self.data, self.splits.evals, limit, self.task, self.last_predictions, int8_preds
        )
        self.outcome = RunOutcome(results, dev_predictions=predictions, test_predictions=tests)
        return self.outcome

    def results_of(self, name: str, common: dict) -> dict:
        """results.json content of reported task ``name``: the ``common`` facts, then its dev numbers."""
        history, primary = self.history, self.task.metrics[0]
        best = max(history, key=lambda h: h["metrics"][name][primary])
        seconds = self.train_seconds
        result = {
            "task": name,
            **common,
            "metrics": history[-1]["metrics"][name],  # the last epoch is the reported result
            "epoch": history[-1]["epoch"],
            "best_epoch": {"epoch": best["epoch"], "metrics": best["metrics"][name], "selected_by": primary},
            "history": [{"epoch": h["epoch"], "metrics": h["metrics"][name]} for h in history],
            "num_train_examples": len(self.splits.train),
            "num_eval_examples": len(self.splits.evals[name]),
            "train_seconds": round(seconds, 2),
            "train_examples_per_second": round(self.examples_seen / seconds, 2) if seconds else None,
            "global_batch_size": self.cfg["batch_size"],  # per optimizer step, over all processes
            "optimizer_steps": self.steps,
        }
        if self.int8 is not None:
            result["int8"] = {"metrics": self.int8[name], "method": "torch.ao dynamic qint8, nn.Linear"}
        return result

    def save(self) -> list[str]:
        """The fine-tuned model with its card when the recipe keeps it, then the results files, the
        last of which marks the run done (main process); one line per file written."""
        if self.run.model_dir is not None and self.main:
            card = finetuned_card(
                self.trained, base=self.checkpoint, task=self.task, seed=self.seed,
                location=str(self.run.model_dir), train=self.cfg, dev_metrics=self.history[-1]["metrics"],
                int8_metrics=self.int8, train_examples=len(self.splits.train),
            )  # fmt: skip
            save_model(self.trained, self.run.model_dir, tokenizer=self.tokenizer, card=card)
        self.accelerator.wait_for_everyone()
        return write_run_files(self.run, self.outcome, self.test_sets) if self.main else []

    def close(self) -> None:
        """The tracker's files closed, whether the run finished or failed."""
        if self.tracker:
            self.tracker.close()


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
