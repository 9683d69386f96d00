"""GLUE test sets and leaderboard submissions: every task's test format, the server's file names, index
columns and label strings, the seed choice, and `finetune --predict-test` end to end."""

import json
import shutil
import zipfile

import pytest
from conftest import FIXTURES
from helpers.programs import FAST, SAMPLE, finetune, tiny_checkpoint

from bert_helu import UserError
from bert_helu.glue.submission import PREDICTIONS_DIR, write_submission
from bert_helu.glue.tasks import TASKS
from bert_helu.glue.test_sets import SUBMISSION_FILES, prediction_lines, read_predictions, read_test_tsv

FORMAT = FIXTURES / "glue_format"
SERVER_FILES = {"CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "QNLI.tsv",
                "RTE.tsv", "WNLI.tsv", "QQP.tsv", "AX.tsv"}  # fmt: skip
LABELS = {
    "cola": {"0", "1"}, "sst2": {"0", "1"}, "mrpc": {"0", "1"}, "qqp": {"0", "1"}, "wnli": {"0", "1"},
    "mnli": {"entailment", "neutral", "contradiction"}, "qnli": {"entailment", "not_entailment"},
    "rte": {"entailment", "not_entailment"},
}  # fmt: skip


def glue_with_every_task(root):
    """The bundled sample (CoLA, SST-2, MRPC, STS-B, RTE) plus the format fixtures of the other tasks."""
    glue = root / "glue_data"
    shutil.copytree(SAMPLE, glue)
    for folder in ("MNLI", "QQP", "QNLI", "WNLI", "diagnostic"):
        shutil.copytree(FORMAT / folder, glue / folder)
    return glue


def test_the_server_file_names_and_the_mnli_model_for_ax():
    assert {s.file for s in SUBMISSION_FILES} == SERVER_FILES
    assert {s.file for s in SUBMISSION_FILES if s.task == "mnli"} == {"MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"}
    assert {s.task for s in SUBMISSION_FILES} == set(TASKS)


@pytest.mark.parametrize("sub", SUBMISSION_FILES, ids=lambda s: s.file)
def test_every_test_format_reads_with_its_index_column(tmp_path, sub):
    path = glue_with_every_task(tmp_path) / sub.path
    ds = read_test_tsv(path, sub)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header, first = lines[0].split("\t"), lines[1].split("\t")
    assert len(ds) == len([line for line in lines[1:] if line.strip()])
    index_col = "id" if sub.task == "qqp" else "index"
    assert ds[0]["index"] == first[header.index(index_col)]
    assert ds[0]["text_a"] == first[header.index(sub.text_fields[0])]
    if len(sub.text_fields) > 1:
        assert ds[0]["text_b"] == first[header.index(sub.text_fields[1])]
    else:
        assert ds[0]["text_b"] is None


def test_a_test_file_without_index_numbers_rows_and_bad_files_name_themselves(tmp_path):
    rte = next(s for s in SUBMISSION_FILES if s.file == "RTE.tsv")
    no_index = tmp_path / "test.tsv"
    no_index.write_text("sentence1\tsentence2\na\tb\nc\td\n")
    assert read_test_tsv(no_index, rte)["index"] == ["0", "1"]
    no_column = tmp_path / "bad.tsv"
    no_column.write_text("index\tsentence1\n0\ta\n")
    with pytest.raises(UserError, match=r"bad.tsv: missing column 'sentence2'"):
        read_test_tsv(no_column, rte)
    short = tmp_path / "short.tsv"
    short.write_text("index\tsentence1\tsentence2\n0\ta\tb\n1\tc\n")
    with pytest.raises(UserError, match=r"short.tsv: row 3: 2 fields, the header has 3"):
        read_test_tsv(short, rte)


@pytest.mark.parametrize("sub", SUBMISSION_FILES, ids=lambda s: s.file)
def test_prediction_files_use_the_servers_label_strings(sub):
    task = TASKS[sub.task]
    if task.is_regression:
        text = prediction_lines(sub, ["7", "8", "9"], [-0.4, 2.34567, 6.1])
        assert text == "index\tprediction\n7\t0.000\n8\t2.346\n9\t5.000\n"  # clipped to [0, 5]
        return
    ids = list(range(task.num_labels))
    text = prediction_lines(sub, [str(10 + i) for i in ids], ids)
    rows = read_predictions_text(text)
    assert [i for i, _ in rows] == [str(10 + i) for i in ids]
    assert {p for _, p in rows} == LABELS[sub.task]
    if sub.task in ("mnli", "qnli", "rte"):  # label ids as nyu-mll/glue numbers them
        assert rows[0][1] == "entailment"


def read_predictions_text(text):
    lines = text.splitlines()
    assert lines[0] == "index\tprediction"
    return [tuple(line.split("\t")) for line in lines[1:]]


def fake_run(out, run, task, seed, score, files):
    """What a finished --predict-test run leaves: results.json and its prediction files."""
    run_dir = out / run / task / f"seed{seed}"
    metric = TASKS[task].metrics[0]
    (run_dir / PREDICTIONS_DIR).mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"metrics": {metric: score}}))
    for name in files:
        (run_dir / PREDICTIONS_DIR / name).write_text(f"index\tprediction\n0\tseed{seed}\n")


