"""The crammed encoder (``model.architecture: modernbert``) through every part of the pipeline."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_BERT
from helpers.programs import pretrain as run
from helpers.programs import weights
from transformers import ModernBertForMaskedLM

from bert_helu import load_model, save_model
from bert_helu.activations import HeLU
from bert_helu.models.encoders import (
    activation_of,
    build_classifier,
    build_mlm_model,
    ffn_activation_sites,
    ffn_blocks,
    model_config,
)
from bert_helu.models.optimizer import make_optimizer
from bert_helu.models.sparse_ffn import RowSkippingLinear, densify_ffn, sparsify_ffn
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.telemetry import FFNMonitor

TINY_MODERN = {**TINY_BERT, "architecture": "modernbert"}
SPECIAL = {"pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3}

STOCK_LOAD = """
import sys, json, torch, transformers
torch.set_num_threads(1)  # the same reduction order as the test's own forward
auto = getattr(transformers, sys.argv[1])
kwargs = {"num_labels": 3} if "Sequence" in sys.argv[1] else {}
torch.manual_seed(0)  # a classifier head that is not in the checkpoint starts from the same draw
model = auto.from_pretrained(sys.argv[2], **kwargs).eval()
assert not any(m.startswith("bert_helu") for m in sys.modules)
with torch.no_grad():
    logits = model(input_ids=torch.tensor(json.loads(sys.argv[3]))).logits
