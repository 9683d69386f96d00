"""Writing results: raw JSON and Markdown tables, atomically."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bert_helu.atomic import atomic_write_json, atomic_write_text
from bert_helu.precision import cpu_info, cpu_kind


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
