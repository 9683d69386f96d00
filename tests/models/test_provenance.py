import copy
import json

from bert_helu.models.provenance import pretraining_provenance, recipe_fingerprint
from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS


def config(**changes):
    cfg = copy.deepcopy(PRETRAIN_DEFAULTS)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = cfg
        for part in parents:
            node = node[part]
        node[last] = value
    return cfg


def test_fingerprint_ignores_seed_activation_and_operational_settings_but_not_the_recipe():
    base = recipe_fingerprint(config())
    same = [
        config(seed=43),
        config(activation="helu:alpha=0.05"),
        config(logging__progress_bar=False, train__cpu_threads=1, train__checkpoint_every_minutes=5.0),
        config(data__cache_dir="/elsewhere", telemetry__every=7, train__eval_batches=4),
        config(train__micro_batch_size=8, train__compile=True, train__max_bad_steps=9),
    ]
    assert all(recipe_fingerprint(c) == base for c in same)
    different = [
        config(train__budget_hours=0.5),
        config(train__lr=2e-4),
        config(data__seed=1),
        config(data__num_proc=8),  # the prepared corpus's document order follows it
    ]
    assert all(recipe_fingerprint(c) != base for c in different)
    assert len(base) == 32


def write_run(root, name, seed, activation="gelu"):
    (root / name / "final").mkdir(parents=True)
    cfg = config(seed=seed, activation=activation)
    (root / name / "summary.json").write_text(json.dumps({"activation": activation, "config": cfg}))
    return root / name / "final"


def test_provenance_comes_from_the_run_summary_beside_the_checkpoint(tmp_path):
    s42, s43 = write_run(tmp_path, "gelu-s42", 42), write_run(tmp_path, "gelu-s43", 43)
    a, b = pretraining_provenance(s42, "gelu"), pretraining_provenance(s43)
    assert (a["seed"], b["seed"]) == (42, 43) and a["recipe"] == b["recipe"]
    assert a["summary"] == str(tmp_path / "gelu-s42" / "summary.json")


def test_stock_checkpoints_or_a_summary_of_another_activation_give_no_provenance(tmp_path):
    unknown = {"seed": None, "recipe": None, "summary": None}
    (tmp_path / "minilm").mkdir()
    assert pretraining_provenance(tmp_path / "minilm") == unknown
    assert pretraining_provenance(write_run(tmp_path, "x", 1), activation="relu") == unknown
    (tmp_path / "broken" / "final").mkdir(parents=True)
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    assert pretraining_provenance(tmp_path / "broken" / "final") == unknown
