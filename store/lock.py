"""The single-writer lock of an index directory.

One process at a time may write an index. The lock is an exclusive ``flock`` on
``<index>/write.lock``: the kernel releases it when the holder exits, even on SIGKILL, so a
lock is never stale. The holder writes who it is into the file, so that a second writer can
say whom it is waiting for.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from store.errors import IndexLocked

LOCK_FILE = "write.lock"


class WriterLock:
    """An exclusive, non-blocking writer lock on an index directory.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`IndexLocked` at once, naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise IndexLocked(
                f"{self.path.parent} is being written by {holder}. Only one writer at a "
                "time: wait for it to finish (searches keep working meanwhile)."
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """Describe the process that holds the lock, from what it wrote into the file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (ValueError, KeyError, OSError):
        return "another process"
