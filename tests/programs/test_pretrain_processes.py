"""The pretraining program as separate processes: killed and resumed, stopped by a signal, and
data-parallel on 2 CPU processes (torchrun, gloo)."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CHILD_ENV as ENV
from conftest import REPO, TORCHRUN, write_recipe
from helpers.programs import pretrain as run
from helpers.programs import weights


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recipe")
    return write_recipe(directory / "recipe.yaml", directory / "cache", telemetry={"enabled": False})


def start(recipe, out, *overrides, launcher=(sys.executable, "-m", "pretrain")):
    argv = [*launcher, "--config", str(recipe), "--activation", "helu", "--output-dir", str(out), *overrides]
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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


def kill_all(proc):
    """SIGKILL a launcher and every process under it at once, as a power cut would.

    torchrun starts each worker in a session of its own: killing its process group is not enough."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(command name)"
            parents[int(stat.parent.name)] = int(fields[1])
    family = [proc.pid]
    for pid in family:  # grows while it is walked: children, grandchildren, ...
        family += [child for child, parent in parents.items() if parent == pid]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
    proc = start(recipe, two, *common, "train.micro_batch_size=4", launcher=(*TORCHRUN, "-m", "pretrain"))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "micro 4 x accumulation 2 x 2 process(es)" in output
    # one process with the recipe's micro-batch (8): masks are drawn per row of the global batch,
    # so how it is cut into micro-batches changes nothing but the order of float sums
    assert run("--config", recipe, "--activation", "helu", "--output-dir", one, *common) == 0

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


@pytest.fixture
def uninterrupted_two_process_run(recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = start(recipe, out, *KILL_ARGS, launcher=(*TORCHRUN, "-m", "pretrain"))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    return out


KILL_ARGS = ["train.max_steps=80", "train.keep_checkpoints=2", "model.hidden_dropout_prob=0.1"]


def test_two_process_run_killed_at_a_random_moment_resumes_bitwise_equal(
    recipe, tmp_path, uninterrupted_two_process_run
):
    """SIGKILL to torchrun and both workers at once (as a power cut) at a random moment after a
    random checkpoint; the same command then finishes the run, and its weights equal bit for bit
    those of a run never interrupted (checkpoint cadence is logistics: that run saves only at its
    end). Checkpoints come both every 7 steps and every 0.18 s, with the clock of process 1
    running 3x fast: the processes must still agree on when to save, or the run would hang."""
    out = tmp_path / "killed"
    cadence = ["train.checkpoint_every_steps=7", "train.checkpoint_every_minutes=0.003"]
    launcher = (*TORCHRUN, str(REPO / "tests" / "helpers" / "skewed_clock.py"))
    proc = start(recipe, out, *KILL_ARGS, *cadence, launcher=launcher)
    wait_for_checkpoint(proc, out, newer_than=random.randrange(40), timeout=240)
    time.sleep(random.uniform(0.0, 0.1))
    kill_all(proc)
    proc.communicate()
    assert not (out / "summary.json").exists(), "the run finished before it could be killed"

    proc = start(recipe, out, *KILL_ARGS, *cadence, launcher=launcher)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "resumed from" in output and "took over the lock" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 80
    a, b = weights(uninterrupted_two_process_run), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_demo_recipe_runs_unchanged_on_two_processes(tmp_path):
    """The demo recipe's micro-batch (64) equals its global batch: on 2 processes it is lowered to 32,
    with one line saying so, and summary.json records the plan."""
    out = tmp_path / "run"
    demo = ["--config", "configs/pretrain/demo.yaml", "--activation", "relu", "--output-dir", str(out)]
    argv = [*TORCHRUN, "-m", "pretrain", *demo, "train.max_steps=6", f"data.cache_dir={tmp_path / 'c'}"]
    done = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lowered = "micro-batch lowered from 64 to 32 so that the global batch 64 splits evenly over 2 process(es)"
    assert lowered in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 6
    assert summary["batch_plan"] == {
        "global_batch_size": 64,
        "micro_batch_size": 32,
        "accumulation": 1,
        "num_processes": 2,
        "recipe_micro_batch_size": 64,
    }


def test_a_corpus_build_longer_than_the_collective_timeout_does_not_abort_the_run(tmp_path):
    """Every process reaches the corpus before the processes connect, so a build of any length is
    never a wait inside a collective call. Here the corpus cache's lock is held for 8 s (another job
    building the same corpus), then the run builds it itself, with a 3 s collective timeout: a wait
    in a collective that long would abort both processes."""
    import threading

    import yaml

    from bert_helu.data import prepare_corpus
    from bert_helu.runtime.locks import FileLock

    recipe = write_recipe(tmp_path / "recipe.yaml", tmp_path / "cache", telemetry={"enabled": False})
    data = yaml.safe_load(recipe.read_text())["data"]
    fingerprint = prepare_corpus({**data, "cache_dir": str(tmp_path / "elsewhere")}).fingerprint
    lock = FileLock(tmp_path / "cache" / f".corpus-{fingerprint}.lock", "data.cache_dir")
    (tmp_path / "cache").mkdir()
    lock.acquire()
    threading.Timer(8.0, lock.release).start()
    out = tmp_path / "run"
    overrides = ["train.collective_timeout_minutes=0.05", "logging.tensorboard=false"]
    proc = start(recipe, out, *overrides, launcher=(*TORCHRUN, "-m", "pretrain"))
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "waiting" in output.lower()  # the lock was really in the way
    assert json.loads((out / "summary.json").read_text())["num_processes"] == 2
