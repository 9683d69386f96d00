import math

import pytest

from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS
from bert_helu.pretraining.schedules import SCHEDULES, Schedule
from bert_helu.runtime.errors import UserError

RECIPE_KEYS = {"name": "scheduler", "warmup": "warmup_fraction", "min_ratio": "min_lr_ratio"}
RECIPE_KEYS["progress"] = "schedule_progress"


def schedule(name=None, **changes) -> Schedule:
    """The recipe's default schedule with some settings changed (by their Schedule names)."""
    if name is not None:
        changes["name"] = name
    train = {**PRETRAIN_DEFAULTS["train"], **{RECIPE_KEYS[k]: v for k, v in changes.items()}}
    return Schedule.from_recipe(train)


def test_one_cycle_is_cramming_triangle_peaking_at_half():
    s = schedule("one_cycle")
    assert [s(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])


def test_linear_warmup_then_decay_to_zero():
    s = schedule("linear", warmup=0.1)
    assert s(0.05) == pytest.approx(0.5)
    assert s(0.1) == pytest.approx(1.0)
    assert s(0.55) == pytest.approx(0.5)
    assert s(1.0) == 0.0


def test_triangle_and_cosine_end_at_the_floor():
    for name in ("triangle", "cosine"):
        s = schedule(name, warmup=0.2, min_ratio=0.1)
        assert s(0.1) == pytest.approx(0.5)
        assert s(0.2) == pytest.approx(1.0)
        assert s(1.0) == pytest.approx(0.1)
    assert schedule("cosine", warmup=0.0)(0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_stays_in_unit_interval_and_clamps_progress(name):
    s = schedule(name, warmup=0.05, min_ratio=0.0)
    values = [s(i / 200) for i in range(201)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values) == pytest.approx(1.0, abs=0.02)
    assert s(1.7) == s(1.0) and s(-1) == s(0.0)  # a run past its budget never gets a negative lr


def test_progress_is_steps_or_elapsed_over_budget():
    assert schedule(progress="steps").progress_of(50, 200, elapsed=999.0, budget_s=1000.0) == 0.25
    assert schedule(progress="time").progress_of(50, 200, elapsed=250.0, budget_s=1000.0) == 0.25
    with pytest.raises(UserError, match="budget_hours"):
        schedule(progress="time").progress_of(1, 100, 1.0, None)
    with pytest.raises(UserError, match="max_steps"):
        schedule(progress="steps").progress_of(1, 0, 1.0, 10.0)


@pytest.mark.parametrize(
    "kwargs", [dict(name="budget-one-cycle"), dict(progress="tokens"), dict(warmup=1.0), dict(min_ratio=2.0)]
)
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(UserError):
        schedule(**kwargs)


def test_cosine_midpoint_after_warmup():
    s = schedule("cosine", warmup=0.2)
    assert s(0.6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
