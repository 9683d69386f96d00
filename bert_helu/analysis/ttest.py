"""The replicate-level test: Welch's t-test on per-run values, and its power.

With two to five pretraining replicates per row, a bootstrap that redraws the replicates sees only a
few distinct outcomes and underestimates their spread (its false-positive rate was 7-10% at a nominal
5% in simulation: docs/significance.md). Each replicate's metric already carries the noise of its dev
examples, so the spread of the replicates' values measures seed and example noise together, and a
t-test on those values with Welch-Satterthwaite degrees of freedom is calibrated at any number of
replicates (exactly so for normal values).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

from bert_helu.analysis.bootstrap import Estimate


def welch(row, baseline=None, level: float = 0.05) -> Estimate:
    """Difference of means (row - baseline), t interval at 1 - level and two-sided p.

    ``baseline`` None: the row's mean against 0 (one-sample t-test). A side with a single value has
    no spread of its own: it is given the other side's (equal spread assumed), so the standard error
    is s sqrt(1/n + 1) on n - 1 degrees of freedom.
    """
    a = np.asarray(row, dtype=np.float64)
    b = None if baseline is None else np.asarray(baseline, dtype=np.float64)
    if b is None:
        if len(a) < 2:
            raise ValueError("a one-sample t-test needs at least 2 values")
        difference, se2, df = a.mean(), a.var(ddof=1) / len(a), len(a) - 1.0
    else:
        difference = a.mean() - b.mean()
        if len(a) >= 2 and len(b) >= 2:
            va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
            se2 = va + vb
            df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se2 > 0 else len(a) + len(b) - 2.0
        elif max(len(a), len(b)) >= 2:
            several = a if len(a) >= 2 else b
            se2, df = several.var(ddof=1) * (1 / len(several) + 1), len(several) - 1.0
        else:
            raise ValueError("a t-test needs at least 2 values on one side")
    return _estimate(float(difference), math.sqrt(se2), float(df), level)


def _estimate(difference: float, se: float, df: float, level: float) -> Estimate:
    if se == 0:  # every value equal on each side: nothing varies, the difference is what it is
        p = 1.0 if difference == 0 else 0.0
        return Estimate(difference, difference, difference, p, 0, method="t", df=df)
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    half = float(stats.t.ppf(1 - level / 2, df)) * se
    return Estimate(difference, difference - half, difference + half, p, 0, method="t", df=df)


def welch_power(
    difference: float,
    variance: float,
    n: int,
    level: float = 0.05,
    draws: int = 20_000,
    baseline_variance: float | None = None,
) -> float:
    """Probability that ``welch`` rejects at ``level`` for two rows of ``n`` values each, whose true
    means differ by ``difference`` and whose values have ``variance`` (the baseline's
    ``baseline_variance``, default the same).

    Exact for normal values up to Monte Carlo error (~0.003), not the noncentral-t approximation with
    2(n - 1) degrees of freedom: with 2 or 3 values per row the Welch df is itself random and often
    lower, which costs power that approximation does not see. For normal values the mean difference
    is independent of the sample variances, so only the variances are drawn (fixed seed: the same
    answer every call) and the rejection probability given them is a normal tail.
    """
    if n < 2:
        raise ValueError("the replicate-level test needs at least 2 values per row")
    vb = variance if baseline_variance is None else baseline_variance
    if variance + vb == 0:
        return 1.0 if difference != 0 else 0.0
    if vb == variance:  # the planning case: the rejection thresholds scale with the SD, computed once
        threshold = _unit_thresholds(n, level, draws) * math.sqrt(variance)
    else:
        threshold = _thresholds(variance, vb, n, level, draws)
    sd = math.sqrt((variance + vb) / n)
    reject = stats.norm.sf((threshold - difference) / sd) + stats.norm.cdf((-threshold - difference) / sd)
    return float(reject.mean())


def _thresholds(va: float, vb: float, n: int, level: float, draws: int) -> np.ndarray:
    """|mean difference| above which welch rejects, per draw of the two sample variances."""
    rng = np.random.default_rng(12345)
    sa = va * rng.chisquare(n - 1, draws) / (n - 1) / n
    sb = vb * rng.chisquare(n - 1, draws) / (n - 1) / n
    se2 = sa + sb
    df = np.where(se2 > 0, se2**2 / np.maximum(sa**2 / (n - 1) + sb**2 / (n - 1), 1e-300), 2 * (n - 1))
    return stats.t.ppf(1 - level / 2, df) * np.sqrt(se2)


@functools.lru_cache(maxsize=256)
def _unit_thresholds(n: int, level: float, draws: int) -> np.ndarray:
    return _thresholds(1.0, 1.0, n, level, draws)


def detectable_difference(variance: float, n: int, power: float = 0.8, level: float = 0.05) -> float:
    """The smallest true difference ``welch`` detects with probability ``power`` (two rows of n)."""
    if variance <= 0:
        return 0.0
    sd = math.sqrt(2 * variance / n)
    from scipy.optimize import brentq

    high = sd
    while welch_power(high, variance, n, level) < power:
        high *= 2
    return float(brentq(lambda d: welch_power(d, variance, n, level) - power, 0.0, high, xtol=1e-6 * sd))


def replicates_needed(
    difference: float, variance: float, power: float = 0.8, level: float = 0.05, most: int = 10_000
) -> int | None:
    """The fewest values per row at which ``welch`` detects ``difference`` with ``power``; None if
    more than ``most``."""
    if difference == 0:
        return None
    if variance <= 0:
        return 2
    if welch_power(difference, variance, most, level) < power:
        return None
    low, high = 1, most  # power(low) < power <= power(high)
    if welch_power(difference, variance, 2, level) >= power:
        return 2
    low = 2
    while high - low > 1:
        mid = (low + high) // 2
        if welch_power(difference, variance, mid, level) >= power:
            high = mid
        else:
            low = mid
    return high
