"""How long significance takes, and how often it is wrong: ``glue_eval compare``'s tests on synthetic data.

    python scripts/bench_significance.py [--rows 9 --runs 3 --resamples 10000 --all-tasks]
    python scripts/bench_significance.py --calibration [--studies 400]

Each row has ``--runs`` fine-tuning runs with random predictions on every task (the local GLUE tasks:
CoLA, SST-2, MRPC, STS-B, QNLI, RTE, WNLI; ``--all-tasks`` adds MNLI-m/mm and QQP, 60k more examples).
Timed: every task metric and the three averages of every row against the first, as
``glue_eval compare`` computes them (reading predictions, bootstrap, intervals), without printing.
Prints and writes JSON (default docs/bench_significance.json).

``--calibration``: false-positive rate and power of the test compare uses (bert_helu.analysis.ttest's Welch
test on the replicates' values where a row has several runs, else the paired bootstrap over dev
examples) and of the two-level bootstrap it replaced (replicates redrawn, then examples), on
simulated studies: two rows of r pretraining replicates (one fine-tuning seed each), SST-2-sized dev
sets (872 examples), every model's per-example correctness drawn with a shared example difficulty
and a per-model random effect (the seed effect) on the logit scale, the second row shifted by an
effect. Writes its table under "calibration" in the same JSON, keeping the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval, write_predictions
from bert_helu.glue.tasks import TASKS

DEV_SIZES = {"cola": 1043, "sst2": 872, "mrpc": 408, "stsb": 1500, "qnli": 5463, "rte": 277, "wnli": 71}
MORE_SIZES = {"mnli": 9815, "mnli_mismatched": 9832, "qqp": 40430}


def write_table(root: Path, rows: int, runs: int, sizes: dict) -> None:
    rng = np.random.default_rng(0)
    for task, n in sizes.items():
        spec = TASKS.get(task, TASKS["mnli"])
        gold = rng.uniform(0, 5, n) if spec.is_regression else rng.integers(0, spec.num_labels, n)
        for row in range(rows):
            for seed in range(runs):
                if spec.is_regression:
                    preds = (gold + rng.normal(0, 1.5, n)).astype(np.float32)
                else:
                    preds = np.where(rng.random(n) < 0.8, gold, rng.integers(0, spec.num_labels, n))
                stored = from_eval(np.arange(n), preds, gold, regression=spec.is_regression)
                folder = root / f"row{row}" / task / f"seed{seed}"
                folder.mkdir(parents=True)
                write_predictions(folder / "predictions.npz", stored)
                metrics = compute_metrics(spec.metrics, stored.prediction, stored.label)
                record = dict(run=f"row{row}", task=task, seed=seed, activation="gelu", checkpoint="?")
                record.update(predictions="predictions.npz", metrics=metrics)
                (folder / "results.json").write_text(json.dumps(record))


# ------------------------------------------------------------------------------- calibration

DEV = 872  # SST-2's dev set
DIFFICULTY = (1.4, 1.6)  # mean and SD of the examples' logits: about 76% accuracy, SST-2 at this budget


def simulate_study(rng, replicates: int, seed_sd: float, effect: float):
    """Per-example predictions of two rows of ``replicates`` models on one dev set: (2r, n), labels."""
    logit = rng.normal(*DIFFICULTY, DEV)
    shift = rng.normal(0, seed_sd, 2 * replicates)
    shift[replicates:] += effect
    correct = rng.random((2 * replicates, DEV)) < 1 / (1 + np.exp(-(logit + shift[:, None])))
    labels = rng.integers(0, 2, DEV)
    return np.where(correct, labels, 1 - labels), labels


def expected_accuracy(seed_sd: float, effect: float, draws: int = 400_000) -> float:
    rng = np.random.default_rng(1)
    logit = rng.normal(*DIFFICULTY, draws) + rng.normal(0, seed_sd, draws) + effect
    return float(np.mean(1 / (1 + np.exp(-logit))))


def study_p_values(rng, replicates, seed_sd, effect, resamples):
    """(p of the test compare uses, p of the old two-level bootstrap), and the models' accuracies."""
    from bert_helu.analysis.bootstrap import bootstrap_metrics, center, draw_units, estimate, observed_metrics
    from glue_eval.significance import replicate_test

    preds, labels = simulate_study(rng, replicates, seed_sd, effect)
    acc = 100 * observed_metrics(["accuracy"], preds, labels)["accuracy"]
    boot = 100 * bootstrap_metrics(["accuracy"], preds, labels, resamples, rng)["accuracy"]
    a, b = slice(replicates, None), slice(0, replicates)  # row (shifted) minus baseline
    diff = acc[a].mean() - acc[b].mean()
    draws_a, draws_b = draw_units(rng, replicates, resamples), draw_units(rng, replicates, resamples)
    old = estimate(diff, center(boot[:, a], draws_a) - center(boot[:, b], draws_b)).p_value
    new = replicate_test(acc[a], acc[b], 0.05)
    return (old if new is None else new.p_value), old, acc


