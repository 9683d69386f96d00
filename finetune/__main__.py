"""``python -m finetune``: fine-tune checkpoints on GLUE tasks over several seeds, one results.json each."""

from __future__ import annotations

import logging
from pathlib import Path

from bert_helu.finetuning.recipe import DEFAULTS, task_recipe, validate_recipe
from bert_helu.glue.tasks import TASKS, resolve_tasks
from bert_helu.models.hub import add_push_argument, check_push_access
from bert_helu.runtime import cli
from bert_helu.runtime.config import load_config
from bert_helu.runtime.errors import UserError, cli_entry
from bert_helu.runtime.named_checkpoints import parse_checkpoints
from finetune.batch import report_batch, run_batch

DESCRIPTION = """Fine-tune pretrained checkpoints on GLUE tasks, every checkpoint x task x seed, and write one
results.json per run (dev-set metrics after each epoch; the last epoch is the reported result)."""

EPILOG = """examples:
  python -m finetune --config configs/finetune/cpu-fast.yaml --checkpoints runs/gelu/final runs/helu/final \\
      --tasks sst2,mrpc --seeds 42 43 --glue-dir bert_helu/sample_data/glue_data --output-dir results/
  python -m finetune --config configs/finetune/glue-sane.yaml --print-config train.epochs=3
  python -m finetune ... --predict-test      # also write the GLUE server's submission files

Output: <output-dir>/<run name>/<task>/seed<seed>/results.json, where the run name is the checkpoint
folder (runs/helu/final -> helu) or NAME in NAME=DIR. MNLI also writes mnli_mismatched/.
Finished runs are skipped when the command runs again (a run is its checkpoint's content and the
resolved recipe: a retrained checkpoint or a changed recipe is a new run); a failed run is reported
at the end and makes the exit status 1, after every other run has had its turn. Errors in the input
(unknown task, bad recipe key, ...) print one line and exit with status 2. Also runs under
accelerate launch -m finetune or torchrun -m finetune: N processes (one per GPU) share out whole runs,
and a run's results do not depend on N."""


def parse_args(argv):
    parser = cli.program_parser("python -m finetune", DESCRIPTION, EPILOG)
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="[NAME=]DIR",
        help="checkpoint directories to fine-tune (ours or any BERT-family Hugging Face checkpoint); "
        "NAME names the run in the output and tables. Required to fine-tune",
    )
    parser.add_argument(
        "--tasks",
        default="all",
        help=f"'all' (default) or comma-separated GLUE tasks: {','.join(TASKS)}; "
        "tasks whose files are absent from --glue-dir are skipped and show as n/a in tables",
    )
    parser.add_argument(
        "--seeds", nargs="+", metavar="SEED", help="seeds to run (default: the recipe's 'seeds', 42)"
    )
    parser.add_argument(
        "--glue-dir",
        metavar="DIR",
        help="a glue_data folder in the original GLUE TSV layout (CoLA/, SST-2/, ..., as "
        "scripts/get_data.py writes it); default: download nyu-mll/glue from the Hugging Face hub",
    )
    parser.add_argument(
        "--output-dir", metavar="DIR", default="results", help="where results go (default: results)"
    )
    cli.add_config_argument(
        parser,
        "a recipe (configs/finetune/*.yaml); default: the built-in settings, listed with their "
        "meaning in docs/config.md",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also evaluate each fine-tuned model after dynamic INT8 quantisation (recipe key int8)",
    )
    parser.add_argument(
        "--save-models",
        action="store_true",
        help="keep each fine-tuned model in <run>/model/ (recipe key save_model; off by default: "
        "a BERT-base model is 440 MB per run)",
    )
    parser.add_argument(
        "--predict-test",
        action="store_true",
        help="also predict every task's test set and write the GLUE server's submission files "
        "(<output-dir>/<run name>/submission/*.tsv and submission.zip)",
    )
    parser.add_argument(
        "--submission-seed",
        default="best",
        metavar="best|SEED",
        help="which seed's test predictions go into the submission: 'best' (default: the seed with "
        "the best dev score per task) or a seed number",
    )
    cli.add_print_config_argument(
        parser, "print the resolved recipe (defaults <- --config <- overrides <- flags) as YAML, then exit"
    )
    add_push_argument(parser, "the fine-tuned model (one checkpoint, task and seed; implies --save-models)")
    cli.add_plugin_and_override_arguments(
        parser, "recipe overrides in dotted form: train.epochs=2 tasks.rte.lr=2e-5 (values are YAML)"
    )
    args = parser.parse_args(argv)
    # --checkpoints/--seeds take every word after them, so overrides written there are moved back
    args.checkpoints, extra = _split_overrides(args.checkpoints or [])
    seeds, more = _split_overrides(args.seeds or [])
    args.overrides = extra + more + args.overrides
    try:
        args.seeds = [int(s) for s in seeds] or None
    except ValueError:
        parser.error(f"--seeds: integers expected, got {' '.join(seeds)}")
    if args.submission_seed != "best" and not args.submission_seed.isdigit():
        parser.error(f"--submission-seed: 'best' or a seed number expected, got {args.submission_seed!r}")
    if not args.checkpoints and not (args.print_config or args.list_activations):
        parser.error("--checkpoints is required")
    return args


