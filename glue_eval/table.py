"""``python -m glue_eval table results/ [--format md|csv|latex] [--average paper|glue|cramming]``

Rows are checkpoints (run name and activation), or the replicates of one pretraining recipe and
activation (``--group-by``); columns the paper's Table 2 order plus CoLA; each cell is mean +- std, in
percent, over fine-tuning seeds (n = seeds) or, in a row of replicates, over the replicates (n =
replicates x seeds each); per column the best is bold and the second underlined. ``--delta int8``
prints Table 3: INT8 minus full precision. ``--significance --baseline NAME`` marks the cells that
differ from the baseline row (glue_eval.significance); with ``--delta int8`` and no baseline, the
deltas that differ from 0.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from bert_helu.runtime.errors import UserError
from glue_eval import significance
from glue_eval.replicates import CENTER_HELP, GROUP_BY_HELP, grouping_notes
from glue_eval.results import AVERAGES, COLUMNS, Row, load_results, summarise

HELP = "GLUE comparison table (paper Table 2) or INT8 deltas (Table 3) from results.json files"

AVERAGE_TITLES = {
    "paper": "mean of the paper's nine Table-2 columns (no CoLA)",
    "cramming": "Cramming's GLUE average (no WNLI; STS-B Pearson, MRPC F1, QQP F1)",
    "glue": "official GLUE score (two-metric tasks averaged first; MNLI m/mm one task)",
}


DESCRIPTION = """One row per checkpoint (run name and activation), one column per GLUE task in the HeLU
paper's Table 2 order plus CoLA, and an average. Each cell is the dev metric x100, mean +- std over
the seeds found, with the seed count in parentheses; per column the best is bold, the second
underlined. Tasks with no results show n/a and the note under the table says what the average covers."""

EPILOG = """examples:
  python -m glue_eval table results/                               # Markdown, the paper's average
  python -m glue_eval table results/ --format latex --average glue --output table.tex
  python -m glue_eval table results/ --delta int8                  # Table 3: INT8 minus fp32"""


def add_arguments(parser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        metavar="PATH",
        help="results folders (searched recursively for results.json, as python -m finetune writes "
        "them) or results.json files",
    )
    parser.add_argument(
        "--format",
        choices=["md", "csv", "latex"],
        default="md",
        help="md: a Markdown table with notes (default); csv: mean, std and n per column, for "
        "spreadsheets; latex: a booktabs tabular for papers",
    )
    parser.add_argument(
        "--average",
        choices=sorted(AVERAGES),
        default="paper",
        help="the last column: "
        + "; ".join(f"{k}: {v}" for k, v in AVERAGE_TITLES.items())
        + " (default: paper)",
    )
    parser.add_argument(
        "--delta",
        choices=["int8"],
        help="instead of scores, print the INT8 model minus the full-precision one, in points, per seed "
        "then mean +- std (the paper's Table 3; needs finetune --int8)",
    )
    parser.add_argument("--group-by", default="recipe", metavar="RULE", help=GROUP_BY_HELP)
    parser.add_argument("--center", choices=["mean", "median"], default="mean", help=CENTER_HELP)
    parser.add_argument("--output", metavar="FILE", help="also write the table to this file")
    parser.add_argument(
        "--significance",
        action="store_true",
        help=f"mark ({MARK}) each cell that differs from the --baseline row at --level (Welch's t-test on "
        "the runs' values where a row has several runs, else a paired bootstrap over dev examples; needs "
        "the per-example predictions of every result); with --delta int8 and no --baseline, each delta "
        "against 0",
    )
    significance.add_arguments(parser, baseline_required=False)


def run(args) -> int:
    rows = summarise(
        load_results(args.results), args.average, args.delta, group_by=args.group_by, center=args.center
    )
    if args.baseline and not args.significance:
        raise UserError("--baseline is for --significance (or glue_eval compare); add --significance")
    marks = significance_marks(rows, args) if args.significance else None
    notes = grouping_notes(rows, args.group_by)
    text = render(rows, args.format, args.average, args.delta, notes=notes, marks=marks)
    print(text, end="")
    if args.output:
        from bert_helu.runtime.atomic import atomic_write_text

        atomic_write_text(args.output, text)
    return 0


def render(rows: list[Row], fmt: str, average: str, delta: str | None = None, notes=(), marks=None) -> str:
    """``notes``: extra lines under the table (md, latex; not csv); ``marks``: significance (Marks)."""
    printer = {"md": to_markdown, "csv": to_csv, "latex": to_latex}[fmt]
    return printer(rows, average, delta, list(notes), marks)


