"""Simulated fine-tuning results (results.json + per-example predictions) for the analysis tests."""

import json

import numpy as np

from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval, write_predictions

METRICS = {"rte": ["accuracy"], "mrpc": ["f1", "accuracy"], "stsb": ["pearson", "spearmanr"]}


N = {"rte": 277, "mrpc": 200, "stsb": 300}


rng = np.random.default_rng(0)


GOLD = {"rte": rng.integers(0, 2, 277), "mrpc": rng.integers(0, 2, 200), "stsb": rng.uniform(0, 5, 300)}


def predictions_with_skill(task, skill, seed):
    """Predictions right on about ``skill`` of the examples (scores: noise shrinking with skill)."""
    draw = np.random.default_rng(seed)
    gold = GOLD[task]
    if task == "stsb":
        return gold + draw.normal(0, 3 * (1 - skill), len(gold))
    return np.where(draw.random(len(gold)) < skill, gold, 1 - gold)


def write_result(root, run, activation, task, seed, preds, int8=None, pretraining=None):
    regression = task == "stsb"
    gold = GOLD[task].astype(np.float32) if regression else GOLD[task]
    stored = from_eval(np.arange(len(gold)), preds, gold, int8, regression=regression)
    folder = root / run / task / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    write_predictions(folder / "predictions.npz", stored)
    record = {"run": run, "task": task, "seed": seed, "checkpoint": f"runs/{run}/final",
              "activation": activation, "predictions": "predictions.npz", "pretraining": pretraining,
              "metrics": compute_metrics(METRICS[task], stored.prediction, stored.label)}  # fmt: skip
    if int8 is not None:
        record["int8"] = {"metrics": compute_metrics(METRICS[task], stored.int8_prediction, stored.label)}
    (folder / "results.json").write_text(json.dumps(record))
    return folder / "results.json"


def glue_eval(*args):
    from glue_eval.__main__ import main

    try:
        return main([*map(str, args)])
    except SystemExit as exit_:
        return exit_.code
