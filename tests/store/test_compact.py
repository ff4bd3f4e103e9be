"""Deleting documents gives space back: ``compact`` on demand, and by itself after a publish
that leaves enough of meta.db free; readers keep answering, and a crash loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from indexer.update import compact, delete_documents, upsert_documents
from search import Index
from store import IndexDir, compaction
from store.check import check_index
from store.database import PAGE_SIZE
from tests.fakes import HashingEmbedder
from tests.helpers import eval_texts

N_DOCS = 1500
DIMENSION = 512
"""use-multilingual's width: a stored vector is 2 KB, as in a real index of short texts."""
QUERIES = ["Tom", "Mary", "Hund", "chat", "perro", "кошка"]
FAKES = Path(__file__).resolve().parents[1] / "fakes.py"


def _embedder() -> HashingEmbedder:
    return HashingEmbedder(DIMENSION)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """An index of N_DOCS short multilingual sentences, one document each."""
    texts = [r["text"] for t in ("deu", "fra", "spa", "rus") for r in eval_texts(f"tatoeba-{t}", "queries")]
    path = tmp_path_factory.mktemp("compact") / "base.idx"
    upsert_documents(path, [{"id": f"d{i:04d}", "text": texts[i]} for i in range(N_DOCS)], model=_embedder())
    return path


@pytest.fixture
def index(base, tmp_path, monkeypatch) -> Path:
    """A copy of the base index; no automatic reclaim unless a test turns it on."""
    monkeypatch.setattr(compaction, "RECLAIM_MIN_FREE_BYTES", 1 << 60)
    path = tmp_path / "t.idx"
    shutil.copytree(base, path)
    return path


DOOMED = [f"d{i:04d}" for i in range(N_DOCS) if i % 5]
"""80% of the documents."""


def _results(path: Path) -> list[list[tuple[int, float]]]:
    with Index.open(path, model=_embedder()) as idx:
        return [[(h.chunk_id, round(h.score, 5)) for h in idx.search(q, k=10)] for q in QUERIES]


def _live(path: Path) -> list[tuple]:
    with IndexDir.open_for_reading(path) as idx:
        return idx.meta.conn.execute(
            "SELECT d.doc_id, c.id, c.text FROM chunks c JOIN documents d ON d.id = c.document "
            "WHERE d.pending = 0 ORDER BY c.id"
        ).fetchall()


def _pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path / "meta.db")
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def _usage(path: Path) -> compaction.SpaceUsage:
    return compaction.space_usage(path, "faiss")


def test_compact_after_deleting_80_percent_leaves_at_most_30_percent(index):
    built = _usage(index).total
    assert _pragma(index, "auto_vacuum") == 2  # new indexes can give pages back incrementally
    assert _pragma(index, "page_size") == PAGE_SIZE == 16384  # vector rows fill their pages
    delete_documents(index, DOOMED)
    # The issue: deleting left the directory as large as before (free pages, the old FAISS version).
    assert _usage(index).total >= built
    expected, live = _results(index), _live(index)

    report = compact(index)

    # A fifth of the documents stays, so a fifth of the bytes plus a few pages per table and
    # index (tens of kB, under 1% of this index): 30% is the bound with room to spare.
    assert report.after.total <= 0.30 * built, report
    assert report.before.total - report.after.total == report.reclaimed > 0.6 * built
    assert report.vacuum == "full" and report.fts_merged and report.checkpointed
    assert report.free_pages > 0 and report.page_size == PAGE_SIZE
    assert len(report.faiss_removed) >= 1  # the version before the delete (and the empty first one)
    assert len(os.listdir(index / "faiss")) == 1
    assert _live(index) == live and _results(index) == expected
    check = check_index(index)
    assert check.ok and check.warnings == [], check
    again = compact(index)  # nothing left to give back
    assert again.free_pages == 0 and again.faiss_removed == () and abs(again.reclaimed) < 64 << 10


