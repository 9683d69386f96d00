"""Benchmark corpus preparation on the real corpus in ../shared/data (Wikipedia shards + books).

    HF_HUB_OFFLINE=1 nice .venv/bin/python scripts/bench_prepare.py            # ~5-10 min on 2 cores

Runs, in a fresh cache directory:
1. a cold ``prepare_corpus`` (tokenizer training included): throughput in MB/s of raw document text;
2. the same recipe again through the CLI (``python -m pretrain --prepare-only``): a cache hit, timed
   as wall clock of the whole command (Python start-up and imports included);
3. the CLI with one option changed (``data.seq_len``): must not hit the cache.

Prints and writes ``docs/bench_prepare.json`` and ``docs/bench_prepare.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sources_for(data_dir: Path) -> list[dict]:
    return [
        {"type": "wikiextractor", "path": str(data_dir / "wikipedia" / "*.txt.gz")},
        {"type": "text", "path": str(data_dir / "books" / "*.txt")},
    ]


def cli_prepare(data_cfg: dict, config: Path) -> tuple[float, str]:
    """Wall time and output of ``python -m pretrain --prepare-only`` with the data section overridden."""
    overrides = [f"data.{key}={json.dumps(value)}" for key, value in data_cfg.items()]
    command = [sys.executable, "-m", "pretrain", "--config", str(config), "--prepare-only", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # relative to where it runs, as the page names it: ../shared/data from the repository root
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.path.relpath(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "pretrain" / "demo.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench_prepare")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args(argv)
    if args.markdown_only:
        args.out.with_suffix(".md").write_text(
            markdown(json.loads(args.out.with_suffix(".json").read_text()))
        )
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not (args.data_dir / "wikipedia").is_dir():
        raise SystemExit(f"{args.data_dir}: no wikipedia/ here (the shared corpus is needed)")

    from bert_helu.data import DATA_DEFAULTS, format_summary, prepare_corpus

    cache_dir = Path(tempfile.mkdtemp(prefix="bench_prepare-"))
    data_cfg = {
        **DATA_DEFAULTS,
        "sources": sources_for(args.data_dir.resolve()),
        "vocab_size": args.vocab_size,
        "seq_len": args.seq_len,
        "num_proc": args.num_proc,
        "cache_dir": str(cache_dir),
    }
    try:
        return run(args, data_cfg, format_summary, prepare_corpus)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def run(args, data_cfg: dict, format_summary, prepare_corpus) -> int:
    from bert_helu.runtime.paths import display_path

    load_before = os.getloadavg()
    cpu_before = cpu_seconds()
    cold = prepare_corpus(data_cfg)
    cpu_used = cpu_seconds() - cpu_before
    warm = prepare_corpus(data_cfg)  # in-process: the cache hit without Python start-up
    print(format_summary(cold.summary), flush=True)
    startup_wall = cli_startup()
    hit_wall, hit_output = cli_prepare(data_cfg, args.config)
    print(f"CLI, same recipe: {hit_wall:.2f} s wall\n{hit_output}", flush=True)
    changed = {**data_cfg, "seq_len": args.seq_len * 2}
    miss_wall, miss_output = cli_prepare(changed, args.config)
    print(f"CLI, seq_len={changed['seq_len']}: {miss_wall:.2f} s wall\n{miss_output}", flush=True)
    load_after = os.getloadavg()

    s = cold.summary
    result = {
        "command": "HF_HUB_OFFLINE=1 nice .venv/bin/python scripts/bench_prepare.py",
        "data_dir": display_path(args.data_dir),
        "num_proc": args.num_proc,
        "cpus": os.cpu_count(),
        "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "python": platform.python_version(),
        # not the cache path: a temporary directory, deleted at the end
        "cold": {k: s[k] for k in s if k not in ("sources", "cache_path")},
        # CPU seconds of this process and its workers: unlike wall time, not inflated by other users
        # of the machine. MB per CPU-second x cores = what idle cores would reach.
        "cold_cpu_s": round(cpu_used, 1),
        "mb_per_cpu_s": round(s["raw_text_mb"] / cpu_used, 3),
        "sources": [
            {
                **source,
                "source": source["source"].replace(str(args.data_dir.resolve()), display_path(args.data_dir)),
            }
            for source in s["sources"]
        ],
        "in_process_cache_hit_s": warm.summary["load_time_s"],
        "cli_startup_wall_s": round(startup_wall, 2),
        "cli_cache_hit_wall_s": round(hit_wall, 2),
        "cli_cache_hit": "cache hit" in hit_output,
        "cli_changed_option_wall_s": round(miss_wall, 2),
        "cli_changed_option_hit": "cache hit" in miss_output,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


def cli_startup() -> float:
    """Wall time of ``python -m pretrain --help``: interpreter start-up and imports, no data work."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pretrain", "--help"], cwd=REPO, capture_output=True, check=True)
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (datasets' worker processes)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def markdown(r: dict) -> str:
    c = r["cold"]
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in c["step_times_s"].items())
    rows = [
        ("raw document text", f"{c['raw_text_mb']:.1f} MB"),
        ("documents in / kept", f"{c['documents_in']:,} / {c['documents_kept']:,}"),
        ("dropped: empty (title-only stubs) / too short", f"{c['empty']:,} / {c['too_short']:,}"),
        ("duplicates removed", f"{c['duplicates']:,}"),
        ("train / validation documents", f"{c['train_documents']:,} / {c['validation_documents']:,}"),
        ("tokens train / validation", f"{c['tokens_train']:,} / {c['tokens_validation']:,}"),
        (
            f"sequences of {c['seq_len']} train / validation",
            f"{c['sequences_train']:,} / {c['sequences_validation']:,}",
        ),
        ("vocab size", f"{c['vocab_size']:,} ({c['tokenizer']})"),
        ("cold preparation, wall", f"{c['wall_time_s']:.1f} s ({steps})"),
        (f"**throughput ({r['num_proc']} processes), wall**", f"**{c['mb_per_s']:.2f} MB/s** of raw text"),
        (
            "CPU time of the cold preparation (all processes)",
            f"{r['cold_cpu_s']:.0f} s = {r['mb_per_cpu_s']:.2f} MB per CPU-second "
            f"(upper bound on {r['num_proc']} idle cores: ~{r['mb_per_cpu_s'] * r['num_proc']:.2f} MB/s; "
            "tokenizer training uses one core when TOKENIZERS_PARALLELISM=false)",
        ),
        ("second run in-process (cache hit): prepare_corpus", f"{r['in_process_cache_hit_s']:.2f} s"),
        ("`python -m pretrain --help` (start-up + imports only), wall", f"{r['cli_startup_wall_s']:.1f} s"),
        (
            "second run via CLI (cache hit), wall incl. imports",
            f"{r['cli_cache_hit_wall_s']:.1f} s (hit: {r['cli_cache_hit']})",
        ),
        (
            "changed option (seq_len x2) via CLI, wall",
            f"{r['cli_changed_option_wall_s']:.1f} s (hit: {r['cli_changed_option_hit']})",
        ),
        (
            "machine",
            f"{r['cpus']} CPUs, 1-min load average {r['load_average_1min_before_after']} (before/after)",
        ),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "# Corpus preparation benchmark\n\n"
        f"Command (from the repository root): `{r['command']}`\n\n"
        f"Real corpus in `{r['data_dir']}`: 4 English Wikipedia WikiExtractor shards + 16 Project Gutenberg "
        "books (see its MANIFEST.md); default recipe (uncased, NFC, min_chars 64, exact dedup, WordPiece "
        "trained on the corpus). Written by `scripts/bench_prepare.py`; numbers in `bench_prepare.json`.\n\n"
        "| measure | value |\n|---|---|\n" + table + "\n\n"
        "Tokenization dominates (the Rust WordPiece tokenizer, one process per core), then tokenizer "
        "training. Wall times depend on what else runs on the machine (see the load average): the CPU-time "
        "line does not. A cache hit through the CLI is mostly Python start-up: `--prepare-only` imports "
        "`datasets` (about 2 s with pandas and pyarrow) but never torch, transformers' models or accelerate "
        "(the training code loads only after that branch, and the tokenizer on first use); `--help` "
        "imports even less.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
