"""The bootstrap over dev examples (and over runs), vectorised over resamples and runs with numpy.

A resample of n dev examples is a vector of counts: how often each example was drawn (they sum to
n). Every metric is recomputed on each resample from count-weighted sums: confusion counts for
accuracy, F1 and MCC, moments for Pearson, the resample's own average ranks for Spearman. That is
exactly the metric of the resampled examples (tests/analysis/test_bootstrap.py checks it against
sklearn/scipy), never a mean of per-example scores. One resample serves every run evaluated on the
same examples: that is what pairs the comparison.

Runs (pretraining replicates, or fine-tuning seeds) are resampled with ``draw_units``; ``estimate``
turns bootstrap samples of a difference into a percentile interval and a two-sided p-value. Rows of
several runs are compared by bert_helu.analysis.ttest instead (glue_eval.significance): redrawing 2-5 runs
underestimates their spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")

# Count matrices are built a chunk of resamples at a time so memory stays near 100 MB whatever n.
CHUNK_ELEMENTS = 1 << 21


def resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``(size, n)`` counts of ``size`` bootstrap resamples of n examples (each row sums to n).

    float32, exact for counts below 2^24, ready for the matrix products below.
    """
    draws = rng.integers(0, n, size=(size, n))
    counts = np.empty((size, n), dtype=np.float32)
    for row, drawn in enumerate(draws):  # one row at a time: its bins stay in cache, 3x faster
        counts[row] = np.bincount(drawn, minlength=n)
    return counts


def resampled_metrics(names, counts: np.ndarray, predictions: np.ndarray, labels: np.ndarray) -> dict:
    """{metric: (resamples, runs)} for count matrix ``counts`` (resamples, n), ``predictions`` (runs, n).

    With ``counts`` all ones this is the metric of the data as it is (as bert_helu.glue.metrics computes it:
    an undefined score, say a correlation of constant predictions, is 0).
    """
    return _Prepared(names, predictions, labels).metrics(np.atleast_2d(counts))


