"""Crash harness: SIGKILL builds at targeted and random points; the index always opens and
checks clean, and resuming ends with exactly the clean build's chunks, without duplicates."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.build import build_index
from search import Index
from store import IndexDir
from store.check import check_index
from tests.fakes import HashingEmbedder
from tests.helpers import eval_texts

TARGETED = ["create-db:1", "embed:1", "embed:3", "commit:1", "commit:5", "faiss-write:1", "rename:1", "publish:1"]
"""Crash points during a first build (see store/faults.py)."""
INCREMENTAL = ["embed:2", "commit:3", "faiss-write:1", "rename:1", "publish:1"]
"""Crash points during an update of an existing index (its previous version must serve)."""
RANDOM_KILLS = 4


def _write_corpus(root: Path, seed: int, n_docs: int = 200) -> None:
    rng = random.Random(seed)
    sentences = [r["text"] for t in ("tatoeba-deu", "tatoeba-spa") for r in eval_texts(t, "queries")]
    for i in range(n_docs):
        path = root / f"part{i % 5}" / f"doc{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(rng.sample(sentences, rng.randint(2, 12))), encoding="utf-8")
    # One long document, stored in several transactions (more than FLUSH_CHUNKS chunks).
    (root / "long.txt").write_text(" ".join(rng.choices(sentences, k=1600)), encoding="utf-8")


def _chunk_set(path: Path, settled: bool = True) -> list[tuple]:
    """The live chunks; ``settled``: also assert that no change waits to be published."""
    with IndexDir.open_for_reading(path) as idx:
        rows = idx.meta.conn.execute(
            'SELECT d.doc_id, c.ord, c.start, c."end", c.text FROM chunks c JOIN documents d ON d.id = c.document '
            "WHERE d.pending = 0 ORDER BY d.doc_id, c.ord"
        ).fetchall()
        waiting = idx.meta.conn.execute("SELECT count(*) FROM documents WHERE pending = 1 OR retired = 1").fetchone()[0]
    assert not settled or waiting == 0
    return rows


# The model is the hashing test double: the harness is about storage, and a model that loads
# in milliseconds lets it try many kill points.
RUN_BUILD = """
import importlib.util, sys
from indexer.build import build_index
spec = importlib.util.spec_from_file_location("fakes", sys.argv[3])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
build_index(sys.argv[1], sys.argv[2], model=fakes.HashingEmbedder(), chunk_tokens=24, overlap_tokens=4)
"""
FAKES = Path(__file__).resolve().parents[1] / "fakes.py"


def _build_cmd(corpus: Path, index: Path) -> list[str]:
    return [sys.executable, "-c", RUN_BUILD, str(corpus), str(index), str(FAKES)]


def _run(corpus, index, crash_at=None, kill_after=None) -> int:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("BABELINDEX_CRASH_AT", None)
    if crash_at:
        env["BABELINDEX_CRASH_AT"] = crash_at
    proc = subprocess.Popen(_build_cmd(corpus, index), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=600)
    return proc.returncode


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two versions of a corpus and the chunk sets of their clean builds."""
    root = tmp_path_factory.mktemp("crash")
    v1, v2 = root / "v1", root / "v2"
    _write_corpus(v1, seed=1)
    _write_corpus(v2, seed=1)
    for i in range(0, 200, 7):  # v2: some documents changed, some removed, some added
        (v2 / f"part{i % 5}" / f"doc{i:04d}.txt").write_text(f"Changed document {i}. Es ist jetzt anders.")
    for i in range(3, 200, 11):
        (v2 / f"part{i % 5}" / f"doc{i:04d}.txt").unlink()
    _write_corpus(v2 / "new", seed=2, n_docs=40)
    clean = {}
    for name, corpus in (("v1", v1), ("v2", v2)):
        build_index(corpus, root / f"clean-{name}.idx", model=HashingEmbedder(), chunk_tokens=24, overlap_tokens=4)
        clean[name] = _chunk_set(root / f"clean-{name}.idx")
    # Updates happen in place: the folder "work" holds v1 when the base index is built from
    # it, and v2 when it is updated (removals are scoped to the folder a build reads).
    shutil.copytree(v1, root / "work")
    build_index(root / "work", root / "base-v1.idx", model=HashingEmbedder(), chunk_tokens=24, overlap_tokens=4)
    return {"root": root, "v1": v1, "v2": v2, "clean": clean}


