"""One writer at a time: a lock file per run directory and per corpus being built.

The lock is an advisory ``flock`` on ``<dir>/.lock`` (or ``<cache>/.<name>.lock``): the kernel
releases it when its holder exits, however it exits, so a killed run never blocks the next one.
The file names its holder (pid, host, start time, command) for the error message; a lock file
still there when we get the lock belonged to a run that was killed, and is taken over with a
warning. A clean release removes the file. ``flock`` works on local disks; on NFS it depends on
the mount (``local_lock``), so give each machine its own output directory there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from bert_helu.runtime.atomic import FILE_MODE
from bert_helu.runtime.errors import UserError


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    command = holder.get("command", "")
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since}" + (
        f": {command}" if command else ""
    )


def _storage_error(what: str, path: Path, err: OSError) -> UserError:
    reason = "no space left" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return UserError(f"{what} {path}: cannot write there ({reason})")


class FileLock:
    """``with FileLock(path, what):`` hold ``path`` exclusively (see the module docstring).

    ``wait=False``: a held lock raises a UserError naming the holder. ``wait=True``: say who is
    being waited for, then wait.
    """

    def __init__(self, path: str | os.PathLike, what: str, wait: bool = False, label: str | None = None):
        self.path, self.what, self.wait = Path(path), what, wait
        self.label = label or str(self.path.parent)
        self.fd: int | None = None
        self.taken_over: dict | None = None  # the holder of a stale lock we took over

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        waited = False
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                if not self.wait:
                    os.close(fd)
                    raise UserError(
                        f"{self.label} is in use by another run ({_describe(holder)}); "
                        f"wait for it to finish or use another {self.what}"
                    ) from None
                if not waited:
                    print(f"waiting for {_describe(holder)}, which is building {self.label}", file=sys.stderr)
                    waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            # the holder we waited for may have removed the file: then we locked a ghost; retry
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        previous = _read_holder(fd)
        if previous:  # a released lock leaves no file: this one's holder died holding it
            self.taken_over = previous
            print(
                f"warning: took over the lock of {self.label} from a run that no longer runs "
                f"({_describe(previous)})",
                file=sys.stderr,
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as err:
            raise _storage_error(self.what, self.path.parent, err) from None
        return fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before unlocking: a waiter then sees the file is gone and retries
        os.close(self.fd)
        self.fd = None


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?", "host": "?"}


class RunDirLock(FileLock):
    """The lock of a run directory (``--output-dir``): one run writes it at a time.

    A directory the lock had to create is removed again on release if the run left nothing in it,
    so a run refused early leaves no trace.
    """

    def __init__(self, directory: str | os.PathLike, what: str = "--output-dir"):
        directory = Path(directory)
        super().__init__(directory / ".lock", what, wait=False, label=str(directory))
        self.directory = directory
        self.created = False

    def acquire(self) -> None:
        self.created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _storage_error(self.what, self.directory, err) from None
        try:
            super().acquire()
        except BaseException:
            self._remove_if_empty()
            raise

    def release(self) -> None:
        super().release()
        self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # only succeeds if empty
