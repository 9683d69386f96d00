"""bert_helu.analysis.bench_pretrain_page: the page of the pretraining benchmark, from its JSON alone."""

import json
import shutil

from conftest import REPO

from bert_helu.analysis import bench_pretrain_page

STORED_JSON, STORED_PAGE = REPO / "docs" / "bench_pretrain.json", REPO / "docs" / "bench_pretrain.md"


def test_the_stored_measurements_render_to_the_committed_page(tmp_path):
    """What ``scripts/bench_pretrain.py --render-only`` does: the page is a function of the JSON."""
    out, page = tmp_path / "bench.json", tmp_path / "bench.md"
    shutil.copy(STORED_JSON, out)
    for results in json.loads(STORED_JSON.read_text())["by_cpu_kind"].values():
        bench_pretrain_page.write_page(out, page, results)
    assert page.read_text() == STORED_PAGE.read_text()
    assert json.loads(out.read_text()) == json.loads(STORED_JSON.read_text())


def test_the_page_says_whether_other_jobs_shared_the_cores():
    (results,) = json.loads(STORED_JSON.read_text())["by_cpu_kind"].values()
    machine = {**results["machine"], "threads": 2}
    quiet = {**machine, "load_average_at_start": [1.9, 0, 0], "load_average_at_end": [2.5, 0, 0]}
    assert bench_pretrain_page.load_note(quiet).endswith(": nothing else ran.")
    busy = {**quiet, "load_average_at_end": [2.6, 0, 0]}  # above the 2 threads' own load
    assert "other jobs shared the cores" in bench_pretrain_page.load_note(busy)
    page = bench_pretrain_page.markdown({**results, "machine": {**results["machine"], **busy}})
    assert "Load average 1.9 at the start, 2.6 at the end, above this benchmark's 2 threads" in page