# --------------------------------------------------------------------------------- significance

MARK = "†"


@dataclass
class Marks:
    """Per (row name, column label) the comparison with the baseline (absent: not tested)."""

    tested: dict = field(default_factory=dict)
    level: float = 0.05
    notes: list[str] = field(default_factory=list)

    def marked(self, row: Row, column: str) -> bool:
        found = self.tested.get((row.name, column))
        return found is not None and found.significant(self.level)

    def p_value(self, row: Row, column: str) -> float | None:
        found = self.tested.get((row.name, column))
        return None if found is None else found.estimate.p_value


def significance_marks(rows: list[Row], args) -> Marks:
    if not args.baseline and not args.delta:
        raise UserError("--significance needs --baseline NAME: the row the others are tested against")
    settings = significance.Settings(args.resamples, args.seed, args.level, args.center, args.delta).check()
    baseline = significance.find_row(rows, args.baseline) if args.baseline else None
    comparisons = significance.compare(rows, baseline, COLUMNS, [args.average], settings)
    marks = Marks({(c.row, c.label): c for c in comparisons}, settings.level)
    level = f"the {settings.level:g} level (two-sided p < {settings.level:g})"
    if args.delta and baseline is None:
        quantised = args.delta.upper()
        what = f"the {quantised} delta differs from 0 at {level}; {quantised} and full-precision "
        what += "predictions of the same runs on the same dev examples, paired by construction"
    elif args.delta:
        what = f"the {args.delta.upper()} delta differs from that of the baseline {baseline.name} at {level}"
    else:
        what = f"differs from the baseline {baseline.name} at {level}"
    if settings.center == "mean" and baseline is None:
        how = (
            "Where a row has several runs (its pretraining replicates, else its fine-tuning seeds): a "
            "t-test of the runs' deltas against 0; a row of one run: a bootstrap over its dev examples "
            f"({settings.resamples} resamples, seed {settings.seed})."
        )
    elif settings.center == "mean":
        how = (
            "Where a row has several runs (its pretraining replicates, else its fine-tuning seeds): "
            "Welch's t-test on the runs' values; where both rows are one run: a paired bootstrap over "
            f"dev examples ({settings.resamples} resamples, seed {settings.seed})."
        )
    else:
        how = (
            "Bootstrap over dev examples, the same resampled examples for every row, resampling a row's "
            "runs too where it has several (its pretraining replicates, else its fine-tuning seeds); "
            f"{settings.resamples} resamples, seed {settings.seed}."
        )
    marks.notes.append(
        f"{MARK}: {what}. {how} glue_eval compare prints every difference, interval and p-value."
    )
    untested = [
        label
        for row in rows
        if row is not baseline
        for (label, _, _), cell in zip(
            [*COLUMNS, (_avg_label(args.average), None, None)], _cells(row), strict=True
        )
        if cell is not None and (row.name, label) not in marks.tested
    ]
    if untested:
        marks.notes.append(
            f"Not tested ({len(untested)} cells): the baseline has no value there, or its average "
            "covers other tasks."
        )
    return marks


# --------------------------------------------------------------------------------- shared parts


def _cells(row: Row) -> list:
    return [row.cell(task, metric) for _, task, metric in COLUMNS] + [row.avg]


def _ranks(rows: list[Row]) -> list[list[int | None]]:
    """Per row and column: 1 = best, 2 = second (higher is better, also for deltas), else None."""
    table = [_cells(r) for r in rows]
    ranks = [[None] * len(table[0]) for _ in rows] if rows else []
    same_coverage = len({tuple(r.avg_covers) for r in rows}) == 1
    for col in range(len(table[0]) if table else 0):
        if col == len(COLUMNS) and not same_coverage:
            continue  # averages over different task sets are not comparable
        present = sorted({round(t[col].value, 6) for t in table if t[col] is not None}, reverse=True)
        if len(present) < 2:
            continue  # one value (or all equal) is not a ranking
        for i, t in enumerate(table):
            if t[col] is not None:
                rank = present.index(round(t[col].value, 6)) + 1
                ranks[i][col] = rank if rank <= 2 else None
    return ranks


def _fmt(cell, signed: bool, pm: str = " ± ") -> str:
    sign = "+" if signed else ""
    if cell.n == 1:
        return f"{cell.value:{sign}.1f}"  # one seed has no spread to show
    return f"{cell.value:{sign}.1f}{pm}{cell.std:.1f}"


def _avg_label(average: str) -> str:
    return f"Avg ({average})"


