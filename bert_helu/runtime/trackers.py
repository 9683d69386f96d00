"""Experiment trackers (accelerate's): TensorBoard by default, Weights & Biases optional, for
pretraining and fine-tuning alike."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bert_helu.runtime.errors import UserError


def tracker_names(logging: dict, run_dir: Path | None = None) -> list:
    """accelerate trackers for ``Accelerator(log_with=...)`` (TensorBoard by default, W&B optional).

    With ``run_dir``, TensorBoard writes to ``<run_dir>/tensorboard/`` whatever the W&B project is called
    (accelerate would otherwise name its folder after the project given to ``init_trackers``).
    """
    if logging["wandb"] and importlib.util.find_spec("wandb") is None:
        raise UserError("logging.wandb is true but wandb is not installed (pip install 'bert-helu[wandb]')")
    trackers = []
    if logging["tensorboard"]:
        if run_dir is None:
            trackers.append("tensorboard")
        else:
            from accelerate.tracking import TensorBoardTracker

            trackers.append(TensorBoardTracker("tensorboard", run_dir))
    return trackers + (["wandb"] if logging["wandb"] else [])


def tracker_hparams(cfg: dict, prefix: str = "") -> dict:
    """Scalars only, as TensorBoard's hparams want them; lists and null as JSON text."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(tracker_hparams(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


def add_histograms(writer, histograms: dict, step: int) -> None:
    """Telemetry histograms (counts over fixed bins) as TensorBoard histograms, one per FFN layer.

    TensorBoard draws the bucket counts; the sum and sum of squares it also stores are estimated from
    bin centres. Values outside the binned range go in one bucket on each side.
    """
    for layer, hist in histograms.items():
        edges, counts = hist["edges"], hist["counts"]
        limits, buckets = list(edges[1:]), list(counts)
        if hist["below"]:
            limits, buckets = [edges[0], *limits], [hist["below"], *buckets]
        if hist["above"]:
            limits, buckets = [*limits, max(hist["max"] or edges[-1], edges[-1])], [*buckets, hist["above"]]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        total = sum(buckets)
        if not total:
            continue
        writer.add_histogram_raw(
            f"telemetry/preactivation/layer{layer}",
            min=hist["min"] if hist["min"] is not None else edges[0],
            max=hist["max"] if hist["max"] is not None else edges[-1],
            num=total,
            sum=sum(c * x for c, x in zip(counts, centres, strict=True)),
            sum_squares=sum(c * x * x for c, x in zip(counts, centres, strict=True)),
            bucket_limits=limits,
            bucket_counts=buckets,
            global_step=step,
        )