def test_submission_takes_the_best_seed_or_the_chosen_one(tmp_path):
    fake_run(tmp_path, "helu", "rte", 1, 0.55, ["RTE.tsv"])
    fake_run(tmp_path, "helu", "rte", 2, 0.61, ["RTE.tsv"])
    fake_run(tmp_path, "helu", "rte", 3, 0.61, ["RTE.tsv"])  # a tie: the smaller seed wins
    fake_run(tmp_path, "helu", "mnli", 1, 0.40, ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"])
    fake_run(tmp_path, "helu", "mnli", 2, 0.45, ["MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv"])
    (tmp_path / "helu" / "cola" / "seed1").mkdir(parents=True)  # a run killed midway: no results.json

    best = write_submission(tmp_path, "helu")
    assert {f: i["seed"] for f, i in best.sources.items()} == {
        "RTE.tsv": 2, "MNLI-m.tsv": 2, "MNLI-mm.tsv": 2, "AX.tsv": 2,
    }  # fmt: skip
    assert set(best.missing) == SERVER_FILES - set(best.sources)
    with zipfile.ZipFile(best.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(best.sources)  # at the top level, as the server wants
        assert archive.read("AX.tsv").decode() == "index\tprediction\n0\tseed2\n"
    recorded = json.loads((tmp_path / "helu" / "submission.json").read_text())
    assert recorded["files"]["RTE.tsv"] == {"seed": 2, "task": "rte", "dev_accuracy": 0.61}

    chosen = write_submission(tmp_path, "helu", seed=1)
    assert {f: i["seed"] for f, i in chosen.sources.items()} == dict.fromkeys(best.sources, 1)
    only3 = write_submission(tmp_path, "helu", seed=3)
    assert set(only3.sources) == {"RTE.tsv"} and "seeds with predictions: 1, 2" in only3.missing["AX.tsv"]
    assert sorted(p.name for p in (tmp_path / "helu" / "submission").iterdir()) == ["RTE.tsv"]


def test_predict_test_on_the_bundled_sample_and_fixtures_writes_every_server_file(tmp_path, minilm_tokenizer):
    glue = glue_with_every_task(tmp_path)
    ckpt = tiny_checkpoint(tmp_path / "runs" / "helu" / "final", minilm_tokenizer)
    out = tmp_path / "results"
    code = finetune("--checkpoints", ckpt, "--tasks", "all", "--seeds", 1, 2, "--glue-dir", glue,
                    "--output-dir", out, "--predict-test", *FAST, "train.max_train_examples=16",
                    "train.max_eval_examples=16")  # fmt: skip
    assert code == 0
    folder = out / "helu" / "submission"
    assert {p.name for p in folder.iterdir()} == SERVER_FILES
    with zipfile.ZipFile(out / "helu" / "submission.zip") as archive:
        assert set(archive.namelist()) == SERVER_FILES
    for sub in SUBMISSION_FILES:
        rows = read_predictions(folder / sub.file)
        expected = read_test_tsv(glue / sub.path, sub)
        assert [i for i, _ in rows] == expected["index"], sub.file  # every test row, in the file's order
        values = {p for _, p in rows}
        if sub.task == "stsb":
            assert all(0.0 <= float(v) <= 5.0 for v in values)
        else:
            assert values <= LABELS[sub.task], sub.file
    # both seeds predicted; the submission names the better one per task
    assert (out / "helu" / "rte" / "seed1" / PREDICTIONS_DIR / "RTE.tsv").is_file()
    assert (out / "helu" / "rte" / "seed2" / PREDICTIONS_DIR / "RTE.tsv").is_file()
    sources = json.loads((out / "helu" / "submission.json").read_text())["files"]
    scores = {s: json.loads((out / "helu" / "rte" / f"seed{s}" / "results.json").read_text()) for s in (1, 2)}
    best = max((1, 2), key=lambda s: (scores[s]["metrics"]["accuracy"], -s))
    assert sources["RTE.tsv"]["seed"] == best


def test_runs_finished_without_predictions_are_redone_for_them(tmp_path, minilm_tokenizer):
    ckpt = tiny_checkpoint(tmp_path / "runs" / "gelu" / "final", minilm_tokenizer, activation="gelu")
    out = tmp_path / "results"
    args = ["--checkpoints", ckpt, "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir", out, *FAST]
    assert finetune(*args) == 0
    assert not (out / "gelu" / "rte" / "seed42" / PREDICTIONS_DIR).exists()
    assert finetune(*args, "--predict-test") == 0
    assert (out / "gelu" / "rte" / "seed42" / PREDICTIONS_DIR / "RTE.tsv").is_file()
    before = (out / "gelu" / "rte" / "seed42" / "results.json").stat().st_mtime_ns
    assert finetune(*args, "--predict-test") == 0  # now finished: nothing is redone
    assert (out / "gelu" / "rte" / "seed42" / "results.json").stat().st_mtime_ns == before
    assert sorted(p.name for p in (out / "gelu" / "submission").iterdir()) == ["RTE.tsv"]
