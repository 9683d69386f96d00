"""``python -m glue_eval plan RESULTS... [--runs RUNS...] --pretrain-seeds 3 10 --finetune-seeds 1``

From a pilot with pretraining replicates: per task metric and per average (paper, cramming, glue),
the variance between pretraining seeds, between fine-tuning seeds and from the dev examples
(bert_helu.analysis.power), and what they imply for the test ``glue_eval compare`` runs: the smallest
difference found at 80% power for given numbers of pretraining and fine-tuning seeds per row, and with
``--effect`` the pretraining seeds a difference needs. ``--runs``: the same for the final validation
MLM loss of pretraining runs (their ``summary.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math

from bert_helu.analysis import power
from bert_helu.analysis.pretraining_runs import replicate_groups
from bert_helu.runtime.errors import UserError
from glue_eval import significance
from glue_eval.compare import columns_of
from glue_eval.replicates import GROUP_BY_HELP
from glue_eval.results import AVERAGES, load_results, summarise

HELP = "how many seeds a comparison needs: variance components of a pilot and the test's power"

DESCRIPTION = """From results with pretraining replicates (a pilot), per task metric and per average:
the variance between pretraining seeds, between fine-tuning seeds (where checkpoints have several) and
from the dev examples (each run's luck on the particular examples, from a bootstrap over them); then,
for the test glue_eval compare runs on rows of several replicates (Welch's t-test, two-sided), the
smallest difference it finds with the given power for each design (pretraining seeds x fine-tuning
seeds per row), and with --effect the pretraining seeds a difference needs. With --runs, the same for
the final validation MLM loss of pretraining runs (summary.json)."""

EPILOG = """examples:
  python -m glue_eval plan results/ --pretrain-seeds 3 5 10 --finetune-seeds 1 3
  python -m glue_eval plan results/ --effect 1.0 --runs runs/ --loss-effect 0.05 --format json"""


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="results dirs (searched for results.json) or files")
    significance.add_arguments(parser, baseline_required=False)
    parser.add_argument(
        "--pretrain-seeds",
        nargs="+",
        type=int,
        default=[3, 5, 10],
        metavar="N",
        help="pretraining seeds per row to plan for (default 3 5 10)",
    )
    parser.add_argument(
        "--finetune-seeds",
        nargs="+",
        type=int,
        default=[1],
        metavar="N",
        help="fine-tuning seeds per checkpoint to plan for (default 1)",
    )
    parser.add_argument(
        "--effect",
        type=float,
        metavar="D",
        help="also: the pretraining seeds per row needed to find a difference of D points",
    )
    parser.add_argument("--power", type=float, default=0.8, help="the power to plan for (default 0.8)")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="DIR",
        help="pretraining run dirs, or folders of them, with summary.json: plan for the final "
        "validation MLM loss too (runs of one recipe and activation are replicates)",
    )
    parser.add_argument(
        "--loss-effect", type=float, metavar="D", help="with --runs: the seeds a loss difference of D needs"
    )
    parser.add_argument("--group-by", default="recipe", metavar="RULE", help=GROUP_BY_HELP)
    parser.add_argument("--format", choices=["md", "csv", "json"], default="md")
    parser.add_argument("--output", help="also write the plan to this file")


def run(args) -> int:
    _check(args)
    settings = significance.Settings(args.resamples, args.seed, args.level).check()
    rows = summarise(load_results(args.results), group_by=args.group_by)
    baseline = significance.find_row(rows, args.baseline) if args.baseline else None
    quantities = glue_quantities(rows, settings)
    if not quantities:
        names = ", ".join(repr(r.name) for r in rows)
        raise UserError(
            f"{', '.join(args.results)}: no row has two pretraining replicates (rows: {names}); "
            "plan needs a pilot with replicates"
        )
    sections = [_section("GLUE (dev metric x100, points)", quantities, rows, baseline, args, args.effect)]
    if args.runs:
        sections.append(_section("Pretraining (final validation MLM loss)", loss_quantities(args.runs), [],
                                 None, args, args.loss_effect))  # fmt: skip
    header = {
        "pilot_rows": [r.name for r in rows],
        "level": settings.level,
        "power": args.power,
        "resamples": settings.resamples,
        "seed": settings.seed,
        "test": significance.T_TEST_DEFINITION,
    }
    text = {"md": to_markdown, "csv": to_csv, "json": to_json}[args.format](header, sections)
    print(text, end="")
    if args.output:
        from bert_helu.runtime.atomic import atomic_write_text

        atomic_write_text(args.output, text)
    return 0


def _check(args) -> None:
    for name in ("pretrain_seeds", "finetune_seeds"):
        bad = [n for n in getattr(args, name) if n < (2 if name == "pretrain_seeds" else 1)]
        if bad:
            least = "2 (the test needs two replicates per row)" if name == "pretrain_seeds" else "1"
            raise UserError(f"--{name.replace('_', '-')} {bad[0]}: must be at least {least}")
    if not 0 < args.power < 1:
        raise UserError(f"--power {args.power}: must be between 0 and 1 (0.8 is usual)")
    for name in ("effect", "loss_effect"):
        value = getattr(args, name)
        if value is not None and (value == 0 or not math.isfinite(value)):
            raise UserError(f"--{name.replace('_', '-')} {value}: must be a nonzero difference")
    if args.loss_effect is not None and not args.runs:
        raise UserError("--loss-effect is for the pretraining loss: add --runs DIR")


# ------------------------------------------------------------------------------- what is planned


def glue_quantities(rows, settings) -> list[dict]:
    """Per task metric, then per average: the components of the pilot (rows with their runs)."""
    columns = columns_of(rows)
    needed = {(t, m) for _, t, m in columns}
    samples, observed, examples = significance.run_values(rows, needed, settings)

    def runs_of(row, parts):
        """(run, seed) -> (value, samples): the mean over ``parts`` [(task, metric)], for every run of
        the row that has all of them."""
        found: dict = {}
        for task, metric in parts:
            for record in row.records:
                key = (task, metric, id(record))
                if record["task"] == task and key in observed:
                    found.setdefault((str(record["run"]), int(record["seed"])), []).append(key)
        return {
            run: (sum(observed[k] for k in keys) / len(keys), sum(samples[k] for k in keys) / len(keys))
            for run, keys in sorted(found.items())
            if len(keys) == len(parts)
        }

    out = []
    for label, task, metric in columns:
        out.append(_quantity(label, [[(task, metric)]], rows, runs_of, examples[task]))
    for name in sorted(AVERAGES):
        # the components every row has: the plan is for comparing rows on one and the same average
        covered = [
            (lbl, parts) for lbl, parts in AVERAGES[name] if all(r.cell(t, m) for r in rows for t, m in parts)
        ]
        if covered:
            found = _quantity(f"Avg ({name})", [parts for _, parts in covered], rows, runs_of, None)
            found["covers"] = [lbl for lbl, _ in covered]
            out.append(found)
    return [q for q in out if q["components"] is not None]


def _quantity(label, components, rows, runs_of, examples) -> dict:
    """A column's (or average's) pilot: per row, replicate -> its fine-tuning runs' values."""
    values, boot, means = [], [], {}
    for row in rows:
        per_component = [runs_of(row, parts) for parts in components]
        common = set.intersection(*(set(c) for c in per_component))
        runs = {
            run: (
                sum(c[run][0] for c in per_component) / len(per_component),
                sum(c[run][1] for c in per_component) / len(per_component),
            )
            for run in sorted(common)
        }
        if not runs:
            continue
        replicates: dict = {}
        for (name, _), (value, _) in runs.items():
            replicates.setdefault(name, []).append(value)
        values.append(replicates)
        boot.append([s for _, s in runs.values()])
        means[row.name] = sum(sum(v) / len(v) for v in replicates.values()) / len(replicates)
    try:
        found = power.estimate_components(values, power.example_variance(boot))
    except ValueError:
        found = None
    return {"label": label, "examples": examples, "components": found, "row_means": means}


def loss_quantities(dirs) -> list[dict]:
    """The final validation MLM loss of every run under ``dirs``, replicates grouped as in the tables."""
    try:
        groups = replicate_groups(dirs)
    except UserError as err:
        raise UserError(f"--runs {err}") from None
    if not groups:
        raise UserError(f"--runs {' '.join(map(str, dirs))}: no summary.json of a pretraining run there")
    files = sum(len(g["runs"]) for g in groups.values())
    values = [dict(zip(g["runs"], ([loss] for loss in g["losses"]), strict=True)) for g in groups.values()]
    try:
        found = power.estimate_components(values)
    except ValueError:
        raise UserError(
            f"--runs: no two runs of one recipe and activation among {files} summaries; "
            "the pretraining variance needs replicates"
        ) from None
    means = {", ".join(v): sum(x[0] for x in v.values()) / len(v) for v in values}
    return [{"label": "MLM loss", "examples": None, "components": found, "row_means": means}]


def _section(title, quantities, rows, baseline, args, effect) -> dict:
    for q in quantities:
        q["plan"] = power.plan(
            q["components"], args.pretrain_seeds, args.finetune_seeds, effect, args.power, args.level
        )
        if baseline is not None and baseline.name in q["row_means"]:
            f = args.finetune_seeds[0]
            variance = q["components"].variance(f)
            q["observed"] = [
                {
                    "row": name,
                    "difference": mean - q["row_means"][baseline.name],
                    "finetune_seeds": f,
                    "pretrain_seeds": power.replicates_needed(
                        abs(mean - q["row_means"][baseline.name]), variance, args.power, args.level
                    ),
                }
                for name, mean in q["row_means"].items()
                if name != baseline.name
            ]
    return {"title": title, "baseline": baseline.name if baseline else None, "quantities": quantities}


# ------------------------------------------------------------------------------------- formats


def _sd(variance) -> str:
    return "n/a" if variance is None else f"{math.sqrt(variance):.2f}"


def _num(value, digits=2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def to_markdown(header, sections) -> str:
    pct = f"{100 * header['power']:g}%"
    rows = "; ".join(header["pilot_rows"])
    lines = [
        f"Plan for the test glue_eval compare runs on rows of several runs ({header['test']}), at "
        f"{pct} power and two-sided level {header['level']:g}. Pilot rows: {rows}.",
        f"Dev-example noise: bootstrap over dev examples, {header['resamples']} resamples, "
        f"seed {header['seed']}.",
    ]
    for section in sections:
        quantities = section["quantities"]
        designs = [(d["pretrain_seeds"], d["finetune_seeds"]) for d in quantities[0]["plan"]["designs"]]
        needed = quantities[0]["plan"].get("needed", [])
        digits = 3 if "loss" in section["title"] else 2
        head = ["Column", "Examples", "Replicates (rows)", "FT seeds each", "SD pretraining",
                "SD fine-tuning", "SD dev examples", "SD of a replicate (pilot)"]  # fmt: skip
        head += [f"Detectable {p}×{f}" for p, f in designs]
        head += [f"Seeds for {n['effect']:+g} (×{n['finetune_seeds']})" for n in needed]
        lines += ["", f"## {section['title']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for q in quantities:
            c = q["components"]
            examples = _sd(c.examples) if c.examples_measured else "n/a"
            if c.examples_measured > c.examples:
                examples += f" (measured {_sd(c.examples_measured)})"
            cells = [q["label"], str(q["examples"] or ""), f"{c.replicates} ({c.rows})",
                     f"{c.finetune_seeds:g}", _sd(c.pretraining), _sd(c.finetuning), examples,
                     f"{math.sqrt(c.replicate_variance):.{digits}f} (df {c.df})"]  # fmt: skip
            cells += [_num(d["detectable"], digits) for d in q["plan"]["designs"]]
            cells += [str(n["pretrain_seeds"] or "> 10000") for n in q["plan"].get("needed", [])]
            lines.append("| " + " | ".join(cells) + " |")
        covers = [f"{q['label']}: {', '.join(q['covers'])}" for q in quantities if q.get("covers")]
        if covers:
            lines += ["", "What each average covers: " + "; ".join(covers) + "."]
        observed = [(q, o) for q in quantities for o in q.get("observed", [])]
        if observed:
            lines += [
                "",
                f"The pilot's own differences from {section['baseline']} and the pretraining seeds per row "
                f"that would find a true difference of that size at {pct} "
                f"(×{observed[0][1]['finetune_seeds']} fine-tuning seeds; a pilot's differences are noisy "
                "estimates themselves):",
                "",
                "| Column | Row | Difference | Seeds needed |",
                "|---|---|---|---|",
            ]
            for q, o in observed:
                lines.append(
                    f"| {q['label']} | {o['row']} | {o['difference']:+.{digits}f} | "
                    f"{o['pretrain_seeds'] or '> 10000'} |"
                )
    lines += [
        "",
        "Detectable P×F: the smallest true difference between two rows of P pretraining seeds with F "
        f"fine-tuning seeds each that the test finds with probability {pct}. SD of a replicate with F "
        "fine-tuning seeds: sqrt(pretraining² + (fine-tuning² + dev examples²) / F); fine-tuning n/a: "
        "one fine-tuning seed per checkpoint in the pilot, so its variance is inside the pretraining one. "
        "A dev-example noise measured larger than the pilot's replicates' spread is capped at it.",
    ]
    return "\n".join(lines) + "\n"


def _records(header, sections) -> list[dict]:
    out = []
    for section in sections:
        for q in section["quantities"]:
            c = q["components"]
            base = {
                "section": section["title"],
                "column": q["label"],
                "examples": q["examples"],
                "sd_pretraining": math.sqrt(c.pretraining),
                "sd_finetuning": None if c.finetuning is None else math.sqrt(c.finetuning),
                "sd_examples": math.sqrt(c.examples),
                "sd_examples_measured": math.sqrt(c.examples_measured),
                "replicate_sd_pilot": math.sqrt(c.replicate_variance),
                "df": c.df,
            }
            for d in q["plan"]["designs"]:
                out.append({**base, **d, "effect": None, "seeds_needed": None})
            for n in q["plan"].get("needed", []):
                out.append({**base, "pretrain_seeds": None, "finetune_seeds": n["finetune_seeds"],
                            "replicate_sd": None, "detectable": None, "effect": n["effect"],
                            "seeds_needed": n["pretrain_seeds"]})  # fmt: skip
    return out


def to_csv(header, sections) -> str:
    records = _records(header, sections)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(records[0]), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buf.getvalue()


def to_json(header, sections) -> str:
    out = {**header, "sections": []}
    for section in sections:
        quantities = []
        for q in section["quantities"]:
            quantities.append(
                {
                    "column": q["label"],
                    "examples": q["examples"],
                    "covers": q.get("covers"),
                    "components": q["components"].as_dict(),
                    "row_means": q["row_means"],
                    **q["plan"],
                    "observed": q.get("observed"),
                }
            )
        out["sections"].append(
            {"title": section["title"], "baseline": section["baseline"], "quantities": quantities}
        )
    return json.dumps(out, indent=2) + "\n"
