"""``indexer watch``: the worker keeps an index equal to a clean build of a folder that changes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.watch import BatchReport, Notice, Watcher, WatchOptions
from search import Index
from store.check import check_index
from store.worker_status import read_worker_status
from tests.helpers import write_files

FAST = WatchOptions(step_ms=50, debounce_ms=500, retry_seconds=0.5)
FAST_ARGS = ("--step-ms", "50", "--debounce-ms", "500", "--json")


def chunk_set(index: Path) -> set[tuple]:
    """The live chunks of an index: ``(doc_id, source, ord, text, start, end, lang)``."""
    conn = sqlite3.connect(f"file:{index / 'meta.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            'SELECT d.doc_id, d.source, c.ord, c.text, c.start, c."end", c.lang FROM chunks c '
            "JOIN documents d ON d.id = c.document WHERE d.pending = 0"
        ).fetchall()
    finally:
        conn.close()
    return set(rows)


class Clean:
    """Clean builds of a folder, to compare the watched index with."""

    def __init__(self, root: Path, model):
        self.root, self.model, self.n = root, model, 0

    def __call__(self, corpus: Path) -> set[tuple]:
        self.n += 1
        index = self.root / f"clean-{self.n}"
        build_index(corpus, index, model=self.model)
        return chunk_set(index) if (index / "meta.db").exists() else set()


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def running(tmp_path, tiny_model) -> Iterator[Callable[..., tuple[Watcher, list]]]:
    """Start watchers on a thread; each is stopped (and must stop cleanly) at the end."""
    started: list[tuple[Watcher, threading.Thread]] = []

    def start(corpus: Path, index: Path, **kwargs) -> tuple[Watcher, list]:
        events: list = []
        watcher = Watcher(
            corpus, index, model=tiny_model, options=kwargs.pop("options", FAST), on_event=events.append, **kwargs
        )
        watcher.start()
        thread = threading.Thread(target=watcher.loop, daemon=True)
        thread.start()
        started.append((watcher, thread))
        return watcher, events

    yield start
    for watcher, thread in started:
        watcher.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


def batches(events: list) -> list[BatchReport]:
    return [e for e in events if isinstance(e, BatchReport) and not e.initial]


def lexical_ids(index: Path, model, word: str) -> set[str]:
    with Index.open(index, model=model) as idx:
        return {h.doc_id for h in idx.search(word, k=50, mode="lexical")}


def test_the_index_follows_every_kind_of_change(tmp_path, tiny_model, running):
    corpus = write_files(
        tmp_path / "corpus",
        {
            "a.txt": "The aardvark digs burrows at night in the savanna.",
            "b.md": "# Notes\n\nThe bumblebee visits clover flowers in spring.",
            "rec.jsonl": "\n".join(
                json.dumps({"text": t}) for t in ("first cormorant", "second dolphin", "third eagle")
            ),
        },
    )
    index, clean = tmp_path / "idx", Clean(tmp_path, tiny_model)
    _, events = running(corpus, index)
    assert chunk_set(index) == clean(corpus)

    def converged(what: str) -> None:
        expected = clean(corpus)
        assert eventually(lambda: chunk_set(index) == expected), f"after {what}: {chunk_set(index) ^ expected}"

    # a plain rewrite
    (corpus / "a.txt").write_text("The zebra grazes on the open plain.")
    converged("a rewrite")
    assert lexical_ids(index, tiny_model, "zebra") == {"a.txt"}
    assert lexical_ids(index, tiny_model, "aardvark") == set()

    # an editor's save: swap file, backup, write to a temporary name, rename over the original
    (corpus / ".b.md.swp").write_bytes(b"\0swap")
    (corpus / "b.md~").write_text("backup of b")
    (corpus / "4913").write_text("")
    (corpus / "b.md.tmp").write_text("# Notes\n\nThe firefly glows in summer meadows.")
    os.replace(corpus / "b.md.tmp", corpus / "b.md")
    (corpus / ".b.md.swp").unlink()
    (corpus / "4913").unlink()
    converged("an atomic save")
    assert lexical_ids(index, tiny_model, "firefly") == {"b.md"}
    assert not any(s.startswith(("b.md~", ".b.md", "4913")) for _, s, *_ in chunk_set(index))

    # a rename moves the document without embedding its text again
    before = len(batches(events))
    os.rename(corpus / "a.txt", corpus / "c.txt")
    converged("a rename")
    assert lexical_ids(index, tiny_model, "zebra") == {"c.txt"}
    moved = batches(events)[before:]
    assert sum(b.chunks_embedded for b in moved) == 0 and sum(b.chunks_reused for b in moved) >= 1

    # a delete
    (corpus / "b.md").unlink()
    converged("a delete")
    assert lexical_ids(index, tiny_model, "firefly") == set()

    # folders: created with files, moved out of the corpus, moved back in under another name
    write_files(corpus, {"sub/deep/x.txt": "The gecko climbs walls.", "sub/y.txt": "The heron fishes."})
    converged("a new folder")
    shutil.move(corpus / "sub", tmp_path / "outside")
    converged("a folder moved out")
    shutil.move(tmp_path / "outside", corpus / "sub2")
    converged("a folder moved in")
    assert lexical_ids(index, tiny_model, "gecko") == {"sub2/deep/x.txt"}

    # a record file loses a record and changes another
    (corpus / "rec.jsonl").write_text(json.dumps({"text": "first cormorant"}) + "\n" + json.dumps({"text": "new ibis"}))
    converged("a changed record file")
    assert lexical_ids(index, tiny_model, "dolphin") == set()
    assert lexical_ids(index, tiny_model, "ibis") == {"rec.jsonl#2"}
    assert check_index(index).ok

    status = read_worker_status(index)
    assert status is not None and status.running and status.state == "watching"
    assert status.version is not None and status.publishes >= 8


def test_a_burst_of_2000_files_is_indexed_in_a_few_publishes(tmp_path, tiny_model, running):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    index = tmp_path / "idx"
    _, events = running(corpus, index, options=WatchOptions(step_ms=200, debounce_ms=2000))
    for i in range(2000):
        (corpus / f"f{i:04d}.txt").write_text(f"document number {i} about topic {i % 17}")
    assert eventually(lambda: len({d for d, *_ in chunk_set(index)}) == 2000, timeout=120)
    published = [b for b in batches(events) if b.version is not None]
    assert sum(b.added for b in batches(events)) == 2000
    assert 1 <= len(published) <= 20, [b.files for b in published]


def test_a_bad_file_is_reported_and_later_files_still_come_in(tmp_path, tiny_model, running):
    corpus = write_files(tmp_path / "corpus", {"ok.txt": "A good first file."})
    index = tmp_path / "idx"
    _, events = running(corpus, index)
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 this is no PDF at all")
    assert eventually(lambda: {s for b in batches(events) for s, _ in b.problems} >= {"binary.txt", "broken.pdf"})
    reasons = {s: r for b in batches(events) for s, r in b.problems}
    assert "binary" in reasons["binary.txt"] or "not text" in reasons["binary.txt"], reasons
    assert "unreadable PDF" in reasons["broken.pdf"], reasons
    (corpus / "later.txt").write_text("The quokka smiles.")
    assert eventually(lambda: lexical_ids(index, tiny_model, "quokka") == {"later.txt"})
    status = read_worker_status(index)
    assert status is not None and {e["source"] for e in status.errors} >= {"binary.txt", "broken.pdf"}
    # a bad file that is fixed is read again
    (corpus / "binary.txt").write_text("The wombat was binary once.")
    assert eventually(lambda: lexical_ids(index, tiny_model, "wombat") == {"binary.txt"})


def test_notices_and_a_stop_during_the_initial_pass_keep_the_work(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "corpus", {f"d{i}.txt": f"text {i} " * 30 for i in range(40)})
    events: list = []
    watcher = Watcher(corpus, tmp_path / "idx", model=tiny_model, options=FAST, on_event=events.append)
    watcher.stop()  # asked to stop before it even began: the initial pass stops at once
    watcher.run()
    assert any(isinstance(e, Notice) and "next start resumes" in e.message for e in events)
    status = read_worker_status(tmp_path / "idx")
    assert status is not None and status.state == "stopped" and not status.running


# -- the worker as a process: SIGTERM, SIGKILL ---------------------------------------------
def _worker(corpus: Path, index: Path, model_dir: Path, log: Path, **env: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "indexer.cli",
                "watch",
                str(corpus),
                "--index",
                str(index),
                "--model",
                str(model_dir),
                *FAST_ARGS,
            ],
            env=dict(os.environ, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _log_events(log: Path) -> list[dict]:
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def _watching(log: Path) -> bool:
    return any(e.get("event") == "notice" and e["message"].startswith("watching") for e in _log_events(log))


@pytest.mark.slow
def test_sigterm_during_a_batch_publishes_it_and_exits_0(tmp_path, tiny_model_dir, tiny_model):
    corpus = write_files(tmp_path / "corpus", {"first.txt": "The first file."})
    index, log, mark = tmp_path / "idx", tmp_path / "watch.log", tmp_path / "paused"
    proc = _worker(corpus, index, tiny_model_dir, log, BABELINDEX_PAUSE_AT="embed:2", BABELINDEX_PAUSE_MARK=str(mark))
    try:
        assert eventually(lambda: _watching(log), timeout=60), log.read_text()
        mark.unlink()  # the initial pass paused too
        (corpus / "second.txt").write_text("The narwhal has a long tusk.")
        assert eventually(mark.exists, timeout=20), log.read_text()
        proc.send_signal(signal.SIGTERM)  # the batch is between embedding and storing
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        proc.kill()
    last = [e for e in _log_events(log) if e.get("event") == "batch"][-1]
    assert last["added"] == 1 and last["version"] is not None
    assert lexical_ids(index, tiny_model, "narwhal") == {"second.txt"}
    status = read_worker_status(index)
    assert status is not None and status.state == "stopped"


def _change_stream(corpus: Path, rng: random.Random, stop: threading.Event) -> None:
    """Create, rewrite, rename and delete files until ``stop``."""
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    n = 0
    while not stop.is_set():
        files = sorted(p for p in corpus.rglob("*.txt"))
        op = rng.random()
        try:
            if op < 0.45 or not files:
                n += 1
                sub = corpus / rng.choice(["", "a", "b/c"])
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"new{n}.txt").write_text(" ".join(rng.choice(words) for _ in range(40)) + f" {n}")
            elif op < 0.7:
                tmp = corpus / f".save{n}.tmp"
                tmp.write_text(" ".join(rng.choice(words) for _ in range(30)) + f" edit {n}")
                os.replace(tmp, rng.choice(files))
            elif op < 0.85:
                n += 1
                rng.choice(files).rename(corpus / f"moved{n}.txt")
            else:
                rng.choice(files).unlink()
        except OSError:
            pass  # a file the stream itself moved meanwhile
        time.sleep(rng.uniform(0.005, 0.05))


def _loading(log: Path) -> bool:
    return any(e.get("event") == "notice" and e["message"].startswith("loading") for e in _log_events(log))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart_converges(tmp_path, tiny_model_dir, tiny_model):
    corpus = write_files(tmp_path / "corpus", {f"seed{i}.txt": f"seed text number {i} " * 20 for i in range(30)})
    index, log = tmp_path / "idx", tmp_path / "watch.log"
    rng = random.Random(20261201)
    stop = threading.Event()
    stream = threading.Thread(target=_change_stream, args=(corpus, rng, stop))
    stream.start()  # changes keep coming through every kill and restart
    moments = []
    try:
        for _ in range(5):
            log.write_text("")
            proc = _worker(corpus, index, tiny_model_dir, log)
            try:
                assert eventually(lambda p=proc: _loading(log) or p.poll() is not None, timeout=60), log.read_text()
                moments.append(rng.uniform(0.05, 2.5))  # from the initial pass to well into the watching
                time.sleep(moments[-1])
                assert proc.poll() is None, log.read_text()
            finally:
                proc.kill()  # SIGKILL, wherever it is: reading, embedding, writing, publishing
                proc.wait(timeout=10)
    finally:
        stop.set()
        stream.join()
    assert len(moments) == 5
    # the folder no longer changes: a restart converges on it
    log.write_text("")
    proc = _worker(corpus, index, tiny_model_dir, log)
    try:
        assert eventually(lambda: _watching(log), timeout=60), log.read_text()
        expected = Clean(tmp_path, tiny_model)(corpus)
        assert eventually(lambda: chunk_set(index) == expected, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    report = check_index(index)
    assert report.ok, report.problems


# -- the rules it shares with build ------------------------------------------------------
def test_build_leaves_out_temporary_and_excluded_files(tmp_path, tiny_model):
    corpus = write_files(
        tmp_path / "corpus",
        {
            "keep.txt": "kept",
            "notes.md~": "backup",
            "#notes.md#": "emacs autosave",
            "~$report.txt": "office lock",
            "x.tmp": "temporary",
            "drafts/a.txt": "a draft",
            "deep/drafts/b.txt": "another draft",
            "logs/run.log.txt": "log",
            "logs/keep.log.txt": "kept log",
        },
    )
    report = build_index(
        corpus, tmp_path / "idx", model=tiny_model, exclude=["drafts/", "logs/*.log.txt", "!logs/keep.log.txt"]
    )
    assert {d for d, *_ in chunk_set(tmp_path / "idx")} == {"keep.txt", "logs/keep.log.txt"}
    assert report.documents_skipped == 0  # left out silently: they are not part of the corpus
    # excluding a file later removes its documents, as a clean build would not have them
    again = build_index(corpus, tmp_path / "idx", model=tiny_model, exclude=["drafts/", "logs/"])
    assert again.documents_removed == 1
    assert {d for d, *_ in chunk_set(tmp_path / "idx")} == {"keep.txt"}


def test_a_renamed_file_is_not_embedded_again_by_build(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "corpus", {"a.txt": "The okapi lives in the rainforest. " * 40, "b.txt": "other"})
    first = build_index(corpus, tmp_path / "idx", model=tiny_model)
    os.rename(corpus / "a.txt", corpus / "renamed.txt")
    shutil.copy(corpus / "b.txt", corpus / "copy-of-b.txt")
    second = build_index(corpus, tmp_path / "idx", model=tiny_model)
    assert second.chunks_embedded == 0
    assert second.chunks_reused == first.chunks_embedded  # all of a.txt's chunks, and b.txt's one
    assert (second.documents_added, second.documents_removed) == (2, 1)
    assert chunk_set(tmp_path / "idx") == Clean(tmp_path, tiny_model)(corpus)
    assert check_index(tmp_path / "idx").ok


def test_polling_picks_up_changes_where_events_are_missing(tmp_path, tiny_model, running, monkeypatch):
    corpus = write_files(tmp_path / "corpus", {"a.txt": "The first version."})
    watcher, _ = running(corpus, tmp_path / "idx", options=WatchOptions(step_ms=50, debounce_ms=500, poll_seconds=0.1))
    assert watcher.mode == "polling"
    (corpus / "a.txt").write_text("The pangolin rolls into a ball.")
    assert eventually(lambda: lexical_ids(tmp_path / "idx", tiny_model, "pangolin") == {"a.txt"})
    # a network filesystem never delivers other machines' events: it is polled by default
    import indexer.watch as watch_module

    monkeypatch.setattr(watch_module, "filesystem_type", lambda path: "nfs4")
    other, notices = running(write_files(tmp_path / "nfs", {"b.txt": "b"}), tmp_path / "idx2")
    assert other.mode == "polling"
    assert any(isinstance(e, Notice) and "network filesystem (nfs4)" in e.message for e in notices)


def test_a_batch_waits_for_another_writer_and_is_not_lost(tmp_path, tiny_model, running):
    from store.index_dir import IndexDir

    corpus = write_files(tmp_path / "corpus", {"a.txt": "first"})
    index = tmp_path / "idx"
    options = WatchOptions(step_ms=50, debounce_ms=500, lock_wait=0.2, retry_seconds=0.3)
    _, events = running(corpus, index, options=options)
    with IndexDir.open_for_writing(index):  # another writer (a build, a server's upsert) holds the lock
        (corpus / "b.txt").write_text("The tapir waits its turn.")
        assert eventually(lambda: any(isinstance(e, Notice) and "wait for the next try" in e.message for e in events))
        assert lexical_ids(index, tiny_model, "tapir") == set()
    assert eventually(lambda: lexical_ids(index, tiny_model, "tapir") == {"b.txt"})


def test_a_single_file_corpus_survives_editor_saves(tmp_path, tiny_model, running):
    folder = write_files(tmp_path / "folder", {"notes.md": "The first note.", "other.md": "not part of it"})
    _, _ = running(folder / "notes.md", tmp_path / "idx")
    for n in range(3):  # each save replaces the file (a new inode)
        (folder / "notes.md.tmp").write_text(f"The save number {n} mentions the capybara{n}.")
        os.replace(folder / "notes.md.tmp", folder / "notes.md")
        assert eventually(lambda n=n: lexical_ids(tmp_path / "idx", tiny_model, f"capybara{n}") == {"notes.md"})
    assert {d for d, *_ in chunk_set(tmp_path / "idx")} == {"notes.md"}


@pytest.mark.slow
def test_serve_watch_serves_while_the_worker_ingests(tmp_path, tiny_model_dir):
    import httpx

    from tests.search.test_server_process import Server

    corpus = write_files(tmp_path / "corpus", {"a.txt": "The first file."})
    server = Server(
        tmp_path / "idx",
        tmp_path / "serve.log",
        "--watch",
        str(corpus),
        "--model",
        str(tiny_model_dir),
        "--step-ms",
        "50",
    )
    try:
        (corpus / "b.txt").write_text("The axolotl regrows its limbs.")

        def found() -> bool:
            hits = httpx.get(server.url + "/search", params={"q": "axolotl", "mode": "lexical"}).json()["hits"]
            return [h["doc_id"] for h in hits] == ["b.txt"]

        assert eventually(found, timeout=20), server.log.read_text()
        stats = httpx.get(server.url + "/stats").json()
        assert stats["documents"] == 2
        assert stats["watch"]["state"] == "watching" and stats["watch"]["running"]
        assert stats["watch"]["version"] == stats["faiss_version"]
    finally:
        log = server.stop()
    assert "Application shutdown complete" in log, log  # the worker stopped with the server
    assert "batch: 1 files, 1 added" in log


def test_a_file_name_that_is_not_utf8_is_indexed_and_the_watcher_goes_on(tmp_path, tiny_model, running):
    corpus = write_files(tmp_path / "corpus", {"a.txt": "first"})
    index = tmp_path / "idx"
    _, events = running(corpus, index)
    with open(os.path.join(os.fsencode(corpus), b"bad-\xff.txt"), "w") as fh:
        fh.write("The kakapo is a flightless parrot.")
    assert eventually(lambda: lexical_ids(index, tiny_model, "kakapo") == {"bad-\\xff.txt"})
    (corpus / "after.txt").write_text("The dingo howls.")
    assert eventually(lambda: lexical_ids(index, tiny_model, "dingo") == {"after.txt"})
    assert chunk_set(index) == Clean(tmp_path, tiny_model)(corpus)
    assert any(isinstance(e, Notice) and "rescanning" in e.message for e in events)  # how it was found
