"""The encoders of both architectures (BERT; ModernBERT, the crammed encoder): a registry activation in
stock ``transformers`` classes, saved so that stock ``transformers`` loads them, and the pieces the loop
uses (sparse MLM loss, optimizer groups). ModernBERT's own traits: tests/models/test_crammed_encoder.py."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_BERT

from bert_helu import UserError, load_model, save_model
from bert_helu.activations import HeLU
from bert_helu.models.encoders import (
    activation_of,
    build_classifier,
    build_mlm_model,
    ffn_activation_sites,
    model_config,
)
from bert_helu.models.optimizer import make_optimizer
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.recipe import ARCHITECTURES

SPECIAL = {"pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3}
# the stock config key that names the FFN activation, and the stock class family
ACTIVATION_KEY = {"bert": "hidden_act", "modernbert": "hidden_activation"}
FAMILY = {"bert": "Bert", "modernbert": "ModernBert"}

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
assert not any(m.startswith("bert_helu") for m in sys.modules)
print(json.dumps({"class": type(model).__name__, "act": model.config.hidden_act if hasattr(model.config,
      "hidden_act") else model.config.hidden_activation}))
torch.save(logits, sys.argv[4])  # a tensor file written by this test, read back by it
"""


def tiny_mlm(architecture: str, activation: str, vocab_size: int = 50):
    torch.manual_seed(0)
    config = model_config({**TINY_BERT, "architecture": architecture}, activation, vocab_size, SPECIAL)
    return build_mlm_model(config).eval()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_ffn_uses_registry_activation(architecture):
    model = tiny_mlm(architecture, "helu:alpha=0.05")
    assert type(model).__name__ == f"{FAMILY[architecture]}ForMaskedLM"
    acts = [getattr(owner, attr) for owner, attr in ffn_activation_sites(model)]
    assert len(acts) == 2 and all(isinstance(a, HeLU) and a.alpha == 0.05 for a in acts)
    if architecture == "bert":  # where stock BERT keeps it
        assert acts == [layer.intermediate.intermediate_act_fn for layer in model.bert.encoder.layer]
    assert getattr(model.config, ACTIVATION_KEY[architecture]) == "relu"  # HeLU's forward, for stock loaders
    assert model.config.bert_helu_activation == "helu:alpha=0.05"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize(
    "cls_name, activation",
    [
        ("AutoModelForMaskedLM", "helu:alpha=0.05"),
        ("AutoModelForMaskedLM", "gelu"),
        ("AutoModelForSequenceClassification", "helu:alpha=0.05"),
    ],
)
def test_checkpoint_loads_in_stock_transformers_with_identical_logits(
    tmp_path, architecture, cls_name, activation
):
    save_model(tiny_mlm(architecture, activation), tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    ids = [[2, 7, 9, 11, 3], [2, 5, 5, 8, 3]]
    out = tmp_path / "logits.pt"
    stock = subprocess.run(
        [sys.executable, "-c", STOCK_LOAD, cls_name, str(tmp_path / "ckpt"), json.dumps(ids), str(out)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    info = json.loads(stock.stdout.strip().splitlines()[-1])
    assert info["act"] == ("gelu" if activation == "gelu" else "relu")
    assert info["class"].startswith(FAMILY[architecture])
    task = "mlm" if "Masked" in cls_name else "classification"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ours = load_model(tmp_path / "ckpt", task=task, **({"num_labels": 3} if task != "mlm" else {})).eval()
        assert activation_of(ours) == activation
        with torch.no_grad():
            logits = ours(input_ids=torch.tensor(ids)).logits
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.load(out, weights_only=True), logits)


def test_project_load_restores_training_activation(tmp_path):
    save_model(tiny_mlm("bert", "helu:alpha=1"), tmp_path / "ckpt")
    model = load_model(tmp_path / "ckpt")
    assert activation_of(model) == "helu:alpha=1"
    assert isinstance(model.bert.encoder.layer[0].intermediate.intermediate_act_fn, HeLU)
    clf = load_model(tmp_path / "ckpt", task="classification", num_labels=3)
    assert clf.config.num_labels == 3
    assert clf.bert.encoder.layer[1].intermediate.intermediate_act_fn.alpha == 1.0


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_non_stock_activation_names_the_project(tmp_path, architecture):
    save_model(tiny_mlm(architecture, "shifted_relu:bias=0.5"), tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config[ACTIVATION_KEY[architecture]] == "bert_helu:shifted_relu:bias=0.5"
    stock = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, transformers; transformers.AutoModel.from_pretrained(sys.argv[1])",
            str(tmp_path / "ckpt"),
        ],
        capture_output=True,
        text=True,
    )
    assert stock.returncode != 0 and "bert_helu:shifted_relu" in stock.stderr
    model = load_model(tmp_path / "ckpt")
    assert activation_of(model) == "shifted_relu:bias=0.5"
    clf = load_model(tmp_path / "ckpt", task="classification", num_labels=2)
    assert activation_of(clf) == "shifted_relu:bias=0.5"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_classifier_built_from_config(architecture):
    config = model_config({**TINY_BERT, "architecture": architecture}, "relu", 50, SPECIAL)
    clf = build_classifier(config, num_labels=2)
    assert type(clf).__name__ == f"{FAMILY[architecture]}ForSequenceClassification"
    assert clf.config.num_labels == 2 and getattr(clf.config, ACTIVATION_KEY[architecture]) == "relu"


def test_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a model checkpoint"):
        load_model(tmp_path)
    save_model(tiny_mlm("bert", "relu"), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load model weights"):
        load_model(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json"):
        load_model(tmp_path / "ckpt")


# ---------------------------------------------------------------------- what the loop uses


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_sparse_mlm_loss_equals_stock_dense_loss(architecture):
    model = tiny_mlm(architecture, "gelu", vocab_size=60)
    ids = torch.randint(5, 60, (3, 16))
    labels = torch.where(torch.rand(3, 16) < 0.3, ids, torch.full_like(ids, -100))
    dense = model(input_ids=ids, labels=labels).loss
    sparse = SparseMLM(model)(ids, labels) / (labels != -100).sum()
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


# per architecture: parameters that must be exempt from weight decay, and some that must not be
NO_DECAY = {
    "bert": {"bert.embeddings.LayerNorm.weight", "bert.encoder.layer.0.output.dense.bias"},
    "modernbert": {
        "model.layers.0.mlp_norm.weight",
        "model.final_norm.weight",
        "model.embeddings.norm.weight",
    },
}
DECAY = {
    "bert": {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.intermediate.dense.weight"},
    "modernbert": {"model.embeddings.tok_embeddings.weight", "model.layers.0.mlp.Wi.weight"},
}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_no_weight_decay_on_biases_and_norms(architecture):
    model = tiny_mlm(architecture, "relu", vocab_size=60)
    names = {id(p): n for n, p in model.named_parameters()}
    opt = make_optimizer(model, {"lr": 1e-3, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.01})
    decayed = {names[id(p)] for p in opt.param_groups[0]["params"]}
    exempt = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    assert all(not n.endswith(".bias") and "norm" not in n.lower() for n in decayed)
    assert NO_DECAY[architecture] <= exempt and DECAY[architecture] <= decayed
