"""scripts/bench_gpu.py: its --smoke run goes through every part of the GPU check on a CPU, and each part
checks what it claims (the loss falls, a killed run resumes to the same weights, GLUE fine-tunes)."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import CHILD_ENV, REPO


def bench_gpu(*argv):
    """The script as it is run: a child process; its exit status and its error output."""
    command = [sys.executable, "scripts/bench_gpu.py", *map(str, argv)]
    done = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.strip()


@pytest.mark.slow
def test_smoke_run_goes_through_every_part(tmp_path):
    out, page = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = [sys.executable, "scripts/bench_gpu.py", "--smoke", "--activations", "relu", "--loss-seconds", "8",
            "--work-dir", str(tmp_path / "work"), "--out", str(out), "--markdown", str(page)]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["machine"]["mode"] == "smoke" and results["precision"] == "no" and not results["skipped"]

    (speed,) = results["speed"]  # eager only: --smoke leaves compilation out
    assert (speed["status"], speed["activation"], speed["compile"]) == ("ok", "relu", False)
    assert speed["tokens_per_s"] > 0 and speed["model_flops_per_step"] > 0 and speed["global_batch"] == 16

    loss = results["loss"]
    assert loss["status"] == "ok" and loss["falls"]
    assert loss["last_loss"] <= loss["first_loss"] - loss["must_fall_by"] and loss["validation"]

    resume = results["resume"]
    assert resume["status"] == "ok" and resume["killed_at"]["killed"]
    assert (
        4 < resume["killed_at"]["after_step"] < resume["steps"]
    )  # after the first checkpoint, before the end
    assert "checkpoints/step-00000004" in resume["resumed_from"]
    assert resume["weights_bitwise_equal"] and resume["weights_max_abs_difference"] == 0
    assert resume["uninterrupted"] == resume["resumed_run"]

    glue = results["glue"]
    assert glue["status"] == "ok" and glue["task"] == "sst2" and glue["num_train_examples"] == 64
    assert 0 <= glue["metrics"]["accuracy"] <= 1 and glue["activation"] == "helu:alpha=0.05"

    text = page.read_text()
    assert "GPU numbers: not yet measured" in text and "CPU smoke run" in text
    assert "| relu | eager | ok |" in text and "Weights bitwise equal: yes" in text


def test_bad_parts_and_no_gpu_without_smoke_are_one_line_errors(tmp_path):
    work = tmp_path / "w"
    assert bench_gpu("--parts", "speed,warp", "--work-dir", work) == (
        2,
        "error: --parts: unknown warp (known: speed, loss, resume, glue)",
    )
    if not torch.cuda.is_available():
        assert bench_gpu("--work-dir", work) == (
            2,
            "error: no GPU here: run with --smoke for the CPU smoke run",
        )
        assert not work.exists()