def calibration(studies: int, resamples: int) -> dict:
    seed_sds = {"none": 0.0, "moderate": 0.13, "large": 0.26}  # logit SD of the per-model effect
    cells = []
    for replicates in (1, 2, 3, 5):
        for name, seed_sd in seed_sds.items():
            for effect in (0.0, 0.3):
                rng = np.random.default_rng([replicates, int(1000 * seed_sd), int(1000 * effect)])
                runs = [study_p_values(rng, replicates, seed_sd, effect, resamples) for _ in range(studies)]
                within = [np.std(acc[:replicates], ddof=1) ** 2 for *_, acc in runs if replicates > 1]
                spread = [np.var(acc, ddof=1) for *_, acc in runs] if effect == 0 else []
                cell = {
                    "replicates": replicates,
                    "seed_effect": name,
                    "logit_sd": seed_sd,
                    "accuracy_sd": round(float(np.sqrt(np.mean(spread or within or [0.0]))), 2),
                    "difference": round(
                        100 * (expected_accuracy(seed_sd, effect) - expected_accuracy(seed_sd, 0)), 2
                    ),
                    "rejected_compare": round(float(np.mean([p < 0.05 for p, _, _ in runs])), 4),
                    "rejected_two_level_bootstrap": round(float(np.mean([o < 0.05 for _, o, _ in runs])), 4),
                }
                cells.append(cell)
                print(json.dumps(cell), flush=True)
    return {"studies": studies, "resamples": resamples, "dev_examples": DEV, "level": 0.05, "cells": cells}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=9)
    parser.add_argument("--runs", type=int, default=3, help="fine-tuning runs per row")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--all-tasks", action="store_true", help="also MNLI-m/mm and QQP sizes")
    parser.add_argument("--output", default="docs/bench_significance.json")
    parser.add_argument("--calibration", action="store_true", help="false-positive rate and power instead")
    parser.add_argument("--studies", type=int, default=400, help="simulated studies per cell (--calibration)")
    args = parser.parse_args()
    output = Path(args.output)
    kept = json.loads(output.read_text()) if output.is_file() else {}
    if args.calibration:
        start = time.perf_counter()
        kept["calibration"] = calibration(args.studies, min(args.resamples, 2000))
        kept["calibration"]["seconds"] = round(time.perf_counter() - start, 1)
        output.write_text(json.dumps(kept, indent=2) + "\n")
        return

    from glue_eval import compare, significance
    from glue_eval.results import AVERAGES, load_results, summarise

    sizes = {**DEV_SIZES, **(MORE_SIZES if args.all_tasks else {})}
    with tempfile.TemporaryDirectory() as tmp:
        write_table(Path(tmp), args.rows, args.runs, sizes)
        start, cpu_start = time.perf_counter(), time.process_time()
        rows = summarise(load_results([tmp]))
        settings = significance.Settings(resamples=args.resamples)
        found = significance.compare(rows, rows[0], compare.columns_of(rows), sorted(AVERAGES), settings)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    result = {
        "rows": args.rows,
        "runs_per_row": args.runs,
        "resamples": args.resamples,
        "tasks": sizes,
        "dev_examples": sum(sizes.values()),
        "comparisons": len(found),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),  # what a quiet machine would take, about (one thread)
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    if "calibration" in kept:
        result["calibration"] = kept["calibration"]
    output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
