"""How long significance takes: ``glue_eval compare`` on a synthetic 9-row table at GLUE's dev-set sizes.

    python scripts/bench_significance.py [--rows 9 --runs 3 --resamples 10000 --all-tasks]

Each row has ``--runs`` fine-tuning runs with random predictions on every task (the local GLUE tasks:
CoLA, SST-2, MRPC, STS-B, QNLI, RTE, WNLI; ``--all-tasks`` adds MNLI-m/mm and QQP, 60k more examples).
Timed: every task metric and the three averages of every row against the first, as
``glue_eval compare`` computes them (reading predictions, bootstrap, intervals), without printing.
Prints and writes JSON (default docs/bench_significance.json).
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

from bert_helu.data.glue import TASKS
from bert_helu.metrics import compute_metrics
from bert_helu.predictions import from_eval, write_predictions

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=9)
    parser.add_argument("--runs", type=int, default=3, help="fine-tuning runs per row")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--all-tasks", action="store_true", help="also MNLI-m/mm and QQP sizes")
    parser.add_argument("--output", default="docs/bench_significance.json")
    args = parser.parse_args()

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
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
