"""Writing results: raw JSON and Markdown tables, atomically."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from bert_helu.runtime.atomic import atomic_write_json, atomic_write_text
from bert_helu.runtime.precision import cpu_info, cpu_kind


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    """Where a measurement was taken: timings mean little without it."""
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **cpu_info(),
        "cpu_kind": cpu_kind(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_outputs(out_dir: Path, name: str, data: dict, markdown: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "json": atomic_write_json(out_dir / f"{name}.json", data),
        "markdown": atomic_write_text(out_dir / f"{name}.md", markdown),
    }


# A CPU benchmark's numbers belong to the kind of CPU they were measured on (bert_helu.runtime.precision):
# with native bf16 the matmuls are ~2x faster and the host-side share of a step doubles. One page
# keeps a section per kind, so a run on one kind never overwrites the other's.
CPU_KIND_TITLES = {
    "fp32": "CPUs without native bf16 (AVX2 / AVX512 without BF16): fp32",
    "native-bf16": "CPUs with native bf16 (AVX512-BF16 / AMX): bf16 autocast",
    "gpu": "GPUs",
}


def kind_of(results: dict) -> str:
    """The CPU kind a stored result was measured on (from its machine's flags if it predates the field)."""
    machine_ = results.get("machine", {})
    if machine_.get("cuda"):
        return "gpu"
    if "cpu_kind" in machine_:
        return machine_["cpu_kind"]
    return "native-bf16" if {"avx512_bf16", "amx_bf16"} & set(machine_.get("cpu_flags", ())) else "fp32"


def write_per_cpu_kind(json_path, markdown_path, results: dict, render, title: str) -> dict:
    """Store ``results`` as its CPU kind's section of ``json_path`` (``{"by_cpu_kind": {kind: ...}}``)
    and write ``markdown_path``: ``title``, then ``render(results)`` of every kind, headings one
    level down. A file of one result without sections is kept as its own kind's section."""
    json_path, markdown_path = Path(json_path), Path(markdown_path)
    stored = json.loads(json_path.read_text()) if json_path.is_file() else {}
    sections = stored.get("by_cpu_kind") or ({kind_of(stored): stored} if stored else {})
    sections[kind_of(results)] = results
    atomic_write_json(json_path, {"by_cpu_kind": sections})
    parts = [title.rstrip() + "\n"]
    for kind in sorted(sections, key=list(CPU_KIND_TITLES).index):
        body = re.sub(r"^(#+) ", r"#\1 ", render(sections[kind]), flags=re.MULTILINE)
        parts.append(f"## {CPU_KIND_TITLES[kind]}\n\n{body.strip()}\n")
    atomic_write_text(markdown_path, "\n".join(parts))
    return sections
