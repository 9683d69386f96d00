import pytest

from bert_helu.runtime.config import load_config
from bert_helu.runtime.errors import UserError

DEFAULTS = {"seed": 42, "train": {"lr": 1.0e-4, "steps": 10, "amp": True, "betas": [0.9, 0.98], "name": "x"}}


def test_yaml_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 5e-5\n  steps: 3\n")
    cfg = load_config(DEFAULTS, recipe, ["train.steps=7", "train.betas=[0.8, 0.9]", "seed=1"])
    assert cfg.train.lr == 5e-5 and isinstance(cfg.train.lr, float)  # YAML's "5e-5" is a string
    assert cfg.train.steps == 7 and cfg.train.betas == [0.8, 0.9] and cfg.seed == 1
    assert DEFAULTS["train"]["steps"] == 10  # defaults untouched


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key 'train.lrr'"),
        ("train.steps=abc", "'train.steps' must be int"),
        ("train.amp=1", "'train.amp' must be true or false"),
        ("train.lr=fast", "'train.lr' must be float"),
        ("train", "must be written dotted.key=value"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(UserError, match=message):
        load_config(DEFAULTS, None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(DEFAULTS, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(DEFAULTS, bad)


def test_open_mapping_takes_keys_from_file_and_command_line(tmp_path):
    defaults = {**DEFAULTS, "tasks": {}}
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tasks:\n  sst2: {epochs: 2}\n  rte: {lr: 1.0e-5}\n")
    cfg = load_config(defaults, recipe, ["tasks.sst2.max_train_examples=20000", "tasks.cola.epochs=5"])
    assert cfg.tasks == {
        "sst2": {"epochs": 2, "max_train_examples": 20000},  # the file's sst2 keys are kept
        "rte": {"lr": 1.0e-5},
        "cola": {"epochs": 5},
    }
    assert cfg.tasks.sst2.epochs == 2 and defaults["tasks"] == {}
    with pytest.raises(UserError, match="'tasks' must be a mapping"):
        load_config(defaults, None, ["tasks=3"])
