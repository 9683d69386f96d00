"""The README demo: the whole pipeline on the bundled sample, offline, on CPU, in minutes.

    make demo            # or: .venv/bin/python scripts/demo.py [--out runs/demo]

1. prepare the bundled Wikipedia + books sample and train a small WordPiece tokenizer;
2. pretrain three tiny crammed encoders (configs/pretrain/demo.yaml) with GELU, ReLU and HeLU (alpha
   0.05) on the same wall-clock budget;
3. fine-tune each on GLUE tasks from the bundled sample (one seed, configs/finetune/cpu-crammed.yaml);
4. print the comparison table, and each row against ReLU with a paired bootstrap over dev examples.

Each step is one of the project's programs, run as a user would run it; every step is resumable,
so running the demo again reuses what is done.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_GLUE = REPO / "bert_helu" / "sample_data" / "glue_data"
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "helu-0.05": "helu:alpha=0.05"}


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=REPO, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/demo", help="where runs, results and tables go")
    parser.add_argument("--tasks", default="sst2,stsb")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.time()

    run("-m", "pretrain", "--config", "configs/pretrain/demo.yaml", "--prepare-only")
    for name, spec in ACTIVATIONS.items():
        run(
            "-m",
            "pretrain",
            "--config",
            "configs/pretrain/demo.yaml",
            "--activation",
            spec,
            "--output-dir",
            str(out / name),
        )
    checkpoints = [str(out / name / "final") for name in ACTIVATIONS]
    run(
        "-m",
        "finetune",
        "--config",
        "configs/finetune/cpu-crammed.yaml",
        "--checkpoints",
        *checkpoints,
        "--tasks",
        args.tasks,
        "--seeds",
        "42",
        "--glue-dir",
        str(SAMPLE_GLUE),
        "--output-dir",
        str(out / "results"),
        "train.epochs=3",  # the sample has 400 training examples per task: a few more passes
    )
    run("-m", "glue_eval", "table", str(out / "results"), "--format", "md", "--average", "paper")
    run("-m", "glue_eval", "compare", str(out / "results"), "--baseline", "relu", "--resamples", "2000")

    print(f"\ndemo finished in {(time.time() - start) / 60:.1f} min")
    print(f"checkpoints: {out}/<activation>/final (stock transformers loads them)")
    print(f"pretraining logs and telemetry: {out}/<activation>/ ; GLUE results: {out}/results/")


if __name__ == "__main__":
    main()
