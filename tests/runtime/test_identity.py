"""One list of the recipe keys that do not change the trained model, read by run identity (what a
resumed run may change) and by replicate grouping (which runs are one recipe)."""

import copy

import pytest

from bert_helu.models.provenance import recipe_fingerprint
from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS
from bert_helu.runtime.config import Config
from bert_helu.runtime.identity import LOGISTICS, MEASUREMENT, NOT_IN_MODEL, pretrain_identity


def changed(dotted: str):
    """The default recipe with ``dotted`` (a value or a whole section) set to something else."""
    cfg = copy.deepcopy(PRETRAIN_DEFAULTS)
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = {"changed": True} if isinstance(node[last], dict) else ["changed"]
    return Config(cfg)


def identity(cfg) -> dict:
    return pretrain_identity(cfg, "gelu", "no", corpus_fingerprint="c0ffee")


@pytest.mark.parametrize("dotted", NOT_IN_MODEL)
def test_replicates_differing_only_in_a_key_that_does_not_change_the_model_share_a_recipe(dotted):
    assert recipe_fingerprint(changed(dotted)) == recipe_fingerprint(PRETRAIN_DEFAULTS)


@pytest.mark.parametrize("dotted", LOGISTICS)
def test_a_resumed_run_may_change_its_logistics(dotted):
    assert identity(changed(dotted)) == identity(Config(copy.deepcopy(PRETRAIN_DEFAULTS)))


@pytest.mark.parametrize("dotted", MEASUREMENT)
def test_a_run_measured_otherwise_is_another_run_but_the_same_recipe(dotted):
    assert identity(changed(dotted)) != identity(Config(copy.deepcopy(PRETRAIN_DEFAULTS)))
    assert recipe_fingerprint(changed(dotted)) == recipe_fingerprint(PRETRAIN_DEFAULTS)


@pytest.mark.parametrize("dotted", ["train.lr", "data.num_proc", "model.hidden_size"])
def test_keys_that_change_the_model_change_both(dotted):
    assert identity(changed(dotted)) != identity(Config(copy.deepcopy(PRETRAIN_DEFAULTS)))
    assert recipe_fingerprint(changed(dotted)) != recipe_fingerprint(PRETRAIN_DEFAULTS)
