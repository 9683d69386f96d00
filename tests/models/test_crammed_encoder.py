"""What is ModernBERT's own in the crammed encoder (``model.architecture: modernbert``): its gated FFN,
no biases, the activation measured before the gate, fine-tuning and INT8. What both architectures share
is tested once for each of them: tests/models/test_modeling.py, tests/programs/test_pretrain.py."""

import json

import pytest
import torch
from conftest import TINY_BERT
from helpers.programs import FAST, SAMPLE, finetune
from transformers import ModernBertForMaskedLM

from bert_helu import load_model, save_model
from bert_helu.models.encoders import build_mlm_model, ffn_blocks, model_config
from bert_helu.models.sparse_ffn import RowSkippingLinear, densify_ffn, sparsify_ffn
from bert_helu.pretraining.telemetry import FFNMonitor

TINY_MODERN = {**TINY_BERT, "architecture": "modernbert"}
SPECIAL = {"pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3}


def tiny_modern(activation: str, vocab_size: int = 50) -> ModernBertForMaskedLM:
    torch.manual_seed(0)
    return build_mlm_model(model_config(TINY_MODERN, activation, vocab_size, SPECIAL)).eval()


def test_gated_ffn_without_biases_and_global_attention():
    """The registry activation in its FFN: tests/models/test_modeling.py, for both architectures."""
    model = tiny_modern("helu:alpha=0.05")
    assert isinstance(model, ModernBertForMaskedLM)
    assert model.config.layer_types == ["full_attention"] * 2  # global attention in every layer
    linear_biases = [
        n for n, m in model.model.named_modules() if isinstance(m, torch.nn.Linear) and m.bias is not None
    ]
    assert linear_biases == []
    # the gated block: Wi is twice the activation width (activation input and gate)
    mlp = model.model.layers[0].mlp
    assert mlp.Wi.out_features == 2 * TINY_BERT["intermediate_size"] == 2 * mlp.Wo.in_features


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


# ------------------------------------------------------------- fine-tuning, INT8, stats, relufying


def modern_checkpoint(path, tokenizer, activation):
    torch.manual_seed(0)
    special = {"pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id}
    special["sep_token_id"] = tokenizer.sep_token_id
    model = build_mlm_model(model_config(TINY_MODERN, activation, len(tokenizer), special))
    return save_model(model, path, tokenizer=tokenizer)


def test_finetune_int8_stats_and_tables_on_the_crammed_encoder(tmp_path, minilm_tokenizer, capsys):
    from glue_eval.__main__ import main as glue_eval_main

    ckpt = modern_checkpoint(tmp_path / "runs" / "helu" / "final", minilm_tokenizer, "helu:alpha=0.05")
    out = tmp_path / "results"
    assert finetune("--checkpoints", ckpt, "--tasks", "mrpc,stsb", "--seeds", "1", "--glue-dir", SAMPLE,
                    "--output-dir", out, "--int8", "--save-models", *FAST) == 0  # fmt: skip
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
