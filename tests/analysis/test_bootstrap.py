"""The bootstrap against known answers: metrics recomputed per resample, zero differences, coverage."""

import numpy as np
import pytest

from bert_helu.analysis.bootstrap import (
    bootstrap_metrics,
    center,
    draw_units,
    estimate,
    observed_metrics,
    resample_counts,
    resampled_metrics,
)
from bert_helu.glue.metrics import compute_metrics

rng = np.random.default_rng(1234)
N = 60
BINARY = rng.integers(0, 2, N)
BINARY_PREDS = np.stack(
    [rng.integers(0, 2, N), np.where(rng.random(N) < 0.8, BINARY, 1 - BINARY), np.ones(N)]
)
THREE = rng.integers(0, 3, N)
THREE_PREDS = np.stack([rng.integers(0, 3, N), np.where(rng.random(N) < 0.6, THREE, 0)])
SCORES = rng.integers(0, 11, N) / 2  # STS-B-like: many ties
SCORE_PREDS = np.stack(
    [SCORES + rng.normal(0, 1, N), rng.integers(0, 4, N) / 1.0, np.full(N, 2.5)]  # ties; constant
).astype(np.float32)

CASES = {
    "binary": (["accuracy", "f1", "matthews_correlation"], BINARY_PREDS, BINARY),
    "three classes": (["accuracy", "matthews_correlation"], THREE_PREDS, THREE),
    "scores": (["pearson", "spearmanr"], SCORE_PREDS, SCORES.astype(np.float32)),
}


@pytest.mark.parametrize("case", CASES)
def test_every_metric_is_recomputed_on_each_resample_exactly_as_sklearn_and_scipy_do(case):
    names, preds, labels = CASES[case]
    counts = resample_counts(np.random.default_rng(0), N, 25)
    got = resampled_metrics(names, counts, preds, labels)
    for b, row in enumerate(counts):
        drawn = np.repeat(np.arange(N), row.astype(int))  # the resampled examples, duplicates and all
        for run, pred in enumerate(preds):
            expected = compute_metrics(names, pred[drawn], labels[drawn])
            # 1e-6: scipy computes Pearson of float32 scores in float32, we in float64
            assert {m: got[m][b, run] for m in names} == pytest.approx(expected, abs=1e-6)
    observed = observed_metrics(names, preds, labels)
    for run, pred in enumerate(preds):
        assert {m: observed[m][run] for m in names} == pytest.approx(compute_metrics(names, pred, labels))


def test_f1_mcc_and_spearman_are_scores_of_the_resample_not_means_of_per_example_scores():
    labels, preds = np.array([1, 0, 1, 0]), np.array([[1, 1, 0, 0]])
    # a resample of examples 0 and 1, each drawn twice: tp=2, fp=2 -> F1 2/3, MCC 0
    counts = np.array([[2, 2, 0, 0]])
    out = resampled_metrics(["f1", "matthews_correlation", "accuracy"], counts, preds, labels)
    assert out["f1"][0, 0] == pytest.approx(2 / 3) and out["matthews_correlation"][0, 0] == 0
    assert out["accuracy"][0, 0] == pytest.approx(0.5)
    # ranks are the resample's own: example 2 drawn 3 times is 3 tied values of rank 3
    scores, truth = np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([1.0, 3.0, 2.0, 4.0])
    out = resampled_metrics(["spearmanr"], np.array([[1, 0, 3, 1]]), scores, truth)
    expected = compute_metrics(["spearmanr"], [0.1, 0.3, 0.3, 0.3, 0.4], [1.0, 2.0, 2.0, 2.0, 4.0])
    assert out["spearmanr"][0, 0] == pytest.approx(expected["spearmanr"]) == pytest.approx(1.0)


def test_identical_prediction_sets_give_difference_zero_an_interval_containing_it_and_p_one():
    names, preds, labels = CASES["binary"]
    twins = np.stack([preds[1], preds[1]])
    samples = bootstrap_metrics(names, twins, labels, 2000, np.random.default_rng(7))
    for name in names:
        diff = samples[name][:, 0] - samples[name][:, 1]
        est = estimate(0.0, diff)
        assert np.all(diff == 0) and est.low <= 0 <= est.high and est.p_value == 1.0


def test_same_seed_same_samples_another_seed_other_samples():
    names, preds, labels = CASES["scores"]
    a = bootstrap_metrics(names, preds, labels, 300, np.random.default_rng(3))
    b = bootstrap_metrics(names, preds, labels, 300, np.random.default_rng(3))
    c = bootstrap_metrics(names, preds, labels, 300, np.random.default_rng(4))
    assert all(np.array_equal(a[m], b[m]) and not np.array_equal(a[m], c[m]) for m in names)


