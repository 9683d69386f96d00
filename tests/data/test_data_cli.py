"""``python -m pretrain --prepare-only``: builds the corpus cache and prints its summary; bad input is
one line on stderr with exit status 2 (run in-process: the program's ``main`` takes argv)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from bert_helu.data import SAMPLE_CORPUS_DIR

pretrain_main = pytest.importorskip("pretrain.__main__").main
DEMO = REPO / "configs" / "pretrain" / "demo.yaml"


def overrides(cache_dir, **data) -> list[str]:
    data = {
        "sources": [
            {
                "type": "wikiextractor",
                "path": str(SAMPLE_CORPUS_DIR / "wikipedia" / "*.txt.gz"),
                "max_docs": 60,
            }
        ],
        "vocab_size": 600,
        "num_proc": 1,
        "cache_dir": str(cache_dir),
        **data,
    }
    return [f"data.{key}={json.dumps(value)}" for key, value in data.items()]


def test_prepare_only_builds_then_hits_the_cache(tmp_path, capsys):
    args = ["--config", str(DEMO), "--prepare-only", *overrides(tmp_path / "cache")]
    assert pretrain_main(args) == 0
    first = capsys.readouterr().out
    assert "built in" in first and "60 kept" in first and "vocab size 600" in first and "MB/s" in first
    assert pretrain_main(args) == 0
    assert "cache hit" in capsys.readouterr().out
    assert pretrain_main([*args, "data.seq_len=64"]) == 0
    assert "built in" in capsys.readouterr().out  # a changed option is a different corpus


def test_prepare_only_bad_input_is_one_line(tmp_path, capsys):
    sources = [{"type": "text", "path": str(tmp_path / "missing" / "*.txt")}]
    with pytest.raises(SystemExit) as exit_info:
        pretrain_main(
            ["--config", str(DEMO), "--prepare-only", *overrides(tmp_path / "cache", sources=sources)]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "missing/*.txt: no such file" in err[-1]


def test_prepare_only_cache_hit_never_imports_torch(tmp_path):
    # The "< 5 s cache hit" goal is mostly import time: torch alone costs ~3 s to import here.
    args = ["--config", str(DEMO), "--prepare-only", *overrides(tmp_path / "cache")]
    assert pretrain_main(args) == 0  # build the cache in this process
    probe = (
        "import sys; from pretrain.__main__ import main; code = main(sys.argv[1:]); "
        "heavy = sorted(m for m in ('torch', 'accelerate', 'transformers') if m in sys.modules); "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "cache hit" in done.stdout
    assert "HEAVY []" in done.stdout


def test_prepare_only_draws_no_bars_where_stderr_is_not_a_terminal(tmp_path, capsys):
    """A job's log file: ``datasets``' bars (one per pass over the corpus) are redraws joined by
    carriage returns there, so they are off (pytest's captured stderr is not a terminal)."""
    import datasets

    datasets.enable_progress_bars()  # another program run in this process may have turned them off
    try:
        assert pretrain_main(["--config", str(DEMO), "--prepare-only", *overrides(tmp_path / "cache")]) == 0
    finally:
        datasets.enable_progress_bars()
    captured = capsys.readouterr()
    assert "built in" in captured.out
    assert "\r" not in captured.err