print(json.dumps({"class": type(model).__name__, "act": model.config.hidden_activation}))
torch.save(logits, sys.argv[4])  # a tensor file written by this test, read back by it
"""


def tiny_modern(activation: str, vocab_size: int = 50) -> ModernBertForMaskedLM:
    torch.manual_seed(0)
    return build_mlm_model(model_config(TINY_MODERN, activation, vocab_size, SPECIAL)).eval()


def test_gated_ffn_carries_the_registry_activation_and_no_biases():
    model = tiny_modern("helu:alpha=0.05")
    assert isinstance(model, ModernBertForMaskedLM)
    acts = [getattr(owner, attr) for owner, attr in ffn_activation_sites(model)]
    assert len(acts) == 2 and all(isinstance(a, HeLU) and a.alpha == 0.05 for a in acts)
    assert model.config.hidden_activation == "relu" and model.config.bert_helu_activation == "helu:alpha=0.05"
    assert model.config.layer_types == ["full_attention"] * 2  # global attention in every layer
    linear_biases = [
        n for n, m in model.model.named_modules() if isinstance(m, torch.nn.Linear) and m.bias is not None
    ]
    assert linear_biases == []
    # the gated block: Wi is twice the activation width (activation input and gate)
    mlp = model.model.layers[0].mlp
    assert mlp.Wi.out_features == 2 * TINY_BERT["intermediate_size"] == 2 * mlp.Wo.in_features


@pytest.mark.parametrize("cls_name", ["AutoModelForMaskedLM", "AutoModelForSequenceClassification"])
def test_helu_checkpoint_loads_in_stock_transformers_with_identical_logits(tmp_path, cls_name):
    save_model(tiny_modern("helu:alpha=0.05"), tmp_path / "ckpt")
    ids = [[2, 7, 9, 11, 3], [2, 5, 5, 8, 3]]
    out = tmp_path / "logits.pt"
    stock = subprocess.run(
        [sys.executable, "-c", STOCK_LOAD, cls_name, str(tmp_path / "ckpt"), json.dumps(ids), str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    info = json.loads(stock.stdout.strip().splitlines()[-1])
    assert info["act"] == "relu" and info["class"].startswith("ModernBert")
    task = "mlm" if "Masked" in cls_name else "classification"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ours = load_model(tmp_path / "ckpt", task=task, **({"num_labels": 3} if task != "mlm" else {})).eval()
        assert activation_of(ours) == "helu:alpha=0.05"
        with torch.no_grad():
            logits = ours(input_ids=torch.tensor(ids)).logits
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.load(out, weights_only=True), logits)


def test_activation_without_stock_name_names_the_project(tmp_path):
    save_model(tiny_modern("shifted_relu:bias=0.5"), tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["hidden_activation"] == "bert_helu:shifted_relu:bias=0.5"
    model = load_model(tmp_path / "ckpt")
    assert activation_of(model) == "shifted_relu:bias=0.5"
    clf = load_model(tmp_path / "ckpt", task="classification", num_labels=2)
    assert activation_of(clf) == "shifted_relu:bias=0.5"


def test_sparse_mlm_loss_equals_stock_dense_loss():
    model = tiny_modern("gelu", vocab_size=60)
    ids = torch.randint(5, 60, (3, 16))
    labels = torch.where(torch.rand(3, 16) < 0.3, ids, torch.full_like(ids, -100))
    dense = model(input_ids=ids, labels=labels).loss
    sparse = SparseMLM(model)(ids, labels) / (labels != -100).sum()
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_no_weight_decay_on_any_norm_weight():
    model = tiny_modern("relu")
    names = {id(p): n for n, p in model.named_parameters()}
    opt = make_optimizer(model, {"lr": 1e-3, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.01})
    exempt = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert {
        "model.layers.0.mlp_norm.weight",
        "model.final_norm.weight",
        "model.embeddings.norm.weight",
    } <= exempt
    assert "model.layers.0.mlp.Wi.weight" in {names[id(p)] for p in opt.param_groups[0]["params"]}


def test_sparse_ffn_skips_zero_rows_of_the_gated_output_projection():
    model = tiny_modern("relu")
    ids = torch.randint(5, 50, (2, 12))
    with torch.no_grad():
        dense = model(input_ids=ids).logits
        swapped = sparsify_ffn(model, mode="union")
        sparse = model(input_ids=ids).logits
    assert len(swapped) == 2
    assert all(isinstance(layer.mlp.Wo, RowSkippingLinear) for layer in model.model.layers)
    assert all(type(layer.attn.Wo) is torch.nn.Linear for layer in model.model.layers)  # attention untouched
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    densify_ffn(model)
    assert all(type(layer.mlp.Wo) is torch.nn.Linear for layer in model.model.layers)


def test_telemetry_measures_the_activation_before_the_gate():
    model = tiny_modern("helu:alpha=0.5")
    ids = torch.randint(5, 50, (2, 12))
    inputs = []
    act = ffn_blocks(model)[0][0]
    handle = act.register_forward_hook(lambda m, args, out: inputs.append(args[0].detach()))
    with FFNMonitor(model.model, band_alpha=0.5) as monitor, torch.no_grad():
        model.model(input_ids=ids)
    handle.remove()
    layer0 = monitor.summary()["layers"][0]
    pre = inputs[0]
    assert layer0["neurons"] == TINY_BERT["intermediate_size"]
    assert layer0["zero_fraction"] == pytest.approx(float((torch.relu(pre) == 0).float().mean()))
    assert layer0["band_fraction"] == pytest.approx(float(((pre > -0.5) & (pre <= 0)).float().mean()))


def test_classifier_is_the_modern_family():
    clf = build_classifier(model_config(TINY_MODERN, "relu", 50, SPECIAL), num_labels=2)
    assert type(clf).__name__ == "ModernBertForSequenceClassification" and clf.config.num_labels == 2


def test_pretrain_program_trains_and_resumes_bitwise(recipe, tmp_path):  # noqa: F811 - fixture
    """The loop (sparse prediction, telemetry, checkpoints) runs the crammed encoder unchanged."""
    args = ["model.architecture=modernbert", "train.max_steps=6", "train.checkpoint_every_steps=3",
            "train.keep_checkpoints=5"]  # fmt: skip
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", full, *args) == 0
    import shutil

    shutil.copytree(full / "checkpoints" / "step-00000003", resumed / "checkpoints" / "step-00000003")
    assert run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", resumed, *args) == 0
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = load_model(full / "final")
    assert type(model).__name__ == "ModernBertForMaskedLM" and model.config.hidden_activation == "relu"
    summary = json.loads((full / "summary.json").read_text())
    assert summary["identity"]["model"]["architecture"] == "modernbert"
    telemetry = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert any("telemetry/zero_fraction" in record for record in telemetry)
    # the same output dir with the other architecture is another run
    assert run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", full, *args[1:]) == 2


# ------------------------------------------------------------- fine-tuning, INT8, stats, relufying


def modern_checkpoint(path, tokenizer, activation):
    torch.manual_seed(0)
    special = {"pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id}
    special["sep_token_id"] = tokenizer.sep_token_id
    model = build_mlm_model(model_config(TINY_MODERN, activation, len(tokenizer), special))
    return save_model(model, path, tokenizer=tokenizer)


def test_finetune_int8_stats_and_tables_on_the_crammed_encoder(tmp_path, minilm_tokenizer, capsys):
    from conftest import REPO

    from finetune.__main__ import main as finetune_main
    from glue_eval.__main__ import main as glue_eval_main

    ckpt = modern_checkpoint(tmp_path / "runs" / "helu" / "final", minilm_tokenizer, "helu:alpha=0.05")
    out = tmp_path / "results"
    fast = ["train.epochs=1", "train.max_train_examples=48", "train.max_eval_examples=40",
            "train.max_length=64", "torch_threads=1"]  # fmt: skip
    finetune_main(["--checkpoints", str(ckpt), "--tasks", "mrpc,stsb", "--seeds", "1",
                   "--glue-dir", str(REPO / "bert_helu" / "sample_data" / "glue_data"),
                   "--output-dir", str(out), "--int8", "--save-models", *fast])  # fmt: skip
    mrpc = json.loads((out / "helu" / "mrpc" / "seed1" / "results.json").read_text())
    assert mrpc["activation"] == "helu:alpha=0.05"
    assert set(mrpc["metrics"]) == {"f1", "accuracy"} and set(mrpc["int8"]["metrics"]) == {"f1", "accuracy"}
    model_dir = out / "helu" / "mrpc" / "seed1" / "model"
    from transformers import AutoModelForSequenceClassification

    stock = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ours = load_model(model_dir, task="classification").eval()
    assert type(stock).__name__ == "ModernBertForSequenceClassification"
    ids = torch.tensor([[101, 2023, 2003, 2204, 102]])
    with torch.no_grad():
        assert torch.equal(stock(input_ids=ids).logits, ours(input_ids=ids).logits)

    assert glue_eval_main(["table", str(out), "--format", "md"]) in (0, None)
    assert "helu" in capsys.readouterr().out
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"sentence {i} is about the weather and {i * 7} cats" for i in range(40)))
    report = glue_eval_main(["stats", "--checkpoint", f"h={ckpt}", "--data", str(corpus),
                             "--output-dir", str(tmp_path / "stats")])  # fmt: skip
    assert 0.2 < report["models"]["h"]["mean"]["zero_fraction"] < 0.8  # ReLU forward: about half are zeros


def test_relufying_a_crammed_checkpoint_with_init_from(recipe, tmp_path, corpus_cache):  # noqa: F811
    import yaml

    from bert_helu.data import prepare_corpus

    corpus = prepare_corpus(yaml.safe_load(recipe.read_text())["data"])
    src = modern_checkpoint(tmp_path / "gelu-ckpt", corpus.tokenizer, "gelu")
    out = tmp_path / "relufied"
    argv = ["--activation", "relu", "--output-dir", out, f"model.init_from={src}", "train.max_steps=2"]
    assert run("--config", recipe, *argv) == 0
    model = load_model(out / "final")
    assert type(model).__name__ == "ModernBertForMaskedLM" and activation_of(model) == "relu"
    assert model.config.hidden_activation == "relu"
