"""``python -m finetune``: fine-tune checkpoints on GLUE tasks over several seeds, one results.json each.

    python -m finetune --checkpoints runs/gelu/final runs/helu/final --tasks all --seeds 42 43 44 \\
        --glue-dir ../shared/data/glue_data --output-dir results/ --config configs/finetune/glue-sane.yaml

Also under ``accelerate launch -m finetune ...``. Without ``--glue-dir`` GLUE comes from the hub
(nyu-mll/glue). Finished runs are skipped on restart; a failed run is reported at the end and makes
the exit status non-zero, after every other run has had its turn.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bert_helu.config import load_config
from bert_helu.data.glue import resolve_tasks
from bert_helu.errors import cli_entry
from bert_helu.finetune_batch import DEFAULTS, parse_checkpoints, run_batch, validate_recipe


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, help="checkpoint dirs (or name=dir)")
    parser.add_argument("--tasks", default="all", help="all, or comma-separated: cola,sst2,mrpc,...")
    parser.add_argument("--seeds", nargs="+", help="default: the recipe's seeds")
    parser.add_argument("--glue-dir", help="glue_data folder (original TSV layout); default: the hub")
    parser.add_argument("--output-dir", default="results", help="where results.json files go")
    parser.add_argument("--config", help="a recipe, e.g. configs/finetune/glue-sane.yaml")
    parser.add_argument("--int8", action="store_true", help="also evaluate after dynamic INT8 quantisation")
    parser.add_argument("--save-models", action="store_true", help="keep the fine-tuned models (off: disk)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. train.epochs=2")
    args = parser.parse_args(argv)
    # --checkpoints/--seeds take every word after them, so overrides written there are moved back
    args.checkpoints, extra = _split_overrides(args.checkpoints)
    seeds, more = _split_overrides(args.seeds or [])
    args.overrides = extra + more + args.overrides
    try:
        args.seeds = [int(s) for s in seeds] or None
    except ValueError:
        parser.error(f"--seeds: integers expected, got {' '.join(seeds)}")
    return args


def _split_overrides(words: list[str]) -> tuple[list[str], list[str]]:
    """``key=value`` words whose key is a recipe key are overrides (``name=dir`` checkpoints are not)."""
    overrides = [w for w in words if "=" in w and w.partition("=")[0].split(".")[0] in DEFAULTS]
    return [w for w in words if w not in overrides], overrides


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # quiet per-model load reports ("newly initialised classifier") and per-split progress bars:
    # the batch has its own progress bar
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()

    # 1. the recipe: defaults <- YAML <- dotted overrides <- flags
    cfg = load_config(DEFAULTS, args.config, args.overrides)
    cfg.int8 = cfg.int8 or args.int8
    cfg.save_model = cfg.save_model or args.save_models
    validate_recipe(cfg)  # every value, before torch is configured
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    # 2. what to run: checkpoints x tasks x seeds
    checkpoints = parse_checkpoints(args.checkpoints)
    tasks = resolve_tasks(args.tasks)
    # 3. run them (finished ones skipped), then say what happened
    report = run_batch(checkpoints, tasks, cfg, Path(args.output_dir), args.glue_dir, args.seeds)
    print(
        f"{report.total} runs: {len(report.finished)} finished now, {report.skipped_done} already done, "
        f"{len(report.failed)} failed"
        + (f"; no data for: {', '.join(report.unavailable)}" if report.unavailable else ""),
        file=sys.stderr,
    )
    for run, message in report.failed:
        print(f"failed: {run}: {message}", file=sys.stderr)
    if report.failed:
        raise SystemExit(1)
    return 0


if __name__ == "__main__":
    main()
