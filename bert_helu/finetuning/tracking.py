"""One fine-tuning run's curves in TensorBoard (default) and Weights & Biases (``logging.wandb``).

Per run (checkpoint x task x seed): the settings as hyperparameters, ``train/loss`` and ``train/lr``
every ``logging.log_every_steps`` steps, and ``dev/<task>/<metric>`` after every epoch (at the step
the epoch ended). TensorBoard writes ``<run dir>/tensorboard/``; a W&B run is named
``<run name>/<task>/seed<seed>`` and grouped by run name, so seeds sit together. A run is
logged by the process that runs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bert_helu.runtime.trackers import tracker_hparams


class RunTracker:
    def __init__(self, logging_cfg: dict, run_dir: Path, name: str, group: str, task: str, settings: dict):
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        self.every = max(1, int(logging_cfg["log_every_steps"]))
        self.steps = 0  # optimizer steps so far: the x axis of every curve
        self.trackers = []
        if logging_cfg["tensorboard"]:
            # a run redone after a crash starts a fresh curve instead of drawing over the old one
            shutil.rmtree(Path(run_dir) / "tensorboard", ignore_errors=True)
            self.trackers.append(TensorBoardTracker("tensorboard", run_dir))
        if logging_cfg["wandb"]:
            self.trackers.append(
                WandBTracker(logging_cfg["wandb_project"], name=name, group=group, job_type=task)
            )
        for tracker in self.trackers:
            tracker.start()
            tracker.store_init_configuration(tracker_hparams(settings))

    def step(self, loss: Callable[[], float | None], lr: float) -> None:
        """After each optimizer step: ``loss()``, called on logging steps only, gives the mean training
        loss since it was last called (reading it waits for the GPU); ``lr``, the rate the step ends with."""
        self.steps += 1
        if self.steps % self.every == 0:
            self._log({"train/loss": loss(), "train/lr": lr}, self.steps)

    def epoch(self, epoch: int, metrics: dict[str, dict[str, float]]) -> None:
        values = {
            f"dev/{name}/{metric}": v for name, scores in metrics.items() for metric, v in scores.items()
        }
        self._log({**values, "epoch": epoch}, self.steps)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    def _log(self, values: dict, step: int) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)
