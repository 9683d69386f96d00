"""docs/config.md lists every recipe key with a description, and --print-config shows the resolved recipe."""

import subprocess
import sys

import yaml
from conftest import REPO

from bert_helu.data import sources
from bert_helu.finetuning.recipe import DEFAULTS, TASK_KEYS
from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS
from bert_helu.runtime.config import load_config
from bert_helu.runtime.config_reference import Recipe, leaf_keys, recipes, render, stale, undocumented


def test_every_recipe_key_has_a_description_and_no_description_is_stale():
    for recipe in recipes():
        assert undocumented(recipe) == [], recipe.program
        assert stale(recipe) == [], recipe.program
    assert set(sources.SOURCE_KEY_HELP) == sources._KEYS


def test_a_new_key_without_a_description_is_caught():
    recipe = recipes()[0]
    grown = {**recipe.defaults, "model": {**recipe.defaults["model"], "new_width": 64}}
    assert undocumented(Recipe(recipe.program, grown, recipe.descriptions, "")) == ["model.new_width"]
    assert stale(Recipe(recipe.program, {"seed": 1}, {"seed": "x", "gone": "y"}, "")) == ["gone"]


def test_committed_config_page_is_up_to_date():
    page = (REPO / "docs" / "config.md").read_text()
    assert page == render(), "docs/config.md is stale: run python scripts/make_config_docs.py"
    for recipe in recipes():
        for key in leaf_keys(recipe.defaults):
            assert f"| `{key}` |" in page
    assert all(f"{key}: " in page for key in TASK_KEYS - set(DEFAULTS["train"]))  # per-task keys


def _run(*argv):
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pretrain_print_config_is_the_resolved_recipe_and_reads_back(tmp_path):
    out = _run("pretrain", "--config", "configs/pretrain/cpu-tiny.yaml", "--print-config",
               "--activation", "helu:alpha=0.1", "train.budget_hours=0.5")  # fmt: skip
    assert out.startswith("# resolved recipe: defaults <- configs/pretrain/cpu-tiny.yaml")
    printed = yaml.safe_load(out)
    assert printed["activation"] == "helu:alpha=0.1" and printed["train"]["budget_hours"] == 0.5
    assert printed["model"]["hidden_size"] == 128  # from the file
    assert printed["train"]["max_bad_steps"] == PRETRAIN_DEFAULTS["train"]["max_bad_steps"]  # a default
    (tmp_path / "resolved.yaml").write_text(out)
    expected = load_config(PRETRAIN_DEFAULTS, REPO / "configs/pretrain/cpu-tiny.yaml",
                           ["activation=helu:alpha=0.1", "train.budget_hours=0.5"])  # fmt: skip
    assert load_config(PRETRAIN_DEFAULTS, tmp_path / "resolved.yaml") == expected


def test_finetune_print_config_applies_flags_and_needs_no_checkpoints():
    out = _run("finetune", "--config", "configs/finetune/cpu-fast.yaml", "--print-config", "--int8",
               "train.epochs=3", "tasks.rte.lr=2e-5")  # fmt: skip
    printed = yaml.safe_load(out)
    assert printed["int8"] is True and printed["train"]["epochs"] == 3
    assert printed["tasks"]["rte"] == {"max_train_examples": 300, "lr": 2e-5}
    assert printed["logging"] == DEFAULTS["logging"]
