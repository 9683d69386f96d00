"""Writes that either complete or leave nothing: a crash never leaves a file or directory that
looks finished (checkpoints, caches, results).

Every write is made durable before it is published: the data is fsynced, then renamed into place,
then the directory holding it is fsynced (without that last step a power cut can lose the rename).
Files and directories get the permissions the user's umask gives (mkstemp/mkdtemp would make them
private, 0600/0700, which a shared results folder does not want).

Temporary names are ``.<name>.tmp-<random>`` and ``.<name>.old-<pid>``; ``remove_leftovers``
deletes those a killed process left behind (call it only while holding the directory's lock).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

_LEFTOVER = re.compile(r"^\..+\.(tmp|old)-[^/]+$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publishable_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (a directory about to be published), and give
    them the umask's permissions (some writers, transformers' among them, make private temp files)."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fchmod(fd, FILE_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(directory, DIR_MODE)
        fsync_dir(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class atomic_dir:
    """``with atomic_dir(final) as tmp:`` write into ``tmp``; it replaces ``final`` only on success."""

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=self.final.parent))
        os.chmod(self.tmp, DIR_MODE)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            publishable_tree(self.tmp)
            if self.final.exists():
                old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
                os.replace(self.final, old)
                os.replace(self.tmp, self.final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.final)
            fsync_dir(self.final.parent)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return False


def remove_leftovers(root: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Delete the temporary files and directories of interrupted atomic writes under ``root``.

    Only safe while nobody else writes there (the caller holds the directory's lock). ``prefix``
    limits the clean-up to leftovers of one name (``corpus-<fingerprint>``, say) in ``root`` itself.
    """
    removed = []
    for directory, dirs, files in os.walk(root):
        if prefix and Path(directory) != Path(root):
            break
        for name in [*dirs, *files]:
            if _LEFTOVER.match(name) and name[1:].startswith(prefix):
                path = Path(directory) / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        dirs[:] = [d for d in dirs if not _LEFTOVER.match(d)]
    return removed
