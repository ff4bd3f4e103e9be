"""The single-writer lock of an index directory.

One process at a time may write an index. The lock is an exclusive ``flock`` on
``<index>/write.lock``: the kernel releases it when the holder exits, even on SIGKILL, so a
lock is never stale. The holder writes who it is into the file (its pid, host, the command's
name without its options — a token given as an option must not reach a file — and since
when), so that a second writer can say whom it is waiting for. Every failure after the flock
is taken releases it again.
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
from store.storage_errors import translate

LOCK_FILE = "write.lock"
POLL_SECONDS = 0.1
"""How often a writer told to wait tries the lock again."""


def command_name(argv: list[str] | None = None) -> str:
    """The program's name and its subcommand (``indexer serve``), never an option or its value."""
    argv = sys.argv if argv is None else argv
    words = [os.path.basename(argv[0])] if argv else []
    if len(argv) > 1 and not argv[1].startswith("-"):
        words.append(argv[1])
    return " ".join(words)[:80]


class WriterLock:
    """An exclusive writer lock on an index directory.

    Use as a context manager, or call :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, trying for up to ``wait`` seconds (0: once), or raise
        :class:`IndexLocked` naming the holder. :class:`DiskFull` if its file cannot be written."""
        deadline = time.monotonic() + wait
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise translate(exc, self.path.parent) from exc
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _read_holder(fd)
                        waited = f" after waiting {wait:g} s" if wait > 0 else ""
                        raise IndexLocked(
                            f"{self.path.parent} is being written by {holder}{waited}. Only one writer at a "
                            "time: wait for it to finish (searches keep working meanwhile), or give --wait SECONDS."
                        ) from None
                    time.sleep(POLL_SECONDS)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command_name(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
            except OSError as exc:
                raise translate(exc, self.path.parent) from exc
        except BaseException:
            os.close(fd)  # closing the descriptor releases the flock, if it was taken
            raise
        self._fd = fd

    def release(self) -> None:
        """Release the lock (idempotent; the lock goes even if its file cannot be emptied)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # only the holder's description stays behind
        finally:
            os.close(fd)

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