def bootstrap_metrics(names, predictions, labels, resamples: int, rng: np.random.Generator) -> dict:
    """{metric: (resamples, runs)}: every run's metric on the same ``resamples`` resamples of examples."""
    prepared = _Prepared(names, predictions, labels)
    n, runs = prepared.n, prepared.runs
    out = {name: np.empty((resamples, runs)) for name in names}
    chunk = max(1, min(resamples, CHUNK_ELEMENTS // n))
    # One BLAS thread: the products here are thin (a chunk of resamples by a few columns per run) and
    # multithreaded BLAS spent 20x the CPU time on them on a busy 2-core machine, for no gain.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            values = prepared.metrics(resample_counts(rng, n, size))
            for name in names:
                out[name][start : start + size] = values[name]
    return out


def observed_metrics(names, predictions, labels) -> dict:
    """{metric: (runs,)} on the examples as they are."""
    prepared = _Prepared(names, predictions, labels)
    return {name: v[0] for name, v in prepared.metrics(np.ones((1, prepared.n))).items()}


# ------------------------------------------------------------------------ metrics from sums


class _Prepared:
    """Per-example columns whose count-weighted sums give every metric asked for, built once per set
    of runs, so that each chunk of resamples costs one matrix product (plus a rank pass per run for
    Spearman)."""

    def __init__(self, names, predictions, labels):
        unknown = set(names) - set(METRICS)
        if unknown:
            raise ValueError(f"no resampled version of metric(s) {', '.join(sorted(unknown))}")
        self.names = list(names)
        self.preds, self.labels = np.atleast_2d(predictions), np.asarray(labels)
        self.runs, self.n = self.preds.shape
        if self.labels.shape != (self.n,):
            raise ValueError(f"labels {self.labels.shape} do not match predictions {self.preds.shape}")
        self.columns, self.slices = [], {}
        preds, labels = self.preds, self.labels
        if {"accuracy", "f1", "matthews_correlation"} & set(names):
            self._add("correct", (preds == labels).T)
        if {"f1", "matthews_correlation"} & set(names):
            # 0 and 1 always: a set of one class has nothing to leave out below
            self.classes = np.union1d(np.union1d(labels, preds), [0, 1])
            if "f1" in names and not set(self.classes) <= {0, 1}:
                raise ValueError("f1 here is GLUE's binary F1: labels and predictions must be 0 or 1")
            # one class is implied by the others (counts sum to the resample size): one column less
            self._add("pred=k", np.stack([(preds == k).T for k in self.classes[1:]], axis=2))
            self._add("gold=k", np.stack([labels == k for k in self.classes[1:]], axis=1))
        if "pearson" in names:
            # centred first: Pearson does not change, and the sums of squares keep their precision
            x, y = preds - preds.mean(axis=1, keepdims=True), labels - labels.mean()
            for key, values in (("x", x.T), ("xx", (x * x).T), ("xy", (x * y).T), ("y", y), ("yy", y * y)):
                self._add(key, values)
        # indicator columns sum exactly in float32 (counts stay below 2^24): half the memory traffic
        exact = "pearson" not in names
        self.matrix = (
            np.concatenate(self.columns, axis=1).astype(np.float32 if exact else np.float64)
            if self.columns
            else None
        )
        if "spearmanr" in names:
            self.label_order = np.argsort(labels, kind="stable")
            self.run_orders = [np.argsort(x, kind="stable") for x in preds]
            self.untied_runs = [len(np.unique(x)) == self.n for x in preds]

    def _add(self, key: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(self.n, -1)
        start = sum(c.shape[1] for c in self.columns)
        self.slices[key] = slice(start, start + values.shape[1])
        self.columns.append(values)

    def metrics(self, counts: np.ndarray) -> dict:
        total = counts.sum(axis=1, dtype=np.float64)[:, None]
        if self.matrix is not None:
            sums = (counts.astype(self.matrix.dtype, copy=False) @ self.matrix).astype(np.float64)
            self.sums = {key: sums[:, where] for key, where in self.slices.items()}
        out = {}
        for name in self.names:
            out[name] = self._spearman(counts) if name == "spearmanr" else getattr(self, f"_{name}")(total)
        return out

    def _class_counts(self, total):
        """Per resample: predicted counts (resamples, runs, classes), gold counts (resamples, 1, classes)."""
        k = len(self.classes) - 1
        pred = self.sums["pred=k"].reshape(len(total), self.runs, k)
        gold = self.sums["gold=k"][:, None, :]
        pred = np.concatenate([total[:, :, None] - pred.sum(axis=2, keepdims=True), pred], axis=2)
        gold = np.concatenate([total[:, :, None] - gold.sum(axis=2, keepdims=True), gold], axis=2)
        return pred, gold

    def _accuracy(self, total):
        return self.sums["correct"] / total

    def _f1(self, total):
        # binary: correct = tp + tn and tn = total - predicted positives - gold positives + tp
        pred, gold = self._class_counts(total)
        pred_pos, gold_pos = pred[:, :, -1], gold[:, :, -1]
        tp = (self.sums["correct"] - total + pred_pos + gold_pos) / 2
        return _divide(2 * tp, pred_pos + gold_pos)

    def _matthews_correlation(self, total):
        # sklearn's multiclass form: (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
        pred, gold = self._class_counts(total)
        cov = self.sums["correct"] * total - (pred * gold).sum(axis=2)
        var_pred = total**2 - (pred**2).sum(axis=2)
        var_gold = total**2 - (gold**2).sum(axis=2)
        return _divide(cov, np.sqrt(np.maximum(var_pred * var_gold, 0.0)))

    def _pearson(self, total):
        s = self.sums
        cov = s["xy"] - s["x"] * s["y"] / total
        var_x = s["xx"] - s["x"] ** 2 / total
        var_y = s["yy"] - s["y"] ** 2 / total
        # a resample of one repeated value leaves only rounding error: constant, undefined, 0
        var_x = np.where(var_x > 1e-10 * s["xx"], var_x, 0.0)
        var_y = np.where(var_y > 1e-10 * s["yy"], var_y, 0.0)
        return _divide(cov, np.sqrt(var_x * var_y))

    def _spearman(self, counts: np.ndarray) -> np.ndarray:
        """Pearson of the resample's average ranks, every example weighted by its count."""
        total = counts.sum(axis=1, dtype=np.float64)
        mean_term = total * ((total + 1) / 2) ** 2
        # Examples along axis 0: the gathers by sort order below then copy whole rows. The per-run
        # arrays are float32, exact here (counts, half-integer ranks and their products stay below
        # 2^24), and products are summed in float64: half the memory traffic of float64 throughout.
        by_example = np.ascontiguousarray(counts.T, dtype=np.float32)
        wide = by_example.astype(np.float64)
        untied = np.einsum("ij,ij,ij->j", wide, wide, wide) - total
        rank_y, ties_y = _ranks_in_order(wide[self.label_order], self.labels[self.label_order], untied)
        weighted_rank_y = np.empty(by_example.shape, dtype=np.float32)
        weighted_rank_y[self.label_order] = wide[self.label_order] * rank_y
        # the variance of average ranks with ties, exact in integer arithmetic: no rounding near 0
        var_y = (total**3 - total - ties_y) / 12
        # Without ties in x, rank_x = C - (w - 1)/2 for C the running count in x order, so
        # sum w ry rx = sum w ry C - (sum w^2 ry - sum w ry) / 2, and sum w ry = N (N + 1) / 2:
        # only C depends on the run.
        untied_rest = (total * (total + 1) / 2 - np.einsum("ij,ij->j", weighted_rank_y, wide)) / 2
        out = np.empty((len(counts), self.runs))
        for run, (x, order) in enumerate(zip(self.preds, self.run_orders, strict=True)):
            if self.untied_runs[run]:
                running = _running_sum(by_example[order])
                cov = _dot(weighted_rank_y[order], running) + untied_rest - mean_term
                ties_x = untied
            else:
                rank_x, ties_x = _ranks_in_order(by_example[order], x[order], untied)
                cov = _dot(weighted_rank_y[order], rank_x) - mean_term
            var_x = (total**3 - total - ties_x) / 12
            out[:, run] = _divide(cov, np.sqrt(var_x * var_y))
        return out


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (an undefined score counts as 0, as in bert_helu.glue.metrics)."""
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def _ranks_in_order(counts_sorted: np.ndarray, values_sorted: np.ndarray, untied_ties: np.ndarray):
    """Average ranks (1-based, ties averaged) within each resample of examples sorted by value
    (counts: examples x resamples); and per resample the tie term sum(t^3 - t) over groups of equal
    values (an example drawn w times is w tied values; ``untied_ties`` is that term when no two
    values are equal, the same for every order)."""
    starts = np.flatnonzero(np.r_[True, values_sorted[1:] != values_sorted[:-1]])
    tied = len(starts) < len(values_sorted)
    group = np.add.reduceat(counts_sorted, starts, axis=0) if tied else counts_sorted
    rank = _running_sum(group.copy())
    rank -= (group - 1) / 2
    if not tied:
        return rank, untied_ties
    ties = np.einsum("ij,ij,ij->j", group, group, group, dtype=np.float64) - group.sum(
        axis=0, dtype=np.float64
    )
    return rank[np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values_sorted)]))], ties


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise sum of products, accumulated in float64."""
    return np.einsum("ij,ij->j", a, b, dtype=np.float64)


def _running_sum(rows: np.ndarray) -> np.ndarray:
    """Cumulative sum over axis 0, in place. Row by row, each row a vector over resamples: ~4x
    faster than np.cumsum(axis=0), which walks each column separately."""
    for row in range(1, len(rows)):
        rows[row] += rows[row - 1]
    return rows


# ------------------------------------------------------------------ runs, intervals, p-values


def draw_units(rng: np.random.Generator, units: int, resamples: int) -> np.ndarray:
    """``(resamples, units)`` indices: each resample draws ``units`` runs with replacement."""
    if units == 1:
        return np.zeros((resamples, 1), dtype=np.intp)
    return rng.integers(0, units, size=(resamples, units))


def center(values: np.ndarray, draws: np.ndarray | None = None, how: str = "mean") -> np.ndarray:
    """Mean (or median) over units of ``values`` (resamples, units), over the drawn units if given."""
    picked = values if draws is None else np.take_along_axis(values, draws, axis=1)
    return np.median(picked, axis=1) if how == "median" else picked.mean(axis=1)


@dataclass(frozen=True)
class Estimate:
    difference: float  # on the data as it is
    low: float  # percentile interval of the bootstrap samples
    high: float
    p_value: float
    resamples: int  # 0 for a t-test
    method: str = "bootstrap"  # or "t": bert_helu.analysis.ttest, interval and p from the t distribution
    df: float | None = None  # the t-test's degrees of freedom

    def significant(self, level: float) -> bool:
        return bool(self.p_value < level)


def estimate(observed: float, samples: np.ndarray, level: float = 0.05) -> Estimate:
    """Percentile interval at 1 - level, and the two-sided bootstrap p-value

        p = min(1, 2 min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1))

    for B bootstrap samples d* of the difference: twice the smaller tail beyond 0, counted
    conservatively (a sample of exactly 0 counts on both sides; the +1 keeps p above 0). It is below
    ``level`` about when the interval excludes 0.
    """
    samples = np.asarray(samples, dtype=np.float64)
    low, high = np.quantile(samples, [level / 2, 1 - level / 2])
    below, above = int(np.count_nonzero(samples <= 0)), int(np.count_nonzero(samples >= 0))
    p = min(1.0, 2 * min(below + 1, above + 1) / (len(samples) + 1))
    return Estimate(float(observed), float(low), float(high), p, len(samples))
