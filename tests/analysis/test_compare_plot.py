"""glue_eval compare --plot: the forest plot draws the comparison compare computed, and nothing else."""

import contextlib
import io
import json
import zlib

import numpy as np
import pytest

from bert_helu.analysis import plots
from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import from_eval, write_predictions
from glue_eval import significance
from glue_eval.__main__ import main
from glue_eval.compare import columns_of
from glue_eval.results import AVERAGES, load_results, summarise

N = 300
GOLD = np.random.default_rng(0).integers(0, 2, N)


def write_result(root, run, task, seed, skill):
    """One run's result and predictions: right on about ``skill`` of the examples."""
    draw = np.random.default_rng([zlib.crc32(f"{run}/{task}".encode()), seed])
    preds = np.where(draw.random(N) < skill, GOLD, 1 - GOLD)
    stored = from_eval(np.arange(N), preds, GOLD, None, regression=False)
    folder = root / run / task / f"seed{seed}"
    folder.mkdir(parents=True)
    write_predictions(folder / "predictions.npz", stored)
    record = {"run": run, "task": task, "seed": seed, "checkpoint": f"runs/{run}/final",
              "activation": run, "predictions": "predictions.npz", "pretraining": None,
              "metrics": compute_metrics(["accuracy"], stored.prediction, stored.label)}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """gelu (baseline), helu (far better on RTE, alike on SST-2), relu (alike everywhere)."""
    root = tmp_path_factory.mktemp("results")
    for seed in (1, 2):
        for task in ("rte", "sst2"):
            write_result(root, "gelu", task, seed, 0.6)
            write_result(root, "helu", task, seed, 0.9 if task == "rte" else 0.6)
            write_result(root, "relu", task, seed, 0.6)
    return root


def glue_eval(*args):
    try:
        return main([*map(str, args)])
    except SystemExit as exit_:
        return exit_.code


def test_the_figure_draws_compares_intervals_and_marks(results, tmp_path):
    figure = tmp_path / "figs" / "compare.png"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = glue_eval("compare", results, "--baseline", "gelu", "--resamples", 500, "--format", "json",
                         "--plot", figure)  # fmt: skip
    assert code == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in figure.parent.iterdir()] == ["compare.png"]  # no temporary left behind
    height, width, _ = plots._pyplot().imread(figure).shape
    assert width > 600 and height > 300

    # the points the figure draws, from the Comparison objects compare computes
    settings = significance.Settings(resamples=500)
    rows = summarise(load_results([results]))
    baseline = significance.find_row(rows, "gelu")
    comparisons = significance.compare(rows, baseline, columns_of(rows), sorted(AVERAGES), settings)
    points = plots.forest_points(comparisons, settings.level)
    printed = {(c["row"], c["column"]): c for c in json.loads(out.getvalue())["comparisons"]}
    assert {(p.row, p.column) for p in points} == set(printed)
    for p in points:
        c = printed[(p.row, p.column)]
        assert (p.difference, p.low, p.high, p.significant) == (
            c["difference"], c["low"], c["high"], c["significant"],
        )  # fmt: skip
    by = {(p.row, p.column): p for p in points}
    assert by[("helu (helu)", "RTE")].significant and by[("helu (helu)", "RTE")].low > 15
    assert not any(p.significant for p in points if p.row == "relu (relu)")

    # one line per column, top to bottom in compare's order; each row's point inside its column's band
    columns = list(dict.fromkeys(c.label for c in comparisons))
    assert columns[:2] == ["SST-2", "RTE"] and all(c.startswith("Avg") for c in columns[2:])
    for p in points:
        assert abs(p.y - columns.index(p.column)) < 0.5
    assert by[("helu (helu)", "RTE")].y != by[("relu (relu)", "RTE")].y


def test_a_failed_drawing_leaves_the_previous_figure(results, tmp_path, monkeypatch):
    figure = tmp_path / "compare.png"
    figure.write_bytes(b"the previous figure")
    from matplotlib.figure import Figure

    savefig = Figure.savefig

    def write_then_fail(self, *args, **kwargs):
        savefig(self, *args, **kwargs)
        raise RuntimeError("disk went away")

    monkeypatch.setattr(Figure, "savefig", write_then_fail)
    with pytest.raises(RuntimeError):
        glue_eval("compare", results, "--baseline", "gelu", "--resamples", 200, "--plot", figure)
    assert figure.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["compare.png"]


def test_a_bad_plot_path_is_a_one_line_error(results, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path, says in [
        (tmp_path / "compare.pdf", "ending in .png"),
        (blocker / "compare.png", "cannot write there"),
        (tmp_path, "ending in .png"),
    ]:
        assert glue_eval("compare", results, "--baseline", "gelu", "--resamples", 200, "--plot", path) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --plot ") and says in err and err.count("\n") == 1
    (tmp_path / "dir.png").mkdir()
    assert glue_eval("compare", results, "--baseline", "gelu", "--plot", tmp_path / "dir.png") == 2
    assert "is a directory" in capsys.readouterr().err