def _notes(rows: list[Row], average: str, delta: str | None) -> list[str]:
    notes = []
    how = next((c.how for r in rows for c in _cells(r) if c is not None), "mean")
    if delta:
        notes.append(
            f"Values: {delta.upper()} minus full precision, percentage points, per seed then {how} ± std."
        )
    else:
        notes.append(
            f"Values: dev-set metric x100, {how} ± std over seeds (n = seeds); last fine-tuning epoch."
        )
    if any(r.replicated for r in rows):
        notes.append(
            f"Rows of several checkpoints: {how} ± std across the pretraining replicates, each the mean "
            "over its fine-tuning seeds; (r×s) = r replicates × s seeds each."
        )
    notes.append(f"Avg ({average}): {AVERAGE_TITLES[average]}.")
    coverages = {(tuple(r.avg_covers), tuple(r.avg_missing)) for r in rows}
    for covers, missing in sorted(coverages):
        who = (
            ""
            if len(coverages) == 1
            else " for "
            + ", ".join(
                r.name for r in rows if (tuple(r.avg_covers), tuple(r.avg_missing)) == (covers, missing)
            )
        )
        text = f"Avg covers{who}: {', '.join(covers) or 'nothing'}"
        if missing:
            text += f" (no results: {', '.join(missing)})"
        notes.append(text + ".")
    return notes


# ------------------------------------------------------------------------------------- formats


def to_markdown(rows: list[Row], average: str, delta: str | None = None, notes=(), marks=None) -> str:
    header = ["Model", *(label for label, _, _ in COLUMNS), _avg_label(average)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, ranks in zip(rows, _ranks(rows), strict=True):
        out = [row.name]
        for label, cell, rank in zip(header[1:], _cells(row), ranks, strict=True):
            if cell is None:
                out.append("n/a")
                continue
            text = _fmt(cell, signed=bool(delta))
            text = {1: f"**{text}**", 2: f"<u>{text}</u>"}.get(rank, text)
            mark = MARK if marks is not None and marks.marked(row, label) else ""
            out.append(f"{text}{mark} ({cell.count})")
        lines.append("| " + " | ".join(out) + " |")
    notes = [
        *_notes(rows, average, delta),
        "Bold: best per column; underlined: second. (n) = seeds.",
        *(marks.notes if marks is not None else []),
        *notes,
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def to_csv(rows: list[Row], average: str, delta: str | None = None, notes=(), marks=None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    labels = [label for label, _, _ in COLUMNS] + [_avg_label(average)]
    stats = [f"{label} {k}" for label in labels for k in ("mean", "std", "n")]
    # --significance: per column the p-value against the baseline and whether it is below --level
    tests = [f"{label} {k}" for label in labels for k in ("p", "significant")] if marks is not None else []
    # mean/std/n keep their names whatever --center says: "mean" is the row's center
    writer.writerow(
        ["model", "run", "activation", *stats, "avg covers", "avg missing", "checkpoints", *tests]
    )
    for row in rows:
        values = []
        for cell in _cells(row):
            values += ["", "", 0] if cell is None else [f"{cell.value:.2f}", f"{cell.std:.2f}", cell.n]
        covers, missing = ";".join(row.avg_covers), ";".join(row.avg_missing)
        members = ";".join(m.run for m in row.members)
        p_values = []
        for label in labels if marks is not None else []:
            p = marks.p_value(row, label)
            p_values += ["", ""] if p is None else [f"{p:.4f}", str(marks.marked(row, label)).lower()]
        writer.writerow([row.name, row.run, row.activation, *values, covers, missing, members, *p_values])
    return buf.getvalue()


def _tex(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(char, escaped)
    return text


def to_latex(rows: list[Row], average: str, delta: str | None = None, notes=(), marks=None) -> str:
    header = ["Model", *(label for label, _, _ in COLUMNS), _avg_label(average)]
    lines = [
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for row, ranks in zip(rows, _ranks(rows), strict=True):
        out = [_tex(row.name)]
        for label, cell, rank in zip(header[1:], _cells(row), ranks, strict=True):
            if cell is None:
                out.append("n/a")
                continue
            text = _fmt(cell, signed=bool(delta), pm="$\\pm$")
            text = {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(rank, text)
            if marks is not None and marks.marked(row, label):
                text += r"$^{\dagger}$"
            count = cell.count.replace("×", r"$\times$")
            out.append(text + rf"\,{{\scriptsize({count})}}")
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    footnotes = [n.replace(MARK, "dagger", 1) for n in marks.notes] if marks is not None else []
    notes = ["% " + _tex(n) for n in [*_notes(rows, average, delta), *footnotes, *notes]]
    return "\n".join(lines + notes) + "\n"
