"""``python -m glue_eval <command> ...``: tables, activation statistics and inference timing.

Each command lives in its own module of this package, exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args)``; a module whose optional dependencies are missing is left out.
"""

from __future__ import annotations

import importlib
import sys

from bert_helu.runtime.cli import HELP_FORMAT, program_parser
from bert_helu.runtime.errors import cli_entry

COMMANDS = {
    "table": "glue_eval.table",  # GLUE comparison tables (paper Table 2) and INT8 deltas (Table 3)
    "compare": "glue_eval.compare",  # rows against a baseline: paired bootstrap intervals and p-values
    "plan": "glue_eval.plan",  # variance components of a pilot; seeds needed for a difference
    "stats": "glue_eval.stats",  # FFN activation statistics and pre-activation histograms (Figure 2)
    "bench-inference": "glue_eval.bench_inference",  # inference timing (Figures 4 and 5)
}

DESCRIPTION = """Read what fine-tuning and pretraining produced: GLUE comparison tables from results.json
files, FFN activation statistics of checkpoints, and inference timing. Run
'python -m glue_eval <command> --help' for a command's options. Unlike pretrain and finetune,
glue_eval takes no recipe: every setting is a command-line option."""

EPILOG = """examples:
  python -m glue_eval table results/ --format md --average paper
  python -m glue_eval table results/ --delta int8
  python -m glue_eval plan results/ --pretrain-seeds 3 10 --effect 1.0
  python -m glue_eval stats --checkpoint runs/helu/final --data sst2 --glue-dir ../shared/data/glue_data
  python -m glue_eval bench-inference --glue-dir ../shared/data/glue_data --tasks sst2 --samples 64"""


@cli_entry
def main(argv=None):
    parser = program_parser("python -m glue_eval", DESCRIPTION, EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    modules = {}
    words = sys.argv[1:] if argv is None else list(argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    # only the command asked for: stats and bench-inference import torch (seconds), table does not
    wanted = {chosen: COMMANDS[chosen]} if chosen in COMMANDS else COMMANDS
    for name, module_name in wanted.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        modules[name] = module
        module.add_arguments(
            sub.add_parser(
                name,
                help=module.HELP,
                description=getattr(module, "DESCRIPTION", module.HELP),
                epilog=getattr(module, "EPILOG", None),
                formatter_class=HELP_FORMAT,
            )
        )
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    main()
