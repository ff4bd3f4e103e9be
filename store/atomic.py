"""Writing a file so that it is either whole or absent: temporary name, fsync, rename, fsync dir.

Every file babelindex writes in place of another (FAISS versions, staging shards, build
records, cached decisions, prepared corpora) goes through :func:`atomic_write`, so a process
killed at any point leaves the old file or the new one, never a part of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.storage_errors import storage_errors

TMP_SUFFIX = ".tmp"
"""Temporaries are ``.<name>.<pid>.tmp`` beside their target: hidden, recognisable as
leftovers, and distinct for two processes writing the same file (a shared cache)."""


def temporary_path(path: Path) -> Path:
    """Where :func:`atomic_write` writes ``path`` before it renames it: ``.<name>.<pid>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: Path, *, before_rename: Callable[[], None] | None = None) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` atomically once the block ends.

    The data goes to :func:`temporary_path`, is flushed and fsynced, ``before_rename`` (a
    crash point in tests) is called, the file is renamed over ``path`` and the directory
    fsynced. If the block raises, the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = temporary_path(path)
    with storage_errors(path.parent):  # a full disk is DiskFull, a read-only one ReadOnlyIndex
        try:
            with open(tmp, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_rename(tmp: Path, path: Path) -> None:
    """fsync the finished file ``tmp``, rename it to ``path`` and fsync the directory (for files
    written by another library under a temporary name of their own, such as SQLite's)."""
    with storage_errors(path.parent):
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
