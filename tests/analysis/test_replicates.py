"""Rows of replicates: checkpoints of one pretraining recipe and activation, differing in seed."""

import json

import pytest

from glue_eval.__main__ import main
from glue_eval.results import load_results, summarise


def write(root, run, activation, task, seed, value, pretraining=None, checkpoint=None):
    record = {"run": run, "task": task, "seed": seed, "activation": activation,
              "checkpoint": checkpoint or f"runs/{run}/final", "metrics": {"accuracy": value}}  # fmt: skip
    if pretraining is not None:
        record["pretraining"] = pretraining
    path = root / run / task / f"seed{seed}" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.fixture
def replicates(tmp_path):
    """gelu and helu pretrained with seeds 42-44 (one recipe), two fine-tuning seeds each; a stock MiniLM."""
    accuracy = {"gelu": [0.60, 0.64, 0.68], "helu:alpha=0.05": [0.62, 0.70, 0.72]}
    for activation, values in accuracy.items():
        name = activation.split(":")[0]
        for seed, value in zip((42, 43, 44), values, strict=True):
            pretraining = {
                "seed": seed,
                "recipe": "abc123abc123",
                "summary": f"runs/{name}-s{seed}/summary.json",
            }
            for ft_seed, shift in ((1, -0.01), (2, 0.01)):
                write(tmp_path, f"{name}-s{seed}", activation, "rte", ft_seed, value + shift, pretraining)
    for ft_seed in (1, 2):
        write(
            tmp_path, "minilm", "gelu", "rte", ft_seed, 0.66, {"seed": None, "recipe": None, "summary": None}
        )
    return tmp_path


def rows(path, **kw):
    return {r.name: r for r in summarise(load_results([path]), **kw)}


def test_same_recipe_and_activation_different_seeds_form_one_row_of_replicates(replicates):
    found = rows(replicates)
    assert set(found) == {"gelu-s* (gelu)", "helu-s* (helu:alpha=0.05)", "minilm (gelu)"}
    gelu = found["gelu-s* (gelu)"].cell("rte", "accuracy")
    # one value per replicate: the mean over its two fine-tuning seeds
    assert gelu.values == pytest.approx({"gelu-s42": 60.0, "gelu-s43": 64.0, "gelu-s44": 68.0})
    assert gelu.mean == pytest.approx(64.0) and gelu.std == pytest.approx(4.0) and gelu.count == "3×2"
    assert [m.seed for m in found["gelu-s* (gelu)"].members] == [42, 43, 44]
    minilm = found["minilm (gelu)"].cell("rte", "accuracy")
    assert minilm.values == pytest.approx({1: 66.0, 2: 66.0}) and minilm.count == "2"  # seeds, as before


def test_median_by_flag_and_averages_per_replicate(replicates):
    helu = rows(replicates, center="median")["helu-s* (helu:alpha=0.05)"]
    assert helu.cell("rte", "accuracy").value == pytest.approx(70.0)  # median of 62, 70, 72
    assert helu.avg.values == pytest.approx({"helu-s42": 62.0, "helu-s43": 70.0, "helu-s44": 72.0})
    assert helu.avg.value == pytest.approx(70.0) and helu.avg.count == "3×2"


def test_group_by_overrides_the_rule(replicates):
    assert len(rows(replicates, group_by="checkpoint")) == 7
    by_activation = rows(replicates, group_by="activation")
    assert set(by_activation) == {"gelu", "helu:alpha=0.05"}
    assert len(by_activation["gelu"].members) == 4  # MiniLM joins the gelu row
    assert set(rows(replicates, group_by="pattern:-s[0-9]+$")) == {
        "gelu (gelu)",
        "helu (helu:alpha=0.05)",
        "minilm (gelu)",
    }


def test_bad_group_by_is_a_one_line_error(replicates, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["table", str(replicates), "--group-by", "pattern:("])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: --group-by 'pattern:(': not a regular expression")
    with pytest.raises(SystemExit):
        main(["table", str(replicates), "--group-by", "seed"])
    assert "expected recipe, activation, checkpoint or pattern:REGEX" in capsys.readouterr().err


def test_the_table_shows_how_rows_group_and_what_n_counts(replicates, capsys):
    main(["table", str(replicates)])
    out = capsys.readouterr().out
    gelu = next(line for line in out.splitlines() if line.startswith("| gelu-s*"))
    assert "64.0 ± 4.0 (3×2)" in gelu
    assert "Rows (--group-by recipe): checkpoints of one pretraining recipe and activation" in out
    assert "gelu-s* (gelu) = gelu-s42, gelu-s43, gelu-s44 (pretraining seeds 42, 43, 44)." in out
    assert "(r×s) = r replicates × s seeds each" in out


def test_old_results_find_their_pretraining_in_the_run_dir_if_it_is_still_there(tmp_path):
    for seed in (1, 2):
        run = tmp_path / "runs" / f"relu-{seed}"
        (run / "final").mkdir(parents=True)
        config = {"seed": seed, "activation": "relu", "train": {"lr": 1e-3}}
        (run / "summary.json").write_text(json.dumps({"activation": "relu", "config": config}))
        write(
            tmp_path / "results",
            f"relu-{seed}",
            "relu",
            "rte",
            7,
            0.5 + seed / 10,
            checkpoint=str(run / "final"),
        )
    found = rows(tmp_path / "results")
    assert list(found) == ["relu-* (relu)"] and found["relu-* (relu)"].cell("rte", "accuracy").n == 2


def test_replicates_that_differ_only_in_micro_batch_size_form_one_row(tmp_path):
    # the global batch is the recipe's; micro-batches only cut it for memory (identity.LOGISTICS)
    for seed, micro_batch in ((1, 32), (2, 8)):
        run = tmp_path / "runs" / f"relu-{seed}"
        (run / "final").mkdir(parents=True)
        train = {"lr": 1e-3, "global_batch_size": 64, "micro_batch_size": micro_batch}
        config = {"seed": seed, "activation": "relu", "train": train}
        (run / "summary.json").write_text(json.dumps({"activation": "relu", "config": config}))
        write(tmp_path / "results", f"relu-{seed}", "relu", "rte", 7, 0.5, checkpoint=str(run / "final"))
    assert list(rows(tmp_path / "results")) == ["relu-* (relu)"]
