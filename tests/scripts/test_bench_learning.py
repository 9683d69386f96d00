"""scripts/bench_learning.py end to end on a tiny recipe: an arm trains, the report reads it back."""

import json
import subprocess
import sys

from conftest import CHILD_ENV, REPO


def bench_learning(*argv) -> int:
    """The script as it is run: a child process; its exit status."""
    command = [sys.executable, "scripts/bench_learning.py", *map(str, argv)]
    done = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=600)
    assert not done.returncode, done.stderr[-3000:]
    return done.returncode


def test_arm_then_report(recipe, tmp_path):
    out = tmp_path / "arms"
    argv = ["run", "--architecture", "modernbert", "--activation", "helu:alpha=0.05", "--steps", "4",
            "--config", str(recipe), "--out", str(out), "--width-matched",
            "train.eval_every_steps=2"]  # fmt: skip
    assert bench_learning(*argv) == 0
    (arm,) = list(out.iterdir())
    assert json.loads((arm / "bench_arm.json").read_text())["command"].startswith("python -m pretrain")
    stem = tmp_path / "report" / "learning"
    assert bench_learning("report", "--out", out, "--output", stem) == 0
    (data,) = json.loads(stem.with_suffix(".json").read_text())["by_cpu_kind"].values()
    (row,) = data["arms"]
    assert row["architecture"] == "modernbert" and row["activation"] == "helu:alpha=0.05"
    assert row["model"]["intermediate_size"] == 64 * 2 // 3  # width-matched to the recipe's BERT FFN
    assert [p["step"] for p in row["curve"]] == [0, 2, 4] and row["tokens"] == 4 * 16 * 32
    assert stem.with_suffix(".png").stat().st_size > 0
    assert "| modernbert | helu:alpha=0.05 |" in stem.with_suffix(".table.md").read_text()


def test_speed_gives_equal_compute_steps(recipe, tmp_path):
    out = tmp_path / "speed.json"
    argv = ["speed", "--config", str(recipe), "--steps", "3", "--rounds", "1", "--reference-steps", "100",
            "--size", "model.hidden_size=64 model.num_attention_heads=2",
            "--size", "model.num_hidden_layers=1", "--output", str(out)]  # fmt: skip
    assert bench_learning(*argv) == 0
    first, second = json.loads(out.read_text())["sizes"]
    # (the first size's own equal_compute_steps is --reference-steps by definition: nothing to check)
    assert first["overrides"] == ["model.hidden_size=64", "model.num_attention_heads=2"]  # one quoted --size
    assert second["tokens_per_s"] > 0 and second["equal_compute_steps"] == round(100 * second["vs_first"])
    assert second["overrides"] == ["model.num_hidden_layers=1"]
