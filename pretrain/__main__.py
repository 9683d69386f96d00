"""``python -m pretrain``: pretrain a BERT with the activation of your choice under a compute budget."""

from __future__ import annotations

import contextlib
import os
import sys

from bert_helu.data import format_summary, prepare_corpus
from bert_helu.models.hub import add_push_argument, check_push_access, push_checkpoint
from bert_helu.pretraining.recipe import check_recipe, load_recipe
from bert_helu.runtime import cli
from bert_helu.runtime.atomic import remove_leftovers
from bert_helu.runtime.errors import UserError, cli_entry
from bert_helu.runtime.locks import RunDirLock
from bert_helu.runtime.progress import quiet_dataset_bars_off_terminal

DESCRIPTION = """Pretrain a BERT (masked language modelling) with the activation of your choice under a
step or wall-clock budget, and get a Hugging Face checkpoint in <output-dir>/final/."""

EPILOG = """examples:
  python -m pretrain --config configs/pretrain/demo.yaml --activation helu:alpha=0.05 --output-dir runs/helu
  python -m pretrain --config configs/pretrain/cpu-tiny.yaml --print-config train.budget_hours=0.5
  python -m pretrain --import examples.my_activation --activation scaled_tanh:scale=2 \\
      --config configs/pretrain/demo.yaml --output-dir runs/scaled_tanh

Several processes: torchrun --nproc_per_node N -m pretrain ... (CPU or GPU), or
accelerate launch --multi_gpu --num_processes N -m pretrain ... (note: accelerate launch --cpu
--num_processes N starts ONE process). The global batch stays what the recipe says.

Running the same command again with the same --output-dir resumes from the newest checkpoint; a
finished run is not redone. A resume or rerun whose recipe differs in anything that changes the
result (model, activation, data, seed, optimizer, schedule, batch, precision, budget) is refused,
naming the keys. One run at a time writes an output dir (<output-dir>/.lock). Errors in the input
print one line and exit with status 2."""


def parse_args(argv):
    parser = cli.program_parser("python -m pretrain", DESCRIPTION, EPILOG)
    cli.add_config_argument(
        parser,
        "the recipe, a YAML file (configs/pretrain/*.yaml); every key it may set, with its default, "
        "is in docs/config.md. Required unless --list-activations",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="the run directory: checkpoints/, metrics.jsonl, tensorboard/, telemetry/, final/ (the "
        "trained model) and summary.json. Running again with the same directory resumes. Required to train",
    )
    parser.add_argument(
        "--activation",
        metavar="SPEC",
        help="the FFN activation, overriding the recipe's 'activation' (default gelu): a name or "
        "name:key=value,... e.g. relu, helu:alpha=0.05; see --list-activations",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="clean, tokenize, pack and cache the corpus (data.*), print its summary, then exit",
    )
    cli.add_print_config_argument(
        parser, "print the resolved recipe (defaults <- --config <- overrides) as YAML, then exit"
    )
    add_push_argument(parser, "the trained model (<output-dir>/final/)")
    cli.add_plugin_and_override_arguments(
        parser,
        "recipe overrides in dotted form, applied after --config: train.budget_hours=0.5 "
        "'train.betas=[0.9,0.98]' (values are YAML)",
    )
    args = parser.parse_intermixed_args(argv)  # overrides may come before or after options
    if not args.config and not args.list_activations:
        parser.error("--config is required (a recipe such as configs/pretrain/demo.yaml)")
    return args


@cli_entry
def main(argv=None):
    # 1. The recipe: defaults <- YAML <- command line.
    args = parse_args(argv)
    if cli.listed_activations(args):
        return 0
    overrides = list(args.overrides) + ([f"activation={args.activation}"] if args.activation else [])
    cfg = load_recipe(args.config, overrides)
    to_train = not (args.print_config or args.prepare_only)
    for warning in check_recipe(cfg, to_train):
        print(f"warning: {warning}", file=sys.stderr)
    if to_train and not args.output_dir:
        raise UserError("--output-dir is required")
    if args.print_config:
        cli.print_resolved_recipe(cfg, args.config)
        return 0
    quiet_dataset_bars_off_terminal()  # corpus preparation draws one bar per pass over the data
    if args.prepare_only:
        print(format_summary(prepare_corpus(cfg.data).summary))
        return 0
    if args.push_to_hub:
        check_push_access(args.push_to_hub)  # offline or without a write token: say so before training
    from pretrain.train import train  # torch & co. load only now: a --prepare-only cache hit stays fast

    # Launchers (torchrun, accelerate launch) set RANK: the global main process alone holds the lock.
    main_process = int(os.environ.get("RANK", "0")) == 0
    with RunDirLock(args.output_dir) if main_process else contextlib.nullcontext():
        if main_process:
            remove_leftovers(args.output_dir)  # half-written files of a killed run (we hold the lock)
        code = train(cfg, args.output_dir)
    if code == 0 and args.push_to_hub and main_process:
        final = os.path.join(args.output_dir, "final")
        url = push_checkpoint(final, args.push_to_hub, f"bert-helu pretrain: {cfg.activation}")
        print(f"pushed {final} to {url}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