@pytest.mark.slow
def test_killed_first_builds_open_check_and_resume_to_the_clean_result(corpora):
    root = corpora["root"]
    started = time.monotonic()
    probe = root / "timing.idx"
    assert _run(corpora["v1"], probe) == 0
    duration = time.monotonic() - started
    rng = random.Random(7)
    points = [(p, None) for p in TARGETED] + [(None, rng.uniform(0.3, duration)) for _ in range(RANDOM_KILLS)]
    killed = opened = matched = 0
    for n, (crash_at, kill_after) in enumerate(points):
        index = root / f"first-{n}.idx"
        code = _run(corpora["v1"], index, crash_at, kill_after)
        killed += code == -signal.SIGKILL
        if crash_at:
            assert code == -signal.SIGKILL, f"{crash_at} was never reached"
        if (index / "meta.db").exists():
            report = check_index(index)
            assert report.ok, (crash_at, kill_after, report.problems)
            opened += 1
        assert _run(corpora["v1"], index) == 0
        assert check_index(index).ok and check_index(index).warnings == []
        rows = _chunk_set(index)
        assert len(rows) == len({(r[0], r[1]) for r in rows})  # no duplicates
        assert rows == corpora["clean"]["v1"], (crash_at, kill_after)
        matched += 1
    print(
        f"first builds: {len(points)} kill points, {killed} killed, {opened} left an index (each checked clean, "
        f"the others died before creating one), {matched} resumed builds matched the clean build"
    )
    assert matched == len(points)


@pytest.mark.slow
def test_killed_updates_keep_serving_the_previous_version_and_resume(corpora):
    root = corpora["root"]
    work = root / "work"
    shutil.rmtree(work)
    shutil.copytree(corpora["v2"], work)
    killed = served = matched = 0
    for n, crash_at in enumerate(INCREMENTAL):
        index = root / f"update-{n}.idx"
        shutil.copytree(root / "base-v1.idx", index)
        before = Index.open(index, model=HashingEmbedder()).search("Tom", k=20)
        code = _run(work, index, crash_at)
        assert code == -signal.SIGKILL, f"{crash_at} was never reached"
        killed += 1
        assert check_index(index).ok
        assert Index.open(index, model=HashingEmbedder()).search("Tom", k=20) == before  # the last published version
        assert _chunk_set(index, settled=False) == corpora["clean"]["v1"]
        served += 1
        assert _run(work, index) == 0
        rows = _chunk_set(index)
        assert rows == corpora["clean"]["v2"], crash_at
        assert check_index(index).ok
        matched += 1
    print(
        f"updates: {len(INCREMENTAL)} kill points, {killed} killed, {served} served the previous version, "
        f"{matched} resumed updates matched the clean build"
    )


def test_killed_while_creating_the_database_leaves_no_half_made_index(tmp_path):
    """Regression (CI, random kill at 0.37 s): a first build killed after SQLite created
    meta.db but before the schema was in left a database that `indexer check` rejected."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Ein Satz. Noch ein Satz.", encoding="utf-8")
    index = tmp_path / "t.idx"
    assert _run(corpus, index, "create-db:1") == -signal.SIGKILL
    assert not (index / "meta.db").exists()  # not a half-made database
    assert _run(corpus, index) == 0
    assert check_index(index).ok and check_index(index).warnings == []
    assert len(_chunk_set(index)) == 1
