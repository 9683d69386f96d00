"""Checkpoints as the command lines take them: ``DIR`` or ``NAME=DIR``.

The name labels a checkpoint's results (its folder under a fine-tuning output dir, its rows in
tables and plots). Without one, a checkpoint is named by its folder, or by the folder above when
its own says nothing about the run (``runs/helu/final`` -> ``helu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bert_helu.runtime.errors import UserError

_ANONYMOUS_DIRS = {"final", "model", "checkpoint", "best", "last"}


@dataclass(frozen=True)
class NamedCheckpoint:
    name: str
    path: Path


def parse_checkpoints(items: list[str]) -> list[NamedCheckpoint]:
    """``path`` or ``name=path`` each; two checkpoints of one name are refused."""
    out: list[NamedCheckpoint] = []
    for item in items:
        name, eq, raw = item.partition("=")
        path = Path(raw if eq else item)
        if not eq:
            name = path.parent.name if path.name in _ANONYMOUS_DIRS and path.parent.name else path.name
        _check_name(name, item)
        if any(c.name == name for c in out):
            raise UserError(f"two checkpoints are both named {name!r}; write name=path for one of them")
        out.append(NamedCheckpoint(name, path))
    return out


def _check_name(name: str, item: str) -> None:
    """A checkpoint's name is a folder of the output dir: one plain path component, never ``..``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise UserError(f"checkpoint {item!r}: {name!r} cannot name a results folder; write name=path")
