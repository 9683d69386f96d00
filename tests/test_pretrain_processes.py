"""The pretraining program as separate processes: killed and resumed, stopped by a signal, and
data-parallel on 2 CPU processes (torchrun, gloo)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_pretrain import run, weights, write_recipe

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recipe")
    return write_recipe(directory / "recipe.yaml", directory / "cache", telemetry={"enabled": False})


def start(recipe, out, *overrides, launcher=(sys.executable, "-m", "pretrain")):
    argv = [*launcher, "--config", str(recipe), "--activation", "helu", "--output-dir", str(out), *overrides]
    return subprocess.Popen(
        argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for_checkpoint(proc, out, newer_than=-1, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*")]
        if steps and max(steps) > newer_than:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before its first checkpoint:\n{proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def newest_step(out):
    return json.loads((sorted((out / "checkpoints").glob("step-*"))[-1] / "state.json").read_text())["step"]


def test_sigterm_saves_sigkill_loses_nothing_and_resume_is_bitwise_equal(recipe, tmp_path):
    """SIGTERM: checkpoint, exit 143, same command resumes. SIGKILL: the newest complete checkpoint
    survives, and the resumed run ends with weights bitwise equal to an uninterrupted run. (Step-based
    schedule: a time-based one follows the clock and cannot be bitwise reproducible.)"""
    args = ["train.max_steps=60", "train.checkpoint_every_steps=5", "train.keep_checkpoints=2"]
    out = tmp_path / "interrupted"
    proc = start(recipe, out, *args)
    wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    stopped_at = newest_step(out)
    assert f"stopped by SIGTERM at step {stopped_at}" in output
    assert not (out / "final").exists()

    proc = start(recipe, out, *args)
    wait_for_checkpoint(proc, out, newer_than=stopped_at)
    proc.send_signal(signal.SIGKILL)
    output, _ = proc.communicate()
    assert f"resumed from {out / 'checkpoints'}" in output
    assert not (out / "summary.json").exists(), "the run finished before it could be killed"
    assert stopped_at < newest_step(out) < 60

    assert run("--config", recipe, "--activation", "helu", "--output-dir", out, *args) == 0
    full = tmp_path / "full"
    assert run("--config", recipe, "--activation", "helu", "--output-dir", full, *args) == 0
    a, b = weights(full), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "summary.json").read_text())["steps"] == 60


def test_two_processes_match_one_process_at_the_same_global_batch(recipe, tmp_path):
    """torchrun gives a real world size of 2 on CPU (gloo); `accelerate launch --cpu --num_processes 2`
    would silently start one process. Both runs see the same samples and masks (GlobalBatches), so
    they differ only by float summation order: losses agree to 1e-5 relative, weights to 1e-3 absolute
    after 6 AdamW steps at lr 1e-3 (Adam's update is ~lr per element whatever the gradient size, so
    a near-zero gradient whose sign flips moves a weight by up to 2 lr)."""
    common = [
        "train.max_steps=6",
        "train.lr=1.0e-3",
        "train.log_every_steps=1",
        "model.hidden_dropout_prob=0.0",  # dropout masks come from per-process RNGs
    ]
    two, one = tmp_path / "two", tmp_path / "one"
    torchrun = (str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", "2", "-m", "pretrain")
    proc = start(recipe, two, *common, "train.micro_batch_size=4", launcher=torchrun)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "micro 4 x accumulation 2 x 2 process(es)" in output
    assert (
        run(
            "--config",
            recipe,
            "--activation",
            "helu",
            "--output-dir",
            one,
            *common,
            "train.micro_batch_size=4",
        )
        == 0
    )

    s2, s1 = (json.loads((d / "summary.json").read_text()) for d in (two, one))
    assert s2["num_processes"] == 2 and s1["num_processes"] == 1
    assert s2["tokens_seen"] == s1["tokens_seen"]

    def losses(directory):
        rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
        return [r["train/loss"] for r in rows if "train/loss" in r]

    assert losses(two) == pytest.approx(losses(one), rel=1e-5)
    assert s2["final_validation_loss"] == pytest.approx(s1["final_validation_loss"], rel=1e-5)
    a, b = weights(two), weights(one)
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"2 processes vs 1: max |weight difference| {diff:.2e}")
    assert diff < 1e-3
