"""Is there somewhere to write? Checked before a run starts working, not when its first save fails."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from bert_helu.runtime.errors import UserError

MB = 1e6


def _reason(err: OSError) -> str:
    return "no space left" if err.errno == errno.ENOSPC else (err.strerror or type(err).__name__)


def check_writable(directory: str | os.PathLike, what: str) -> Path:
    """Create ``directory`` if needed and write (then remove) a small file in it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.tmp-", dir=directory)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise UserError(f"{what} {directory}: cannot write there ({_reason(err)})") from None
    return directory


def check_free_space(directory: str | os.PathLike, needed_bytes: float, what: str, purpose: str) -> None:
    """Refuse to start when ``directory``'s file system has less room than ``purpose`` will need."""
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise UserError(
            f"{what} {directory}: {free / MB:,.0f} MB free, but {purpose} needs about "
            f"{needed_bytes / MB:,.0f} MB; free some space or choose another {what}"
        )
