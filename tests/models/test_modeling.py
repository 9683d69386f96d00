import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_BERT

from bert_helu import UserError, load_model, save_model
from bert_helu.activations import HeLU
from bert_helu.models.encoders import activation_of, bert_config, build_classifier, build_mlm_model

STOCK_LOAD = """
import sys, json, torch, transformers
torch.set_num_threads(1)  # the same reduction order as the test's own forward
assert not any(m.startswith("bert_helu") for m in sys.modules)
model = transformers.AutoModelForMaskedLM.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor(json.loads(sys.argv[2]))
with torch.no_grad():
    logits = model(input_ids=ids).logits
assert not any(m.startswith("bert_helu") for m in sys.modules)
torch.save(logits, sys.argv[3])  # a tensor file written by this test, read back by it
"""


def tiny_mlm(activation: str):
    torch.manual_seed(0)
    return build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=50)).eval()


def test_ffn_uses_registry_activation():
    model = tiny_mlm("helu:alpha=0.05")
    acts = [layer.intermediate.intermediate_act_fn for layer in model.bert.encoder.layer]
    assert len(acts) == 2 and all(isinstance(a, HeLU) and a.alpha == 0.05 for a in acts)
    assert model.config.hidden_act == "relu"
    assert model.config.bert_helu_activation == "helu:alpha=0.05"


@pytest.mark.parametrize("activation", ["helu:alpha=0.05", "gelu"])
def test_checkpoint_loads_in_stock_transformers_with_identical_logits(tmp_path, activation):
    model = tiny_mlm(activation)
    save_model(model, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    ids = [[2, 7, 9, 11, 3], [2, 5, 5, 8, 3]]
    out = tmp_path / "logits.pt"
    subprocess.run(
        [sys.executable, "-c", STOCK_LOAD, str(tmp_path / "ckpt"), json.dumps(ids), str(out)], check=True
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            ours = model(input_ids=torch.tensor(ids)).logits
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.load(out, weights_only=True), ours)


def test_project_load_restores_training_activation(tmp_path):
    save_model(tiny_mlm("helu:alpha=1"), tmp_path / "ckpt")
    model = load_model(tmp_path / "ckpt")
    assert activation_of(model) == "helu:alpha=1"
    assert isinstance(model.bert.encoder.layer[0].intermediate.intermediate_act_fn, HeLU)
    clf = load_model(tmp_path / "ckpt", task="classification", num_labels=3)
    assert clf.config.num_labels == 3
    assert clf.bert.encoder.layer[1].intermediate.intermediate_act_fn.alpha == 1.0


def test_non_stock_activation_names_the_project(tmp_path):
    save_model(tiny_mlm("shifted_relu:bias=0.5"), tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["hidden_act"] == "bert_helu:shifted_relu:bias=0.5"
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


def test_classifier_built_from_config():
    clf = build_classifier(bert_config(TINY_BERT, "relu", vocab_size=50), num_labels=2)
    assert clf.config.num_labels == 2 and clf.config.hidden_act == "relu"


def test_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a model checkpoint"):
        load_model(tmp_path)
    save_model(tiny_mlm("relu"), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load model weights"):
        load_model(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json"):
        load_model(tmp_path / "ckpt")