def test_p_value_definition_and_percentile_interval():
    est = estimate(1.5, np.array([-1.0, 1.0, 2.0, 3.0]), level=0.5)
    assert est.p_value == pytest.approx(2 * 2 / 5)  # 2 min(1 + 1, 1 + 3) / (4 + 1)
    assert (est.low, est.high) == pytest.approx(tuple(np.quantile([-1.0, 1.0, 2.0, 3.0], [0.25, 0.75])))
    assert estimate(1.0, np.ones(999)).p_value == pytest.approx(2 / 1000)


def simulate_pair(sim_rng, n, accuracy_a, accuracy_b):
    """Two classifiers on n fresh examples with correlated errors (they share the hard examples)."""
    difficulty = sim_rng.random(n)
    noise = sim_rng.random((2, n))
    correct = np.stack(
        [0.5 * difficulty + 0.5 * noise[0] < accuracy_a, 0.5 * difficulty + 0.5 * noise[1] < accuracy_b]
    )
    labels = sim_rng.integers(0, 2, n)
    return np.where(correct, labels, 1 - labels), labels


def true_accuracy(threshold, draws=2_000_000):
    sim = np.random.default_rng(99)
    return np.mean(0.5 * sim.random(draws) + 0.5 * sim.random(draws) < threshold)


def test_intervals_cover_a_known_accuracy_gap_in_about_95_percent_of_simulated_dev_sets():
    threshold_a, threshold_b = 0.62, 0.55
    gap = true_accuracy(threshold_a) - true_accuracy(threshold_b)  # ~0.10
    sim = np.random.default_rng(2024)
    covered, rejected, simulations = 0, 0, 300
    for _ in range(simulations):
        preds, labels = simulate_pair(sim, 300, threshold_a, threshold_b)
        samples = bootstrap_metrics(["accuracy"], preds, labels, 400, sim)["accuracy"]
        observed = observed_metrics(["accuracy"], preds, labels)["accuracy"]
        est = estimate(observed[0] - observed[1], samples[:, 0] - samples[:, 1])
        covered += est.low <= gap <= est.high
        rejected += est.significant(0.05)
    # 95% nominal; binomial sd over 300 simulations is 1.3 points
    assert 0.91 <= covered / simulations <= 0.985
    assert rejected / simulations > 0.8  # a real 10-point gap on 300 examples is found


def test_without_a_difference_about_5_percent_of_simulated_dev_sets_are_significant():
    sim = np.random.default_rng(77)
    significant, simulations = 0, 300
    for _ in range(simulations):
        preds, labels = simulate_pair(sim, 200, 0.6, 0.6)
        samples = bootstrap_metrics(["accuracy"], preds, labels, 400, sim)["accuracy"]
        observed = observed_metrics(["accuracy"], preds, labels)["accuracy"]
        significant += estimate(observed[0] - observed[1], samples[:, 0] - samples[:, 1]).significant(0.05)
    assert 0.01 <= significant / simulations <= 0.10


def test_resampling_replicates_covers_what_a_bootstrap_over_examples_alone_misses():
    """Pretraining seeds shift accuracy by a few points: with replicates resampled the interval holds
    the expected gap; resampling examples alone takes the seeds' luck for a real effect."""
    sim = np.random.default_rng(5)
    replicates, n, gap = 8, 400, 0.0
    covered = {"two-level": 0, "examples only": 0}
    simulations = 120
    for _ in range(simulations):
        labels = sim.integers(0, 2, n)
        hardness = sim.random(n)
        shifts = sim.normal(0, 0.04, size=2 * replicates)  # each pretraining run's own luck
        correct = 0.5 * hardness + 0.5 * sim.random((2 * replicates, n)) < 0.6 + shifts[:, None]
        preds = np.where(correct, labels, 1 - labels)
        samples = bootstrap_metrics(["accuracy"], preds, labels, 300, sim)["accuracy"]
        observed = observed_metrics(["accuracy"], preds, labels)["accuracy"]
        diff_observed = observed[:replicates].mean() - observed[replicates:].mean()
        draws_a, draws_b = draw_units(sim, replicates, 300), draw_units(sim, replicates, 300)
        two_level = center(samples[:, :replicates], draws_a) - center(samples[:, replicates:], draws_b)
        examples_only = center(samples[:, :replicates]) - center(samples[:, replicates:])
        for scheme, diff in (("two-level", two_level), ("examples only", examples_only)):
            est = estimate(diff_observed, diff)
            covered[scheme] += est.low <= gap <= est.high
    assert covered["two-level"] / simulations >= 0.85
    assert covered["examples only"] / simulations <= 0.75


def test_one_unit_is_never_resampled_and_median_is_available():
    assert np.array_equal(draw_units(np.random.default_rng(0), 1, 4), np.zeros((4, 1), dtype=int))
    values = np.array([[1.0, 2.0, 9.0]])
    assert center(values)[0] == 4.0 and center(values, how="median")[0] == 2.0
    assert center(values, np.array([[2, 2, 0]]))[0] == pytest.approx(19 / 3)