def test_readers_keep_answering_through_compaction_and_see_the_same_results(index, tmp_path, monkeypatch):
    stale = Index.open(index, model=_embedder(), mmap=True)  # maps the version from before the delete
    delete_documents(index, DOOMED)
    expected = _results(index)
    reader = Index.open(index, model=_embedder())
    stop = threading.Event()
    errors: list[str] = []
    seen: list[list[int]] = []

    def search_in_a_loop() -> None:
        while not stop.is_set():
            try:
                reader.refresh()
                seen.extend([h.chunk_id for h in reader.search(q, k=10)] for q in QUERIES)
            except Exception as exc:  # every error counts
                errors.append(repr(exc))

    # A reader in the middle of a read transaction, from before the compaction to after it.
    snapshot = IndexDir.open_for_reading(index)
    snapshot.meta.conn.execute("BEGIN")
    chunks_before, pages_before = snapshot.meta.count("chunks"), snapshot.meta.free_space().pages
    thread = threading.Thread(target=search_in_a_loop)
    thread.start()
    monkeypatch.setenv("BABELINDEX_PAUSE_AT", "vacuum:0.003")  # a slow VACUUM, so that searches overlap it
    monkeypatch.setattr(compaction, "CHECKPOINT_WAIT", 0.2)
    try:
        report = compact(index)
        monkeypatch.delenv("BABELINDEX_PAUSE_AT")
        assert snapshot.meta.free_space().pages == pages_before  # the old state, before the VACUUM …
        with IndexDir.open_for_reading(index) as fresh:  # … a new reader: the new one
            assert fresh.meta.free_space().pages < 0.4 * pages_before
        assert snapshot.meta.count("chunks") == chunks_before  # and no error
        ids = [cid for row in seen[:3] for cid in row]
        assert set(snapshot.meta.hits(ids)) == set(ids)
    finally:
        stop.set()
        thread.join()
        snapshot.meta.conn.execute("COMMIT")
    assert errors == []
    assert len(seen) > 3 * len(QUERIES)
    expected_ids = [[cid for cid, _ in rows] for rows in expected]
    assert all(row in expected_ids for row in seen)
    # The open snapshot kept the checkpoint from finishing: the WAL holds the compacted file.
    assert not report.checkpointed and report.after.wal > 0
    snapshot.close()
    assert _results(index) == expected
    # The version the stale reader maps was removed (its file, not its pages): it still answers,
    # with the chunks that are live, and then moves on to the current version.
    assert stale.version < reader.version and not (index / "faiss" / f"v{stale.version:06d}.faiss").exists()
    assert all(hit.doc_id not in DOOMED for q in QUERIES for hit in stale.search(q, k=10))
    assert (
        stale.refresh()
        and [[(h.chunk_id, round(h.score, 5)) for h in stale.search(q, k=10)] for q in QUERIES] == expected
    )
    stale.close()
    finished = compact(index)
    assert finished.checkpointed and finished.after.total <= 0.30 * finished.before.total + (1 << 20)
    reader.close()


RUN = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fakes", sys.argv[3])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
from indexer.update import compact, delete_documents
from store import compaction
if sys.argv[2] == "compact":
    compact(sys.argv[1])
else:  # delete, with the automatic reclaim on for a small index
    compaction.RECLAIM_MIN_FREE_BYTES = 0
    delete_documents(sys.argv[1], sys.argv[4].split(","))
