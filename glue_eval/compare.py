"""``python -m glue_eval compare results/ --baseline NAME [--format md|csv|json]``

Every row against the baseline row, per task metric and per average convention (paper, cramming,
glue): the difference in percentage points, an interval and a two-sided p-value: Welch's t-test on
the runs' values where a row has several runs (pretraining replicates, else fine-tuning seeds), a
bootstrap over dev examples, paired (the same resampled examples for both rows), where both rows are
one run (glue_eval.significance). Rows group as in ``glue_eval table`` (``--group-by``).
"""

from __future__ import annotations

import csv
import io
import json

from bert_helu.runtime.errors import UserError
from glue_eval import significance
from glue_eval.replicates import CENTER_HELP, GROUP_BY_HELP, grouping_notes
from glue_eval.results import AVERAGES, COLUMNS, Row, load_results, summarise

HELP = "is a row better than the baseline? differences, intervals and p-values (Welch t / paired bootstrap)"
METRIC_NAMES = {
    "accuracy": "acc",
    "f1": "F1",
    "matthews_correlation": "MCC",
    "pearson": "Pearson",
    "spearmanr": "Spearman",
}


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="results dirs (searched for results.json) or files")
    significance.add_arguments(parser, baseline_required=False)
    parser.add_argument("--format", choices=["md", "csv", "json"], default="md")
    parser.add_argument(
        "--delta",
        choices=["int8"],
        help="compare INT8-minus-full-precision deltas instead (without --baseline: each delta against 0)",
    )
    parser.add_argument("--group-by", default="recipe", metavar="RULE", help=GROUP_BY_HELP)
    parser.add_argument("--center", choices=["mean", "median"], default="mean", help=CENTER_HELP)
    parser.add_argument("--output", help="also write the comparison to this file")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw it: per column, each row's difference with its interval (filled: significant)",
    )


def run(args) -> int:
    if args.baseline is None and not args.delta:
        raise UserError("compare needs --baseline NAME: the row every other row is tested against")
    settings = significance.Settings(args.resamples, args.seed, args.level, args.center, args.delta).check()
    if args.plot:
        _check_plot_path(args.plot)
    rows = summarise(load_results(args.results), delta=args.delta, group_by=args.group_by, center=args.center)
    baseline = significance.find_row(rows, args.baseline) if args.baseline else None
    comparisons = significance.compare(rows, baseline, columns_of(rows), sorted(AVERAGES), settings)
    schemes = {r.name: significance.scheme(r, baseline, settings) for r in rows if r is not baseline}
    notes = grouping_notes(rows, args.group_by)
    text = {"md": to_markdown, "csv": to_csv, "json": to_json}[args.format](
        comparisons, schemes, settings, baseline, notes
    )
    print(text, end="")
    if args.output:
        from bert_helu.runtime.atomic import atomic_write_text

        atomic_write_text(args.output, text)
    if args.plot:
        from bert_helu.analysis.plots import plot_comparison

        others = [r for r in rows if r is not baseline]
        note = _test_note([significance.uses_t_test(r, baseline, settings) for r in others], settings)
        plot_comparison(comparisons, args.plot, settings.level, baseline.name if baseline else None, note)
    return 0


def _test_note(t_tests: list[bool], settings) -> str:
    """Which test drew the figure's intervals, in a line under its title."""
    bootstrap = f"paired bootstrap over dev examples ({settings.resamples} resamples, seed {settings.seed})"
    if all(t_tests):
        return "Welch's t-test on the rows' runs (t intervals)"
    if not any(t_tests):
        return bootstrap
    return f"Welch's t-test where a row has several runs, else {bootstrap}"


def _check_plot_path(path: str) -> None:
    """Before the bootstrap, not after it: a bad path should not cost the minutes it takes."""
    from pathlib import Path

    from bert_helu.runtime.storage import check_writable

    if Path(path).suffix.lower() != ".png":
        raise UserError(f"--plot {path}: the figure is a PNG; give a file name ending in .png")
    if Path(path).is_dir():
        raise UserError(f"--plot {path}: is a directory; give a file name ending in .png")
    check_writable(Path(path).parent, "--plot")


