"""Content hashes of files: what cache fingerprints and run identities compare, never paths or dates.

Fingerprints and identities use BLAKE2b of 16 bytes; changing that changes every one already
written (prepared corpora would be rebuilt, finished fine-tuning runs redone). Downloads are
listed by SHA-256, which ``sha256sum -c`` checks. Files are read in chunks: a checkpoint's weights
need not fit in memory twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

_CHUNK = 1 << 22


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b of one file's content (OSError when it cannot be read)."""
    digest = hashlib.blake2b(digest_size=16)
    _update(digest, path)
    return digest.hexdigest()


def named_files_digest(paths: Iterable[str | os.PathLike]) -> str:
    """BLAKE2b of several files: each one's name (not its directory) and content, in the order given."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        _update(digest, path)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    _update(digest, path)
    return digest.hexdigest()


def _update(digest, path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
