"""scripts/bench_host.py at a toy size: every feeding mode measured, the page kept per CPU kind."""

import json
import subprocess
import sys

from conftest import CHILD_ENV, REPO

from bert_helu.analysis.reports import CPU_KIND_TITLES
from bert_helu.runtime.precision import OVERRIDE_ENV, cpu_has_native_bf16, cpu_kind


def test_every_feeding_mode_is_measured_into_this_cpu_kinds_section(tmp_path):
    out, page = tmp_path / "host.json", tmp_path / "host.md"
    command = [sys.executable, "scripts/bench_host.py", "--batch", "8", "--micro-batch", "4",
               "--hidden", "32",
               "--layers", "1", "--steps", "2", "--warmup", "0", "--out", str(out), "--markdown", str(page),
               "--config", "configs/pretrain/demo.yaml"]  # fmt: skip
    other = "native-bf16" if cpu_kind() == "fp32" else "fp32"
    # first as if on the other kind of CPU (fp32 in both runs), then on this one: both sections stay
    for native in ("0" if cpu_has_native_bf16() else "1", None):
        env = {**CHILD_ENV, "PYTHONPATH": str(REPO)}
        if native is not None:
            env[OVERRIDE_ENV] = native
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    sections = json.loads(out.read_text())["by_cpu_kind"]
    assert set(sections) == {"fp32", "native-bf16"}
    rows = sections[cpu_kind()]["rows"]
    assert [r["mode"] for r in rows] == [
        "per-row masking, inline",
        "vectorised masking, inline",
        "prefetched",
    ]
    for row in rows:
        assert 0 <= row["median_wait_s"] <= row["median_step_s"] and 0 <= row["wait_share"] < 1
    text = page.read_text()
    assert f"## {CPU_KIND_TITLES[cpu_kind()]}" in text and f"## {CPU_KIND_TITLES[other]}" in text
