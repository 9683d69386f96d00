import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO

from bert_helu import UserError
from bert_helu.glue.tasks import TASKS, load_task, read_tsv, resolve_tasks, task_available

SAMPLE = REPO / "bert_helu" / "sample_data" / "glue_data"
FORMAT = FIXTURES / "glue_format"


def test_every_task_is_described_once_with_its_metrics_and_head():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert TASKS["cola"].metrics == ("matthews_correlation",)
    assert TASKS["mrpc"].metrics == ("f1", "accuracy") and TASKS["qqp"].metrics == ("f1", "accuracy")
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1
    assert TASKS["mnli"].num_labels == 3 and TASKS["mnli"].reported_names == ["mnli", "mnli_mismatched"]


def test_resolve_tasks_accepts_all_and_folder_names_and_refuses_unknown():
    assert [t.name for t in resolve_tasks("all")] == list(TASKS)
    assert [t.name for t in resolve_tasks("SST-2,sts-b,cola")] == ["sst2", "stsb", "cola"]
    with pytest.raises(UserError, match="unknown GLUE task 'colaa'"):
        resolve_tasks("cola,colaa")


def test_headerless_cola_reads_every_row():
    ds = read_tsv(SAMPLE / "CoLA" / "train.tsv", TASKS["cola"])
    assert len(ds) == 400  # no header row: the first line is an example too
    first = (SAMPLE / "CoLA" / "train.tsv").read_text().splitlines()[0].split("\t")
    assert ds[0] == {"text_a": first[3], "text_b": None, "label": int(first[1])}


def test_mrpc_byte_order_mark_is_not_part_of_the_header():
    assert (SAMPLE / "MRPC" / "dev.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality")
    ds = read_tsv(SAMPLE / "MRPC" / "dev.tsv", TASKS["mrpc"])
    assert len(ds) == 100 and set(ds["label"]) == {0, 1} and ds[0]["text_b"]


def test_word_labels_map_to_hub_ids_and_stsb_scores_stay_floats():
    rte = read_tsv(SAMPLE / "RTE" / "dev.tsv", TASKS["rte"])
    raw = [line.split("\t")[3] for line in (SAMPLE / "RTE" / "dev.tsv").read_text().splitlines()[1:]]
    assert rte["label"] == [0 if w == "entailment" else 1 for w in raw]  # nyu-mll/glue: entailment = 0
    stsb = read_tsv(SAMPLE / "STS-B" / "dev.tsv", TASKS["stsb"])
    assert all(isinstance(x, float) and 0 <= x <= 5 for x in stsb["label"])


def test_mnli_and_qqp_formats():
    mnli = load_task(TASKS["mnli"], FORMAT)
    assert set(mnli.evals) == {"mnli", "mnli_mismatched"}
    assert mnli.evals["mnli"][0] == {
        "text_a": "The cat sat on the mat all afternoon.",
        "text_b": "A cat was resting on a mat.",
        "label": 0,
    }
    assert sorted(set(mnli.train["label"])) == [0, 1, 2]
    qqp = load_task(TASKS["qqp"], FORMAT)
    assert qqp.train[0]["text_a"] == "How do I learn Python quickly?" and qqp.train[0]["label"] == 1


def test_absent_task_is_unavailable_not_an_error(shared_data):
    glue = shared_data / "glue_data"
    assert task_available(TASKS["rte"], glue)
    assert not task_available(TASKS["mnli"], glue) and not task_available(TASKS["qnli"], glue)  # dev only


def _write(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_missing_column_names_file_and_field(tmp_path):
    f = _write(tmp_path / "dev.tsv", "index\tsentence1\tlabel\n0\ta\tentailment\n")
    with pytest.raises(UserError, match=r"dev.tsv: missing column 'sentence2'"):
        read_tsv(f, TASKS["rte"])


def test_short_row_names_file_row_and_field(tmp_path):
    f = _write(tmp_path / "train.tsv", "sentence\tlabel\ngood film\t1\nbad film\n")
    with pytest.raises(UserError, match=r"train.tsv: row 3: missing field 'label'"):
        read_tsv(f, TASKS["sst2"])


def test_label_outside_the_label_set_names_row(tmp_path):
    f = _write(tmp_path / "train.tsv", "src\t1\t\tok\nsrc\t7\t\tbad\n")
    with pytest.raises(
        UserError, match=r"train.tsv: row 2: field 'label \(column 2\)': label '7' is not one of 0, 1"
    ):
        read_tsv(f, TASKS["cola"])
    g = _write(tmp_path / "sts.tsv", "sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(UserError, match=r"row 2: field 'score': score 'high' is not a number"):
        read_tsv(g, TASKS["stsb"])


@pytest.mark.parametrize("text", ["", "sentence\tlabel\n", "\n\n"])
def test_empty_file_is_refused(tmp_path, text):
    with pytest.raises(UserError, match="no examples"):
        read_tsv(_write(tmp_path / "train.tsv", text), TASKS["sst2"])


def test_hub_offline_fails_fast_telling_to_use_glue_dir(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = "from bert_helu.glue.tasks import TASKS, load_task; load_task(TASKS['rte'], None)"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "nyu-mll/glue" in proc.stderr and "--glue-dir" in proc.stderr
