import csv
import io
import json

import pytest

from bert_helu import UserError
from glue_eval.__main__ import main
from glue_eval.results import load_results, summarise

# Two checkpoints, two seeds; metric values chosen so means/stds/averages are easy to check by hand.
HELU = {
    "mnli": {"accuracy": [0.80, 0.82]},
    "mnli_mismatched": {"accuracy": [0.81, 0.81]},
    "sst2": {"accuracy": [0.90, 0.92]},
    "stsb": {"pearson": [0.86, 0.86], "spearmanr": [0.84, 0.86]},
    "mrpc": {"f1": [0.88, 0.90], "accuracy": [0.84, 0.86]},
    "rte": {"accuracy": [0.60, 0.64]},
    "wnli": {"accuracy": [0.56, 0.56]},
    "cola": {"matthews_correlation": [0.30, 0.40]},
}
GELU = {
    "mnli": {"accuracy": [0.78, 0.78]},
    "mnli_mismatched": {"accuracy": [0.79, 0.79]},
    "sst2": {"accuracy": [0.93, 0.93]},
    "stsb": {"pearson": [0.80, 0.80], "spearmanr": [0.80, 0.80]},
    "mrpc": {"f1": [0.85, 0.85], "accuracy": [0.80, 0.80]},
    "rte": {"accuracy": [0.55, 0.55]},
    "wnli": {"accuracy": [0.50, 0.50]},
    "cola": {"matthews_correlation": [0.20, 0.20]},
}


def write_results(root, run, activation, table, int8_shift=0.0, seeds=(42, 43)):
    for task, metrics in table.items():
        for i, seed in enumerate(seeds):
            values = {m: v[i] for m, v in metrics.items()}
            int8 = {m: v + int8_shift * (i + 1) for m, v in values.items()}
            record = {"run": run, "task": task, "seed": seed, "checkpoint": f"runs/{run}/final",
                      "activation": activation, "metrics": values, "int8": {"metrics": int8}}  # fmt: skip
            path = root / run / task / f"seed{seed}" / "results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))


@pytest.fixture
def results_dir(tmp_path):
    write_results(tmp_path, "helu", "helu:alpha=0.05", HELU, int8_shift=-0.01)
    write_results(tmp_path, "gelu", "gelu", GELU, int8_shift=-0.02)
    return tmp_path


def rows_by_run(results_dir, **kw):
    return {r.run: r for r in summarise(load_results([results_dir]), **kw)}


def test_cells_are_percent_mean_std_and_seed_count(results_dir):
    helu = rows_by_run(results_dir)["helu"]
    rte = helu.cell("rte", "accuracy")
    assert rte.mean == pytest.approx(62.0) and rte.std == pytest.approx(2.8284, abs=1e-3) and rte.n == 2
    assert helu.name == "helu (helu:alpha=0.05)"


def test_paper_average_is_mean_of_nine_columns_without_cola_and_says_what_is_missing(results_dir):
    helu = rows_by_run(results_dir, average="paper")["helu"]
    # seed 42: MNLI-m 80, MNLI-mm 81, SST-2 90, STS-B sp 84, MRPC F1 88, RTE 60, WNLI 56 -> 539/7
    # seed 43: 82, 81, 92, 86, 90, 64, 56 -> 551/7
    assert helu.avg.values == pytest.approx({42: 539 / 7, 43: 551 / 7})
    assert helu.avg_missing == ["QQP F1", "QNLI"]
    assert "CoLA MCC" not in helu.avg_covers


def test_cramming_average_drops_wnli_and_uses_cola_and_stsb_pearson(results_dir):
    gelu = rows_by_run(results_dir, average="cramming")["gelu"]
    # MNLI-m 78, MNLI-mm 79, SST-2 93, CoLA 20, STS-B pearson 80, MRPC F1 85, RTE 55
    assert gelu.avg.mean == pytest.approx((78 + 79 + 93 + 20 + 80 + 85 + 55) / 7)


def test_glue_average_averages_two_metric_tasks_and_mnli_first(results_dir):
    gelu = rows_by_run(results_dir, average="glue")["gelu"]
    # CoLA 20, SST-2 93, MRPC (85+80)/2, STS-B (80+80)/2, MNLI (78+79)/2, RTE 55, WNLI 50
    assert gelu.avg.mean == pytest.approx((20 + 93 + 82.5 + 80 + 78.5 + 55 + 50) / 7)
    assert gelu.avg_covers == ["CoLA", "SST-2", "MRPC", "STS-B", "MNLI", "RTE", "WNLI"]


def test_int8_delta_is_int8_minus_full_precision_per_seed(results_dir):
    helu = rows_by_run(results_dir, delta="int8")["helu"]
    sst2 = helu.cell("sst2", "accuracy")
    assert sst2.values == pytest.approx({42: -1.0, 43: -2.0})
    assert helu.avg.mean == pytest.approx(-1.5)