def _split_overrides(words: list[str]) -> tuple[list[str], list[str]]:
    """``key=value`` words whose key is a recipe key are overrides (``name=dir`` checkpoints are not)."""
    overrides = [w for w in words if "=" in w and w.partition("=")[0].split(".")[0] in DEFAULTS]
    return [w for w in words if w not in overrides], overrides


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    if cli.listed_activations(args):
        return 0
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
    cfg.save_model = cfg.save_model or args.save_models or bool(args.push_to_hub)
    validate_recipe(cfg)  # every value, before torch is configured
    if args.print_config:
        cli.print_resolved_recipe(cfg, args.config)
        return 0
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    # 2. what to run: checkpoints x tasks x seeds
    checkpoints = parse_checkpoints(args.checkpoints)
    tasks = resolve_tasks(args.tasks)
    if args.push_to_hub:  # before any training: one model to push, and a Hub that will take it
        pushed = _model_to_push(checkpoints, tasks, cfg, args.seeds, Path(args.output_dir))
        check_push_access(args.push_to_hub)
    # 3. the batch, step by step in finetune/batch.py: runs (finished ones skipped), then its report
    output_dir = Path(args.output_dir)
    report = run_batch(checkpoints, tasks, cfg, output_dir, args.glue_dir, args.seeds, args.predict_test)
    seed = None if args.submission_seed == "best" else int(args.submission_seed)
    push = (pushed, args.push_to_hub) if args.push_to_hub else None
    # an exit status, not a return value: ``python -m finetune`` runs main() without sys.exit
    raise SystemExit(report_batch(report, checkpoints, output_dir, args.predict_test, seed, push))


def _model_to_push(checkpoints, tasks, cfg, cli_seeds, output_dir: Path) -> Path:
    """Where the one fine-tuned model of the batch will be (``--push-to-hub`` takes one)."""
    seeds = sorted({seed for task in tasks for seed in (cli_seeds or task_recipe(cfg, task).seeds)})
    if len(checkpoints) * len(tasks) * len(seeds) != 1:
        raise UserError(
            "--push-to-hub uploads one fine-tuned model: give one checkpoint, one task and one seed "
            f"(got {len(checkpoints)} x {len(tasks)} x {len(seeds)})"
        )
    if not task_recipe(cfg, tasks[0]).save_model:
        raise UserError(f"--push-to-hub: the recipe's tasks.{tasks[0].name}.save_model is false")
    return output_dir / checkpoints[0].name / tasks[0].name / f"seed{seeds[0]}" / "model"


if __name__ == "__main__":
    main()
