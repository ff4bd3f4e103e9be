"""The single-writer lock: a second writer fails at once, naming the holder."""

from __future__ import annotations

import os
import time

import pytest

from store import IndexDir, IndexLocked
from store.lock import WriterLock


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    first = IndexDir.open_for_writing(tmp_path / "i.idx")
    try:
        started = time.monotonic()
        with pytest.raises(IndexLocked) as err:
            IndexDir.open_for_writing(tmp_path / "i.idx")
        assert time.monotonic() - started < 5.0  # at once: not SQLite's 30 s busy timeout
        assert f"is being written by pid {os.getpid()} on " in str(err.value)
        assert "wait for it to finish" in str(err.value)
        # Readers need no lock.
        with IndexDir.open_for_reading(tmp_path / "i.idx") as reader:
            assert reader.faiss_info() is None
    finally:
        first.close()
    IndexDir.open_for_writing(tmp_path / "i.idx").close()  # released: the next writer gets it


def test_releasing_is_idempotent_and_clears_the_holder(tmp_path):
    lock = WriterLock(tmp_path)
    lock.acquire()
    assert b'"pid"' in (tmp_path / "write.lock").read_bytes()
    lock.release()
    lock.release()
    assert (tmp_path / "write.lock").read_bytes() == b""


def test_a_writer_killed_before_creating_meta_db_leaves_a_directory_the_next_one_accepts(tmp_path):
    # A build SIGKILLed between taking the lock and creating meta.db left only write.lock,
    # and the next build refused the directory as "not a babelindex index".
    (tmp_path / "i.idx").mkdir()
    (tmp_path / "i.idx" / "write.lock").write_bytes(b"")
    IndexDir.open_for_writing(tmp_path / "i.idx").close()
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert idx.meta.get_setting("schema_version") == 1
