"""Which differences are real: table rows against a baseline row.

Where either row has several runs (the top level of what was replicated: its pretraining replicates
if it has several, each the mean over its fine-tuning seeds, else its fine-tuning seeds), Welch's
t-test on the runs' values (bert_helu.analysis.ttest): each run's metric already carries its dev-example
noise, so the spread of the runs measures seed and example noise together. Redrawing 2-5 runs in a
bootstrap instead underestimates that spread (docs/significance.md has the simulation). Each average
convention is tested on the per-run averages, computed as the table computes them.

Where both rows are one run each, a paired bootstrap over dev examples: for each task, one set of
resamples of its dev examples serves every run of every row (row and baseline are scored on the same
resampled examples), each task's metric is recomputed per resample (bert_helu.analysis.bootstrap), and each
average from those per-task values. ``--center median`` keeps the bootstrap for rows of several runs
too (resampling the runs as well), since the t-test is about means.

Everything here works in the table's units (percent, or percentage points for differences).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bert_helu.analysis.bootstrap import Estimate, bootstrap_metrics, center, estimate, observed_metrics
from bert_helu.analysis.ttest import welch
from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import read_predictions
from bert_helu.runtime.errors import UserError
from glue_eval.results import AVERAGES, Row

P_VALUE_DEFINITION = (
    "two-sided bootstrap p = min(1, 2 min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1)) over the B "
    "resampled differences d*; the interval is the percentile interval of d*"
)
T_TEST_DEFINITION = (
    "Welch's t-test on the runs' values (a row's pretraining replicates, else its fine-tuning seeds), "
    "two-sided, Welch-Satterthwaite df; a side with one run is given the other side's spread; the "
    "interval is the t interval"
)


def add_arguments(parser, baseline_required: bool) -> None:
    """The options every significance-reporting command shares."""
    parser.add_argument(
        "--baseline",
        required=baseline_required,
        metavar="NAME",
        help="the row every other row is tested against: a row name as printed (e.g. 'gelu-s* (gelu)'), "
        "its label or one of its run names, or its activation if only one row has it",
    )
    parser.add_argument(
        "--level", type=float, default=0.05, help="significance level (default 0.05: 95%% intervals)"
    )
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")


@dataclass(frozen=True)
class Settings:
    resamples: int = 10_000
    seed: int = 0
    level: float = 0.05
    center: str = "mean"
    delta: str | None = None  # "int8": compare INT8-minus-full-precision deltas

    def check(self) -> Settings:
        if not 0 < self.level < 1:
            raise UserError(f"--level {self.level}: must be between 0 and 1 (0.05 for 95% intervals)")
        if self.resamples < 100:
            raise UserError(f"--resamples {self.resamples}: use at least 100 (10000 is the default)")
        return self


@dataclass(frozen=True)
class Comparison:
    row: str
    baseline: str | None  # None: against 0 (an INT8 delta on its own)
    label: str  # the column: "RTE", "MRPC F1", "Avg (paper)", ...
    task: str | None  # None for an average
    metric: str | None
    row_value: float
    baseline_value: float | None
    estimate: Estimate  # difference (row - baseline), interval, p
    examples: int | None  # dev examples resampled (None for an average: several sets)
    covers: tuple[str, ...] = ()  # an average's components

    def significant(self, level: float) -> bool:
        return self.estimate.significant(level)


def find_row(rows: list[Row], name: str) -> Row:
    """The row called ``name``: its printed name or label, else one of its runs, else its activation."""
    for matches in (
        [r for r in rows if name in (r.name, r.run)],
        [r for r in rows if name in {m.run for m in r.members}],
        [r for r in rows if r.activation == name],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            found = ", ".join(repr(r.name) for r in matches)
            raise UserError(f"--baseline {name!r} matches several rows ({found}); give a full row name")
    known = ", ".join(repr(r.name) for r in rows)
    raise UserError(f"--baseline {name!r}: no such row (rows: {known})")


def scheme(row: Row, baseline: Row | None, settings: Settings) -> str:
    """Which bootstrap compares ``row`` with ``baseline``, and why, in a sentence."""
    both = [row] if baseline is None else [row, baseline]
    what = (
        "INT8 and full-precision predictions of the same runs on the same examples (paired by construction)"
        if settings.delta
        else "the same resampled dev examples for every row (paired)"
    )
    if all(_units_per_row(r) == 1 for r in both):
        return (
            f"paired bootstrap over dev examples: {what}; each row is one fine-tuning run, so there are "
            "no runs to resample"
        )
    described = "; ".join(f"{r.name}: {_describe_units(r)}" for r in both)
    if uses_t_test(row, baseline, settings):
        single = [r.name for r in both if _units_per_row(r) == 1]
        alone = (
            f"; {single[0]} has one run, given the other row's spread (equal spread assumed)"
            if single
            else ""
        )
        against = "each run's value against 0" if baseline is None else "the runs' values of both rows"
        if settings.delta:
            against = (
                "each run's INT8-minus-full-precision delta (the same run on the same examples: paired by "
                "construction), " + ("against 0" if baseline is None else "of both rows")
            )
        return (
            f"Welch t-test on {against} ({described}){alone}: each run's metric carries its own "
            "dev-example noise, so the runs' spread measures seed and example noise together; "
            "t interval, Welch-Satterthwaite df"
        )
    return (
        f"two-level bootstrap: each resample draws each row's runs with replacement ({described}), "
        f"then dev examples: {what}"
    )


def uses_t_test(row: Row, baseline: Row | None, settings: Settings) -> bool:
    """The replicate-level t-test where a row has several runs; the bootstrap for single runs, and for
    medians (the t-test is about means)."""
    both = [row] if baseline is None else [row, baseline]
    return settings.center == "mean" and any(_units_per_row(r) > 1 for r in both)


def _units_per_row(row: Row) -> int:
    return len({row.unit_of(r) for r in row.records})


def _describe_units(row: Row) -> str:
    if row.replicated:
        return f"{len(row.members)} pretraining replicates, fine-tuning seeds averaged within each"
    units = _units_per_row(row)
    return f"{units} fine-tuning seeds of one checkpoint" if units > 1 else "one run, nothing to resample"


# ------------------------------------------------------------------------------- the bootstrap


def compare(
    rows: list[Row],
    baseline: Row | None,
    columns: list[tuple[str, str, str]],
    averages: list[str],
    settings: Settings,
) -> list[Comparison]:
    """Every row but the baseline, per column (label, task, metric) both rows have, and per average
    convention both rows cover alike; against 0 when ``baseline`` is None (INT8 deltas)."""
    settings.check()
    others = [r for r in rows if r is not baseline]
    involved = others + ([baseline] if baseline is not None else [])
    needed = {(t, m) for _, t, m in columns}
    for name in averages:
        needed |= {part for _, parts in AVERAGES[name] for part in parts}
    needed = {(t, m) for t, m in needed if any(r.cell(t, m) for r in involved)}
    samples, observed, examples = _per_run(involved, needed, settings)
    values = {id(r): _RowValues(r, samples, observed, settings) for r in involved}

    out = []
    for row in others:
        mine, base = values[id(row)], values[id(baseline)] if baseline is not None else None
        t_test = uses_t_test(row, baseline, settings)
        for label, task, metric in columns:
            if (task, metric) not in needed or not row.cell(task, metric):
                continue
            if baseline is not None and not baseline.cell(task, metric):
                continue
            a, b = mine.task(task, metric), base.task(task, metric) if base else None
            out.append(
                _comparison(row, baseline, label, task, metric, a, b, examples[task], settings, t_test)
            )
        for name in averages:
            covers = _coverage(row, name)
            if baseline is not None and _coverage(baseline, name) != covers:
                continue  # averages over different tasks are not the same quantity
            if not covers:
                continue
            a, b = mine.average(name), base.average(name) if base else None
            out.append(
                _comparison(row, baseline, f"Avg ({name})", None, None, a, b, None, settings, t_test, covers)
            )
    return out


def replicate_test(row_units, base_units, level: float) -> Estimate | None:
    """The replicate-level test of one cell from the runs' values (``base_units`` None: against 0);
    None where it cannot run (one run on each side, or a run without every task of an average)."""
    if row_units is None or (base_units is None and len(row_units) < 2):
        return None
    if base_units is not None and max(len(row_units), len(base_units)) < 2:
        return None
    return welch(row_units, base_units, level)


def _comparison(row, baseline, label, task, metric, mine, base, examples, settings, t_test, covers=()):
    (row_obs, row_samples, row_units) = mine
    if base is None:
        diff_obs, diff_samples, base_obs = row_obs, row_samples, None
    else:
        diff_obs, diff_samples, base_obs = row_obs - base[0], row_samples - base[1], base[0]
    found = None
    if t_test and (base is None or base[2] is not None):
        found = replicate_test(row_units, None if base is None else base[2], settings.level)
    return Comparison(
        row=row.name,
        baseline=baseline.name if baseline is not None else None,
        label=label,
        task=task,
        metric=metric,
        row_value=row_obs,
        baseline_value=base_obs,
        estimate=found if found is not None else estimate(diff_obs, diff_samples, settings.level),
        examples=examples,
        covers=tuple(covers),
    )


def _coverage(row: Row, average: str) -> tuple[str, ...]:
    return tuple(label for label, parts in AVERAGES[average] if all(row.cell(t, m) for t, m in parts))


def _seed_for(settings: Settings, key: str) -> np.random.Generator:
    """A generator per task (or row) from the printed seed and the name: adding a row or a task to
    the table leaves the draws of the others as they were."""
    return np.random.default_rng([settings.seed, zlib.crc32(key.encode())])


def run_values(rows: list[Row], needed: set, settings: Settings):
    """Per (task, metric, id(record)): each run's bootstrap samples and observed value (percent), and
    per task the dev examples; the same resamples for every run of a task (glue_eval plan)."""
    return _per_run(rows, needed, settings)


def _per_run(rows: list[Row], needed: set, settings: Settings):
    """Per (task, metric) and results record: observed value and bootstrap samples, in percent."""
    by_task: dict[str, list[dict]] = {}
    for row in rows:
        for record in row.records:
            if any((record["task"], m) in needed for m in record["metrics"]):
                by_task.setdefault(record["task"], []).append(record)
    _require_predictions([r for records in by_task.values() for r in records])
    samples, observed, examples = {}, {}, {}
    for task, records in sorted(by_task.items()):
        preds = [read_predictions(Path(r["_file"]).parent / r["predictions"]) for r in records]
        _check_same_examples(task, preds)
        metrics = sorted({m for t, m in needed if t == task})
        variants = ["full", "int8"] if settings.delta else ["full"]
        matrix = np.stack([p.of(v) for v in variants for p in preds])
        labels = preds[0].label
        rng = _seed_for(settings, f"examples:{task}")
        boot = bootstrap_metrics(metrics, matrix, labels, settings.resamples, rng)
        seen = observed_metrics(metrics, matrix, labels)
        for metric in metrics:
            _check_reproduces(records, seen[metric], metric, settings.delta)
            runs = len(records)
            if settings.delta:  # INT8 minus full precision, run by run
                boot_m, seen_m = (
                    boot[metric][:, runs:] - boot[metric][:, :runs],
                    seen[metric][runs:] - seen[metric][:runs],
                )
            else:
                boot_m, seen_m = boot[metric], seen[metric]
            for i, record in enumerate(records):
                samples[(task, metric, id(record))] = 100.0 * boot_m[:, i]
                observed[(task, metric, id(record))] = 100.0 * seen_m[i]
        examples[task] = len(labels)
    return samples, observed, examples


def _require_predictions(records: list[dict]) -> None:
    missing = [r["_file"] for r in records if not r.get("predictions")]
    if missing:
        more = f" (and {len(missing) - 1} more results)" if len(missing) > 1 else ""
        raise UserError(
            f"{missing[0]}: no per-example predictions (results written before they were kept){more}; "
            "significance needs them: fine-tune those runs again, or leave out --significance"
        )


def _check_same_examples(task: str, preds) -> None:
    first = preds[0]
    for other in preds[1:]:
        same = np.array_equal(first.index, other.index) and np.array_equal(first.label, other.label)
        if not same:
            raise UserError(
                f"{other.path} and {first.path}: {task} was evaluated on different dev examples "
                f"({len(other.index)} vs {len(first.index)}; another max_eval_examples or dev file?); "
                "a paired comparison needs the same examples"
            )


def _check_reproduces(records, values, metric: str, delta: str | None) -> None:
    """The predictions must be the ones results.json was computed from."""
    runs = len(records)
    for i, record in enumerate(records):
        checks = [(record["metrics"].get(metric), values[i], "")]
        if delta:
            checks.append(((record.get(delta) or {}).get("metrics", {}).get(metric), values[runs + i], delta))
        for reported, recomputed, variant in checks:
            if reported is not None and abs(reported - recomputed) > 1e-5:
                # the bootstrap's sums are the fast path; the GLUE metric module that computed
                # results.json (bert_helu.glue.metrics) has the last word, and gives the number shown
                recomputed = _metric_module_value(record, metric, variant)
                if abs(reported - recomputed) <= 1e-5:
                    continue
                where = f"{variant} " if variant else ""
                raise UserError(
                    f"{Path(record['_file']).parent / record['predictions']}: gives {where}{metric} "
                    f"{recomputed:.6f}, but {record['_file']} reports {reported:.6f}"
                )


def _metric_module_value(record: dict, metric: str, variant: str) -> float:
    stored = read_predictions(Path(record["_file"]).parent / record["predictions"])
    return compute_metrics([metric], stored.of(variant or "full"), stored.label)[metric]


class _RowValues:
    """A row's value per resample: its center over drawn units (pretraining replicates or seeds)."""

    def __init__(self, row: Row, samples: dict, observed: dict, settings: Settings):
        self.row, self.samples, self.observed, self.how = row, samples, observed, settings.center
        units = sorted({row.unit_of(r) for r in row.records}, key=str)
        # one uniform draw matrix per row, shared by its tasks and averages: a replicate drawn twice
        # counts twice in every task of that resample (its tasks come from one pretrained model)
        self.uniform = _seed_for(settings, f"units:{row.name}").random((settings.resamples, len(units)))

    def _units(self, task: str, metric: str) -> dict:
        """unit -> (observed, samples): the mean over the unit's fine-tuning runs."""
        grouped: dict = {}
        for record in self.row.records:
            if record["task"] == task and (task, metric, id(record)) in self.samples:
                grouped.setdefault(self.row.unit_of(record), []).append(id(record))
        return {
            unit: (
                np.mean([self.observed[(task, metric, i)] for i in ids]),
                np.mean([self.samples[(task, metric, i)] for i in ids], axis=0),
            )
            for unit, ids in grouped.items()
        }

    def _draws(self, units: int) -> np.ndarray:
        return (self.uniform[:, :units] * units).astype(np.intp)

    def _center(self, per_unit: list) -> tuple[float, np.ndarray]:
        observed = np.array([[o for o, _ in per_unit]])
        samples = np.stack([s for _, s in per_unit], axis=1)
        return float(center(observed, how=self.how)[0]), center(samples, self._draws(len(per_unit)), self.how)

    def task(self, task: str, metric: str) -> tuple[float, np.ndarray, np.ndarray]:
        """Observed center, its bootstrap samples, and the units' observed values."""
        units = self._units(task, metric)
        per_unit = [units[u] for u in sorted(units, key=str)]
        return (*self._center(per_unit), np.array([o for o, _ in per_unit]))

    def average(self, name: str) -> tuple[float, np.ndarray]:
        """As glue_eval.results._average: per unit over the units every component shares, else the
        mean of the per-task values."""
        covered = [parts for _, parts in AVERAGES[name] if all(self.row.cell(t, m) for t, m in parts)]
        per_part = [[self._units(t, m) for t, m in parts] for parts in covered]
        common = set.intersection(*(set(u) for parts in per_part for u in parts))
        if common:
            per_unit = []
            for unit in sorted(common, key=str):
                observed = np.mean([np.mean([p[unit][0] for p in parts]) for parts in per_part])
                samples = np.mean(
                    [np.mean([p[unit][1] for p in parts], axis=0) for parts in per_part], axis=0
                )
                per_unit.append((observed, samples))
            return (*self._center(per_unit), np.array([o for o, _ in per_unit]))
        tasks = [[self._center([p[u] for u in sorted(p, key=str)]) for p in parts] for parts in per_part]
        observed = np.mean([np.mean([o for o, _ in parts]) for parts in tasks])
        samples = np.mean([np.mean([s for _, s in parts], axis=0) for parts in tasks], axis=0)
        return float(observed), samples, None  # no unit has every task: no per-unit averages
