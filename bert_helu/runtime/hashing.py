"""Content hashes: what cache fingerprints and run identities compare, never paths or dates.

One scheme, BLAKE2b, for every fingerprint and identity; downloads are listed by SHA-256, which
``sha256sum -c`` checks. Files are read in chunks: a checkpoint's weights need not fit in memory
twice.

Digest sizes: 16 bytes (32 hex digits) for file and checkpoint contents, pretraining recipes and
fine-tuning tokenisation caches. Two stored values keep 8 bytes, because changing them would change
what was already written: a prepared corpus's fingerprint (``CORPUS_DIGEST_BYTES``) names its cache
folder and is part of every pretraining run's identity, so another size would refuse to resume
every run in progress and rebuild every corpus; a document's 64-bit hash (``text_hash``) decides
deduplication and the validation split, so another one would change the data itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

DIGEST_BYTES = 16
CORPUS_DIGEST_BYTES = 8
_CHUNK = 1 << 22


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b of one file's content (OSError when it cannot be read)."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    _update(digest, path)
    return digest.hexdigest()


def named_files_digest(paths: Iterable[str | os.PathLike]) -> str:
    """BLAKE2b of several files: each one's name (not its directory) and content, in the order given."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        _update(digest, path)
    return digest.hexdigest()


def text_digest(text: str, size: int = DIGEST_BYTES) -> str:
    """BLAKE2b of a text (UTF-8), ``2 * size`` hex digits."""
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def json_digest(value, size: int = DIGEST_BYTES) -> str:
    """BLAKE2b of a JSON value, independent of key order (values JSON cannot write count as str)."""
    return text_digest(json.dumps(value, sort_keys=True, default=str), size)


def text_hash(text: str) -> int:
    """A text's signed 64-bit BLAKE2b (collision odds ~n^2/2^65: negligible for 10^8 documents)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    _update(digest, path)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of bytes, as ``sha256sum`` prints it for a file holding them."""
    return hashlib.sha256(data).hexdigest()


def _update(digest, path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
