"""Which of the HeLU paper's claims hold in a study of ours: one row per claim, with the measured
difference, its interval and p, a verdict, and the difference the study could detect.

    python scripts/paper_claims.py --compare compare.json --int8 int8.json --plan plan.json \
        --runs docs/replication/sweep/runs --results docs/replication/sweep/glue --output claims.md

The inputs are what the study's commands write (docs/RESULTS.md gives them): ``glue_eval compare
--baseline relu --format json`` (GLUE differences from ReLU), ``glue_eval compare --delta int8
--format json`` (each row's INT8 delta against 0), ``glue_eval plan --format json`` (the detectable
difference at the study's size and at 10 seeds; with ``--runs``, for the MLM loss too), the
pretraining runs' ``summary.json`` files (final validation MLM loss, tested with the same Welch
t-test) and, with ``--results``, the study's GLUE results, whose dev labels give each column's chance
level (a collapse cannot go below it).

The verdicts and their rule: bert_helu.analysis.claims.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bert_helu
from bert_helu.analysis.claims import chance_levels, claims_page, read_json  # noqa: E402
from bert_helu.analysis.pretraining_runs import losses_by_activation  # noqa: E402
from bert_helu.runtime.atomic import atomic_write_text  # noqa: E402
from bert_helu.runtime.errors import UserError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare", required=True, help="glue_eval compare --baseline relu --format json")
    parser.add_argument("--int8", required=True, help="glue_eval compare --delta int8 --format json")
    parser.add_argument("--plan", required=True, help="glue_eval plan --format json")
    parser.add_argument(
        "--runs",
        help="folder of pretraining runs (summary.json each): the MLM-loss claims (else not measured)",
    )
    parser.add_argument(
        "--results",
        help="the study's GLUE results (predictions.npz each): chance levels, for collapses larger than "
        "a small model has room for",
    )
    parser.add_argument("--output", required=True, help="the Markdown table")
    args = parser.parse_args(argv)
    try:
        losses = losses_by_activation(Path(args.runs)) if args.runs else {}
        compare = read_json(args.compare)
        chance = chance_levels(args.results, compare) if args.results else None
        text = claims_page(compare, read_json(args.int8), read_json(args.plan), losses, chance)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, IndexError) as err:
        print(f"error: --compare/--int8/--plan: not the JSON glue_eval writes (no {err})", file=sys.stderr)
        return 2
    atomic_write_text(args.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