def columns_of(rows: list[Row]) -> list[tuple[str, str, str]]:
    """Every (task, metric) of the rows: the table's columns first, in its order, then the others."""
    present = {key for row in rows for key in row.metrics}
    labelled = [(label, t, m) for label, t, m in COLUMNS if (t, m) in present]
    task_order = [t for _, t, _ in COLUMNS]
    task_label = {t: label.split()[0] for label, t, _ in COLUMNS}
    rest = sorted(
        present - {(t, m) for _, t, m in labelled},
        key=lambda k: (task_order.index(k[0]) if k[0] in task_order else len(task_order), k),
    )
    return labelled + [(f"{task_label.get(t, t)} {METRIC_NAMES.get(m, m)}", t, m) for t, m in rest]


# ------------------------------------------------------------------------------------- formats


def _header(settings, baseline) -> list[str]:
    pct = f"{100 * (1 - settings.level):g}%"
    against = f"row minus baseline {baseline.name}" if baseline else "each row's delta against 0"
    what = "INT8-minus-full-precision deltas, " if settings.delta else ""
    return [
        f"Differences: {what}{against}, percentage points (dev-set metric x100); {pct} interval; "
        f"* = p < {settings.level:g}.",
        f"Rows of several runs (mean): {significance.T_TEST_DEFINITION}.",
        f"Bootstrap (both rows one run, or --center median): {settings.resamples} resamples, seed "
        f"{settings.seed}; rows' {settings.center} over their runs; p: {significance.P_VALUE_DEFINITION}.",
    ]


def _p(p: float) -> str:
    return f"{p:.4f}"


def to_markdown(comparisons, schemes, settings, baseline, notes) -> str:
    pct = f"{100 * (1 - settings.level):g}%"
    lines = _header(settings, baseline)
    for row, scheme in schemes.items():
        mine = [c for c in comparisons if c.row == row]
        lines += [
            "",
            f"## {row}" + (f" vs {baseline.name}" if baseline else ""),
            "",
            f"Scheme: {scheme}.",
            "",
        ]
        if not mine:
            lines.append("Nothing to compare: no task or average in common with the baseline.")
            continue
        base_head = "Baseline | " if baseline else ""
        lines.append(f"| Column | Examples | Row | {base_head}Difference | {pct} interval | p | |")
        lines.append("|---|---|---|" + ("---|" if baseline else "") + "---|---|---|---|")
        for c in mine:
            est = c.estimate
            base = f"{c.baseline_value:.2f} | " if baseline else ""
            lines.append(
                f"| {c.label} | {c.examples or ''} | {c.row_value:.2f} | {base}{est.difference:+.2f} | "
                f"[{est.low:+.2f}, {est.high:+.2f}] | {_p(est.p_value)} | "
                f"{'*' if c.significant(settings.level) else ''} |"
            )
        covers = [f"{c.label}: {', '.join(c.covers)}" for c in mine if c.covers]
        if covers:
            lines += ["", "What each average covers: " + "; ".join(covers) + "."]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


FIELDS = ["row", "baseline", "column", "task", "metric", "examples", "row_value", "baseline_value",
          "difference", "low", "high", "p_value", "significant", "level", "test", "df", "resamples", "seed",
          "scheme", "covers"]  # fmt: skip


def _record(c, settings, schemes) -> dict:
    est = c.estimate
    return {
        "row": c.row,
        "baseline": c.baseline,
        "column": c.label,
        "task": c.task,
        "metric": c.metric,
        "examples": c.examples,
        "row_value": c.row_value,
        "baseline_value": c.baseline_value,
        "difference": est.difference,
        "low": est.low,
        "high": est.high,
        "p_value": est.p_value,
        "significant": c.significant(settings.level),
        "level": settings.level,
        "test": "welch" if est.method == "t" else "bootstrap",
        "df": est.df,
        "resamples": settings.resamples,
        "seed": settings.seed,
        "scheme": schemes[c.row],
        "covers": list(c.covers),
    }


def to_csv(comparisons, schemes, settings, baseline, notes) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in comparisons:
        record = _record(c, settings, schemes)
        record["covers"] = ";".join(record["covers"])
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buf.getvalue()


def to_json(comparisons, schemes, settings, baseline, notes) -> str:
    out = {
        "baseline": baseline.name if baseline else None,
        "delta": settings.delta,
        "resamples": settings.resamples,
        "seed": settings.seed,
        "level": settings.level,
        "center": settings.center,
        "p_value": significance.P_VALUE_DEFINITION,
        "schemes": schemes,
        "grouping": notes,
        "comparisons": [_record(c, settings, schemes) for c in comparisons],
    }
    return json.dumps(out, indent=2) + "\n"
