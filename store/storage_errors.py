"""What the disk says, in the words of the error tree: a full disk and a read-only
filesystem each become one clear error (:class:`DiskFull`, :class:`ReadOnlyIndex`) wherever
the store writes: the lock file, SQLite, FAISS versions, staging shards."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from store.errors import DiskFull, ReadOnlyIndex

FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(where: Path) -> DiskFull:
    return DiskFull(
        f"the disk holding {where} is full: nothing was changed (the last published version is still served). "
        "Free some space, then run the command again; it resumes where it stopped."
    )


def read_only(where: Path) -> ReadOnlyIndex:
    return ReadOnlyIndex(
        f"{where} is on a read-only filesystem (or not writable by this user): it can be searched, not "
        "written. Copy it to a writable disk to change it."
    )


def translate(exc: BaseException, where: Path) -> BaseException:
    """The error tree's error for an ``OSError`` or ``sqlite3`` error, else ``exc`` itself."""
    if isinstance(exc, OSError):
        if exc.errno in FULL:
            return disk_full(where)
        if exc.errno in (errno.EROFS, errno.EACCES):
            return read_only(where)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "disk is full" in text or "database or disk is full" in text:
            return disk_full(where)
        if "readonly database" in text or "read-only" in text:
            return read_only(where)
    return exc


@contextmanager
def storage_errors(where: Path) -> Iterator[None]:
    """Raise the error tree's error for a full disk or a read-only filesystem met inside."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        better = translate(exc, where)
        if better is exc:
            raise
        raise better from exc
