"""Pretrain a BERT with the activation of your choice under a compute budget; get a checkpoint.

    python -m pretrain --config configs/pretrain/demo.yaml --activation helu:alpha=0.05 --output-dir runs/x
    accelerate launch -m pretrain --config ... train.max_steps=200 train.budget_hours=0.5

Data-parallel on N CPU processes (gloo): ``torchrun --nproc_per_node N -m pretrain ...`` or
``accelerate launch --multi_gpu --num_processes N -m pretrain ...`` (on a machine without GPUs that
is accelerate's torch.distributed launcher; ``accelerate launch --cpu --num_processes N`` starts ONE
process unless given an MPI hostfile). summary.json records ``num_processes``.

Extra ``dotted.key=value`` arguments override the recipe. Running the same command again with the
same --output-dir resumes from the newest checkpoint (refused, naming the keys, if the recipe now
differs in anything that changes the result). One run at a time writes an output dir: it is
locked (``<output-dir>/.lock``) by the main process. The run ends with ``<output-dir>/final/``
(a Hugging Face checkpoint with tokenizer) and ``<output-dir>/summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from bert_helu.atomic import remove_leftovers
from bert_helu.config import load_config
from bert_helu.data import format_summary, prepare_corpus
from bert_helu.errors import UserError, cli_entry
from bert_helu.locks import RunDirLock
from bert_helu.recipe import PRETRAIN_DEFAULTS, check_values
from bert_helu.schedules import Schedule


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="recipe YAML (configs/pretrain/*.yaml)")
    parser.add_argument("--output-dir", help="run directory (checkpoints, logs, final/, summary.json)")
    parser.add_argument("--activation", help="activation spec, e.g. gelu, relu, helu:alpha=0.05")
    parser.add_argument("--prepare-only", action="store_true", help="prepare and cache the corpus, then exit")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value config overrides")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    # 1. The recipe: defaults <- YAML <- command line.
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"activation={args.activation}"] if args.activation else [])
    cfg = load_config(PRETRAIN_DEFAULTS, args.config, overrides)
    tr = cfg.train
    check_values(cfg)
    schedule = Schedule(tr.scheduler, tr.warmup_fraction, tr.min_lr_ratio, tr.schedule_progress)
    if cfg.model.init_from and not cfg.data.tokenizer:
        cfg.data.tokenizer = str(cfg.model.init_from)  # the vocabulary must be the checkpoint's
    if args.prepare_only:
        print(format_summary(prepare_corpus(cfg.data).summary))
        return 0
    if not args.output_dir:
        raise UserError("--output-dir is required")
    if not (tr.max_steps or tr.budget_hours):
        raise UserError("set train.max_steps or train.budget_hours (or both): a run needs an end")
    schedule.progress_of(0, tr.max_steps, 0.0, tr.budget_hours * 3600)  # fails early if it cannot be computed
    from pretrain.train import train  # torch & co. load only now: a --prepare-only cache hit stays fast

    # Launchers (torchrun, accelerate launch) set RANK: the global main process alone holds the lock.
    main_process = int(os.environ.get("RANK", "0")) == 0
    with RunDirLock(args.output_dir) if main_process else contextlib.nullcontext():
        if main_process:
            remove_leftovers(args.output_dir)  # half-written files of a killed run (we hold the lock)
        return train(cfg, args.output_dir, schedule)


if __name__ == "__main__":
    sys.exit(main())