def test_markdown_table_bolds_best_underlines_second_and_marks_na(results_dir, capsys):
    assert main(["table", str(results_dir), "--format", "md"]) == 0
    out = capsys.readouterr().out
    header, rule, *rows = out.split("\n\n")[0].splitlines()
    assert header.split(" | ")[1:4] == ["MNLI-m", "MNLI-mm", "QQP F1"] and header.endswith(
        "CoLA MCC | Avg (paper) |"
    )
    cells = {r.split(" | ")[0].strip("| "): r.split(" | ")[1:] for r in rows}
    assert cells["helu (helu:alpha=0.05)"][0] == "**81.0 ± 1.4** (2)"  # MNLI-m best
    assert cells["gelu (gelu)"][0] == "<u>78.0 ± 0.0</u> (2)"
    assert cells["gelu (gelu)"][4] == "**93.0 ± 0.0** (2)"  # SST-2: GELU best
    assert cells["helu (helu:alpha=0.05)"][2] == "n/a"  # QQP
    assert (
        "Avg covers: MNLI-m, MNLI-mm, SST-2, STS-B Spearman, MRPC F1, RTE, WNLI (no results: QQP F1, QNLI)."
        in out
    )


def test_csv_and_latex_print_the_same_numbers(results_dir, capsys):
    main(["table", str(results_dir), "--format", "csv", "--average", "glue"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    helu = next(r for r in rows if r["run"] == "helu")
    assert helu["RTE mean"] == "62.00" and helu["RTE n"] == "2" and helu["QQP F1 n"] == "0"
    assert helu["avg missing"] == "QQP;QNLI"
    main(["table", str(results_dir), "--format", "latex", "--average", "glue"])
    tex = capsys.readouterr().out
    assert r"\textbf{62.0$\pm$2.8}" in tex and r"\underline{55.0$\pm$0.0}" in tex
    assert tex.startswith(r"\begin{tabular}") and "helu (helu:alpha=0.05)" in tex


def test_delta_table_is_signed(results_dir, capsys):
    main(["table", str(results_dir), "--delta", "int8"])
    out = capsys.readouterr().out
    assert "**-1.5 ± 0.7** (2)" in out and "INT8 minus full precision" in out


def test_no_results_or_broken_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no results.json"):
        load_results([tmp_path])
    (tmp_path / "results.json").write_text('{"task": "rte"}')
    with pytest.raises(UserError, match="results.json: not a fine-tuning result"):
        load_results([tmp_path])


def test_single_seed_cell_shows_no_spread_and_averages_over_different_tasks_are_not_ranked(tmp_path, capsys):
    write_results(tmp_path, "relu", "relu", {"rte": {"accuracy": [0.5]}}, seeds=(7,))
    write_results(
        tmp_path, "gelu", "gelu", {"rte": {"accuracy": [0.6]}, "wnli": {"accuracy": [0.4]}}, seeds=(7,)
    )
    main(["table", str(tmp_path)])
    out = capsys.readouterr().out
    relu_row = next(line for line in out.splitlines() if line.startswith("| relu"))
    assert relu_row.split(" | ")[8] == "<u>50.0</u> (1)"  # RTE, one seed: no "± 0.0"
    assert relu_row.endswith("| 50.0 (1) |")  # Avg over RTE only vs RTE+WNLI: not ranked
    assert "Avg covers for relu (relu): RTE" in out


def test_the_same_run_in_two_results_dirs_is_named_not_dropped(tmp_path, capsys):
    write_results(tmp_path / "a", "helu", "helu:alpha=0.05", {"rte": {"accuracy": [0.6]}}, seeds=(7,))
    write_results(tmp_path / "b", "helu", "helu:alpha=0.05", {"rte": {"accuracy": [0.7]}}, seeds=(7,))
    assert exit_code(["table", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    first, second = (tmp_path / d / "helu" / "rte" / "seed7" / "results.json" for d in "ab")
    assert err == (
        f"error: the same run (helu (helu:alpha=0.05), rte, seed 7) is in both {first} and {second}; "
        "pass only one of them"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": "forty-two"}, "seed must be an integer, got 'forty-two'"),
        ({"seed": 4.5}, "seed must be an integer, got 4.5"),
        ({"metrics": {"accuracy": float("nan")}}, "metrics.accuracy must be a finite number, got nan"),
        (
            {"int8": {"metrics": {"accuracy": float("inf")}}},
            "int8.metrics.accuracy must be a finite number, got inf",
        ),
        ({"metrics": {"accuracy": "high"}}, "metrics.accuracy must be a finite number, got 'high'"),
    ],
)
def test_results_with_a_bad_seed_or_metric_are_one_line_errors(tmp_path, capsys, change, message):
    write_results(tmp_path, "helu", "helu", {"rte": {"accuracy": [0.6]}}, seeds=(7,))
    path = tmp_path / "helu" / "rte" / "seed7" / "results.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))  # NaN as JSON's NaN
    assert exit_code(["table", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: {message}"


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code