"""


def _run(path: Path, what: str, crash_at: str | None, doomed: list[str] | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BABELINDEX_CRASH")}
    if crash_at:
        env["BABELINDEX_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-c", RUN, str(path), what, str(FAKES), ",".join(doomed or [])]
    return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120).returncode


def _vacuum_steps(path: Path, tmp_path: Path, monkeypatch) -> int:
    """How often a compaction of (a copy of) ``path`` passes the crash point ``vacuum``."""
    probe = tmp_path / "probe.idx"
    shutil.copytree(path, probe)
    mark = tmp_path / "passages"
    monkeypatch.setenv("BABELINDEX_PAUSE_AT", "vacuum:0")
    monkeypatch.setenv("BABELINDEX_PAUSE_MARK", str(mark))
    compact(probe)
    monkeypatch.delenv("BABELINDEX_PAUSE_AT")
    monkeypatch.delenv("BABELINDEX_PAUSE_MARK")
    return len(mark.read_text().splitlines())


def test_a_compaction_killed_at_any_point_loses_nothing(index, tmp_path, monkeypatch):
    delete_documents(index, DOOMED)
    live, expected, after_delete = _live(index), _results(index), _usage(index).total
    steps = _vacuum_steps(index, tmp_path, monkeypatch)
    assert steps > 10
    points = ["commit:1", "vacuum:1", f"vacuum:{steps // 2}", f"vacuum:{steps - 1}", "checkpoint:1"]
    for n, point in enumerate(points):
        crashed = tmp_path / f"crash-{n}.idx"
        shutil.copytree(index, crashed)
        assert _run(crashed, "compact", point) == -signal.SIGKILL, f"{point} was never reached"
        report = check_index(crashed)
        assert report.ok, (point, report.problems)
        assert _live(crashed) == live and _results(crashed) == expected, point
        assert compact(crashed).after.total <= 0.30 * after_delete, point  # the next compaction finishes the job
        assert check_index(crashed).warnings == []


def test_a_delete_killed_while_it_reclaims_space_keeps_the_delete(index):
    doomed = DOOMED[: len(DOOMED) // 2]
    for point in ("vacuum:1", "checkpoint:1"):
        crashed = index.with_name(f"reclaim-{point[:-2]}.idx")
        shutil.copytree(index, crashed)
        assert _run(crashed, "delete", point, doomed) == -signal.SIGKILL, f"{point} was never reached"
        assert check_index(crashed).ok
        left = {row[0] for row in _live(crashed)}
        assert len(left) == N_DOCS - len(doomed) and not left & set(doomed)  # published before the reclaim


def _free_share(path: Path) -> float:
    return _pragma(path, "freelist_count") / _pragma(path, "page_count")


def test_a_publish_reclaims_space_past_the_threshold_and_not_below(index, monkeypatch):
    conn = sqlite3.connect(index / "meta.db")  # an index written before incremental vacuum
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    conn.close()
    assert _pragma(index, "auto_vacuum") == 0
    monkeypatch.setattr(compaction, "RECLAIM_MIN_FREE_BYTES", 8 << 20)  # the default
    delete_documents(index, DOOMED[:800])  # 53% of the documents: past the share, below 8 MiB
    assert _free_share(index) > compaction.RECLAIM_FREE_SHARE
    assert _pragma(index, "freelist_count") * PAGE_SIZE < 8 << 20

    monkeypatch.setattr(compaction, "RECLAIM_MIN_FREE_BYTES", 256 << 10)
    size = (index / "meta.db").stat().st_size
    delete_documents(index, DOOMED[800:850])  # past both: a full VACUUM …
    assert _pragma(index, "freelist_count") == 0 and (index / "meta.db").stat().st_size < 0.7 * size
    assert _pragma(index, "auto_vacuum") == 2  # … which turned incremental vacuum on

    monkeypatch.setattr(compaction, "RECLAIM_MIN_FREE_BYTES", 64 << 10)
    delete_documents(index, DOOMED[850:980])  # 130 of 700 documents: past 64 kB, below the share
    assert 0.05 < _free_share(index) < compaction.RECLAIM_FREE_SHARE
    assert _pragma(index, "freelist_count") * PAGE_SIZE > 64 << 10
    size = (index / "meta.db").stat().st_size
    delete_documents(index, DOOMED[980:])  # past the share again: an incremental vacuum
    assert _pragma(index, "freelist_count") == 0 and (index / "meta.db").stat().st_size < 0.8 * size
    assert check_index(index).ok
    assert len({row[0] for row in _live(index)}) == N_DOCS - len(DOOMED)


def test_a_reclaim_that_fails_warns_and_keeps_what_was_published(index, monkeypatch):
    monkeypatch.setattr(compaction, "RECLAIM_MIN_FREE_BYTES", 0)

    def full_disk(self, *, full):
        raise sqlite3.OperationalError("database or disk is full")

    from store.database import MetaStore

    monkeypatch.setattr(MetaStore, "vacuum", full_disk)
    with pytest.warns(UserWarning, match="published changes are live.*indexer compact"):
        assert delete_documents(index, DOOMED) == len(DOOMED)
    assert len(_live(index)) == N_DOCS - len(DOOMED)
