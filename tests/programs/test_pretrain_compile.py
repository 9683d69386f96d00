"""``train.compile``: the model is compiled after accelerate wraps it, HeLU traces into one graph in
both architectures, and FFN telemetry keeps recording in every window (windows run the eager model).

The runs here compile with the ``aot_eager`` backend: the same tracing (dynamo and AOTAutograd, where
graph breaks and hook problems show) without Inductor's code generation, which takes minutes on CPU.
"""

import json

import pytest
import torch
from conftest import TINY_BERT

from bert_helu.models.encoders import model_config
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.batches import MicroBatch
from bert_helu.pretraining.recipe import ARCHITECTURES


def run(*argv):
    from pretrain.__main__ import main

    return main([str(a) for a in argv])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_helu_compiles_without_graph_breaks(architecture):
    from bert_helu.models.encoders import build_mlm_model

    torch._dynamo.reset()
    special = {"pad_token_id": 0, "cls_token_id": 1, "sep_token_id": 2, "mask_token_id": 3}
    config = model_config({**TINY_BERT, "architecture": architecture}, "helu:alpha=0.05", 100, special)
    model = SparseMLM(build_mlm_model(config))
    ids = torch.randint(5, 100, (4, 32))
    labels = torch.where(torch.rand(4, 32) < 0.3, ids, torch.full_like(ids, -100))

    def step(*batch):
        loss = model(*batch)
        loss.backward()
        return loss

    explained = torch._dynamo.explain(step)(*MicroBatch.of(ids, labels))
    assert explained.graph_break_count == 0, [str(b.reason)[:300] for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_compiled_run_keeps_recording_telemetry_in_every_window(recipe, tmp_path, monkeypatch):
    torch._dynamo.reset()
    compiled, real_compile = [], torch.compile

    def compile_with_aot_eager(model, **kwargs):
        compiled.append(type(model).__name__)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_with_aot_eager)
    out = tmp_path / "run"
    args = ["train.compile=true", "train.max_steps=10", "telemetry.every=4", "telemetry.window=2"]
    assert run("--config", recipe, "--activation", "helu", "--output-dir", out, *args) == 0
    assert compiled == ["SparseMLM"]  # one process: accelerate leaves the module unwrapped
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r["telemetry"] for r in rows if "telemetry" in r]
    assert [w["window_start"] for w in windows] == [0, 4, 8]
    for window in windows:  # 2 steps x 2 micro-batches of forward calls per layer, in each window
        assert [layer["forward_calls"] for layer in window["layers"]] == [4, 4]
        assert all(layer["counted"] > 0 for layer in window["layers"])
