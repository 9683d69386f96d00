"""The replicate-level test (bert_helu.analysis.ttest) against scipy, and its power against simulation."""

import numpy as np
import pytest
from scipy import stats

from bert_helu.analysis.ttest import detectable_difference, replicates_needed, welch, welch_power


def test_welch_is_scipys_welch_test_with_its_t_interval():
    a, b = np.array([76.1, 74.9, 78.3]), np.array([73.0, 75.2, 71.1, 72.4])
    found = welch(a, b, level=0.05)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert found.difference == pytest.approx(a.mean() - b.mean())
    assert found.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert found.df == pytest.approx(expected.df, rel=1e-12)
    assert (found.low, found.high) == pytest.approx(tuple(expected.confidence_interval(0.95)), rel=1e-12)
    assert found.method == "t" and found.significant(0.05) == (expected.pvalue < 0.05)
    narrower = welch(a, b, level=0.2)
    assert narrower.low > found.low and narrower.high < found.high


def test_against_zero_is_the_one_sample_t_test():
    deltas = np.array([-0.4, 0.3, -1.1, -0.2])
    found, expected = welch(deltas), stats.ttest_1samp(deltas, 0.0)
    assert found.p_value == pytest.approx(expected.pvalue) and found.df == 3
    assert (found.low, found.high) == pytest.approx(tuple(expected.confidence_interval(0.95)))


def test_a_single_run_gets_the_other_rows_spread_and_stays_calibrated():
    several, one = np.array([70.0, 72.0, 75.0]), np.array([68.0])
    found = welch(several, one)
    se = np.std(several, ddof=1) * np.sqrt(1 / 3 + 1)
    assert found.p_value == pytest.approx(2 * stats.t.sf(abs(several.mean() - 68.0) / se, 2))
    assert (
        welch(one, several).difference == -found.difference and welch(one, several).p_value == found.p_value
    )
    # 4000 null studies of 3 values against 1, normal: about 5% rejected
    sim = np.random.default_rng(0).normal(size=(4000, 4))
    rejected = np.mean([welch(s[:3], s[3:]).p_value < 0.05 for s in sim])
    assert 0.04 <= rejected <= 0.06


def test_no_spread_means_the_difference_is_exact():
    same = welch([50.0, 50.0], [50.0, 50.0])
    assert same.p_value == 1.0 and same.low == same.high == 0.0
    assert welch([51.0, 51.0], [50.0, 50.0]).p_value == 0.0
    with pytest.raises(ValueError):
        welch([50.0], [49.0])


@pytest.mark.parametrize("n, difference", [(2, 3.0), (3, 2.0), (5, 1.5), (10, 0.0)])
def test_power_is_the_rejection_rate_of_welch_on_normal_replicates(n, difference):
    variance = 2.0
    sim = np.random.default_rng(n)
    a = sim.normal(difference, np.sqrt(variance), (20_000, n))
    b = sim.normal(0.0, np.sqrt(variance), (20_000, n))
    rejected = np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05)
    # 20,000 studies: binomial sd at most 0.0035
    assert welch_power(difference, variance, n) == pytest.approx(rejected, abs=0.012)


def test_detectable_difference_and_replicates_needed_agree_with_the_power():
    d3 = detectable_difference(4.0, 3)
    assert welch_power(d3, 4.0, 3) == pytest.approx(0.8, abs=1e-4)
    d10 = detectable_difference(4.0, 10)
    # at 10 per row the Welch df stays near 18: close to the textbook (t_0.975 + t_0.8) x se
    textbook = (stats.t.ppf(0.975, 18) + stats.t.ppf(0.8, 18)) * np.sqrt(2 * 4.0 / 10)
    assert d10 < d3 and d10 == pytest.approx(textbook, rel=0.03)
    needed = replicates_needed(d10, 4.0)
    assert needed == 10 or (needed == 11 and welch_power(d10, 4.0, 10) < 0.8)
    assert welch_power(d10, 4.0, needed) >= 0.8 > welch_power(d10, 4.0, needed - 1)
    assert replicates_needed(0.0, 4.0) is None and replicates_needed(1e-4, 4.0, most=50) is None
