"""How many seeds a comparison needs: variance components from a pilot, and the power of the test
``glue_eval compare`` runs on rows of several pretraining replicates (bert_helu.analysis.ttest.welch).

A replicate's value (the mean over its fine-tuning seeds, on a fixed dev set) is modelled as

    value = row mean + pretraining effect + mean over its f fine-tuning runs of (fine-tuning effect
            + dev-example noise)

with variances ``pretraining``, ``finetuning`` and ``examples``. The dev-example noise is each run's own
luck on the particular dev examples, the part of a run's metric that another dev set of the same size
would redraw; two runs of one row scored on the same bootstrap resamples of the examples differ by
twice its variance (their shared part, the difficulty of the examples, cancels), which is how it is
measured. Fine-tuning seeds average away the last two terms, pretraining seeds all three:

    variance of a replicate = pretraining + (finetuning + examples) / f

Where the pilot has one fine-tuning seed per checkpoint, the fine-tuning effect cannot be told apart
from the pretraining one: both are counted as pretraining (``finetuning`` None), so the plan never
credits more fine-tuning seeds with more than averaging away the example noise.

At the pilot's own design the plan uses exactly the replicate variance the pilot showed: a per-run
part (fine-tuning effect and example noise) measured larger than that is capped at it, and the
pretraining part is what remains. With 3 replicates a row the replicate variance is itself uncertain
(2 degrees of freedom per row), and so is every plan made from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bert_helu.analysis.ttest import detectable_difference, replicates_needed, welch_power


@dataclass(frozen=True)
class Components:
    """Variance components of one quantity, in its squared units (points^2, or loss^2)."""

    pretraining: float  # between pretraining seeds (with fine-tuning's where ``finetuning`` is None)
    finetuning: float | None  # between fine-tuning seeds of one checkpoint, beyond example noise
    examples: float  # each run's dev-example noise (0 where not measured: a validation loss), capped
    examples_measured: float  # before the cap (see the module's docstring)
    replicate_variance: float  # the pilot's pooled variance between replicates, as measured
    df: int  # its degrees of freedom: sum over rows of (replicates - 1)
    rows: int
    replicates: int  # in all rows together
    finetune_seeds: float  # mean fine-tuning runs per replicate in the pilot

    def variance(self, finetune_seeds: int) -> float:
        """The variance of one replicate's value with ``finetune_seeds`` runs averaged into it."""
        per_run = (self.finetuning or 0.0) + self.examples
        return self.pretraining + per_run / finetune_seeds

    def as_dict(self) -> dict:
        return asdict(self)


def example_variance(samples) -> float | None:
    """Each run's dev-example noise: half the variance over bootstrap resamples of the difference of
    two runs of one row, averaged over such pairs (consecutive runs of each row, in the given order).

    ``samples``: per row, a list of per-run arrays of the same resamples of one dev set. None if no row
    has two runs.
    """
    halves = []
    for runs in samples:
        for a, b in zip(runs, runs[1:], strict=False):
            halves.append(np.var(np.asarray(a) - np.asarray(b), ddof=1) / 2)
    return float(np.mean(halves)) if halves else None


def estimate_components(values, examples: float | None = None) -> Components:
    """Variance components from a pilot: ``values`` per row a mapping replicate -> list of the values
    of its fine-tuning runs; ``examples`` each run's dev-example noise (example_variance), None or 0
    where there is none to measure.

    Rows' means differ (that is what is compared), so variances are pooled within rows: between a row's
    replicates for the replicate variance, between a checkpoint's fine-tuning runs for the run variance.
    """
    between, between_df, within, within_df, inverse_f, replicates = 0.0, 0, 0.0, 0, [], 0
    for row in values:
        means = []
        for runs in row.values():
            runs = np.asarray(runs, dtype=np.float64)
            means.append(runs.mean())
            inverse_f.append(1 / len(runs))
            if len(runs) > 1:
                within += float(np.sum((runs - runs.mean()) ** 2))
                within_df += len(runs) - 1
        replicates += len(means)
        if len(means) > 1:
            between += float(np.sum((np.array(means) - np.mean(means)) ** 2))
            between_df += len(means) - 1
    if between_df == 0:
        raise ValueError("no row has two pretraining replicates: the pretraining variance needs them")
    replicate_variance = between / between_df
    measured = examples or 0.0
    mean_inverse_f = float(np.mean(inverse_f))
    # the per-run part may not exceed what the replicates' spread leaves room for
    cap = replicate_variance / mean_inverse_f
    if within_df:
        per_run = min(within / within_df, cap)  # fine-tuning effect and example noise together
        examples = min(measured, per_run)
        finetuning = per_run - examples
    else:
        per_run = examples = min(measured, cap)
        finetuning = None
    pretraining = max(replicate_variance - per_run * mean_inverse_f, 0.0)
    return Components(
        pretraining=pretraining,
        finetuning=finetuning,
        examples=examples,
        examples_measured=measured,
        replicate_variance=replicate_variance,
        df=between_df,
        rows=len(values),
        replicates=replicates,
        finetune_seeds=round(1 / mean_inverse_f, 6),
    )


def power(components: Components, difference: float, pretrain_seeds: int, finetune_seeds: int = 1,
          level: float = 0.05) -> float:  # fmt: skip
    """Probability that compare's test finds ``difference`` between two rows of this design."""
    return welch_power(difference, components.variance(finetune_seeds), pretrain_seeds, level)


def plan(
    components: Components,
    pretrain_seeds,
    finetune_seeds,
    effect: float | None = None,
    target: float = 0.8,
    level: float = 0.05,
) -> dict:
    """Per design (pretraining seeds x fine-tuning seeds per row): the smallest difference detected
    with probability ``target``; with ``effect``, per fine-tuning seeds the pretraining seeds it needs."""
    designs = [
        {
            "pretrain_seeds": p,
            "finetune_seeds": f,
            "replicate_sd": math.sqrt(components.variance(f)),
            "detectable": detectable_difference(components.variance(f), p, target, level),
        }
        for f in finetune_seeds
        for p in pretrain_seeds
    ]
    out = {"designs": designs}
    if effect is not None:
        out["needed"] = [
            {
                "finetune_seeds": f,
                "effect": effect,
                "pretrain_seeds": replicates_needed(abs(effect), components.variance(f), target, level),
            }
            for f in finetune_seeds
        ]
    return out
