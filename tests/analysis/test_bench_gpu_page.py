"""bert_helu.analysis.bench_gpu_page: the GPU check's page, from its JSON alone."""

import json

from conftest import REPO

from bert_helu.analysis import bench_gpu_page

STORED_JSON, STORED_PAGE = REPO / "docs" / "bench_gpu.json", REPO / "docs" / "bench_gpu.md"


def test_the_stored_measurements_render_to_the_committed_page():
    assert bench_gpu_page.markdown(json.loads(STORED_JSON.read_text())) == STORED_PAGE.read_text()


def test_mfu_is_read_against_the_peak_and_missing_numbers_say_so():
    results = json.loads(STORED_JSON.read_text())
    results["peak"] = {**results["peak"], "flops": 4e12}
    (first, *_) = results["speed"]
    results["speed"] = [
        {**first, "achieved_tflops": 1.0},
        {**first, "activation": "gelu", "status": "failed"},
    ]
    for key in ("achieved_tflops", "tokens_per_s", "s_per_step", "timed_steps", "warmup_s"):
        results["speed"][1].pop(key, None)
    lines = "\n".join(bench_gpu_page.speed_part(results)).splitlines()
    rows = [line for line in lines if line.startswith("| ")][1:]  # below the header
    assert [row.split(" | ")[8] for row in rows] == ["25.0%", "n/a"]  # 1 TFLOP/s over a 4 TFLOP/s peak
