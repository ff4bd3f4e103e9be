"""Readers in other processes query in a loop while a writer adds and deletes documents."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.update import delete_documents, upsert_documents
from search import Index
from store import IndexDir
from tests.fakes import HashingEmbedder
from tests.helpers import eval_texts

READER = """
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("fakes", sys.argv[2])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
from search import Index
index = Index.open(sys.argv[1], model=fakes.HashingEmbedder())
queries = json.loads(sys.argv[3])
done = sys.argv[4]
samples, errors = [], []
import os
while not os.path.exists(done):
    try:
        index.refresh()
        for q in queries:
            started = time.time()
            samples.append([started, [h.chunk_id for h in index.search(q, k=10)]])
    except Exception as exc:  # every error counts
        errors.append(repr(exc))
index.refresh()
final = [[h.chunk_id for h in index.search(q, k=10)] for q in queries]
print(json.dumps({"samples": samples, "errors": errors, "final": final}))
"""
FAKES = Path(__file__).resolve().parents[1] / "fakes.py"
ROUNDS = 12


def _chunks_of(path, doc_id: str) -> list[int]:
    with IndexDir.open_for_reading(path) as idx:
        return [
            r[0]
            for r in idx.meta.conn.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE d.doc_id = ? AND d.pending = 0",
                (doc_id,),
            )
        ]


@pytest.mark.slow
def test_readers_see_no_errors_and_no_deleted_chunk_after_the_delete_returned(tmp_path):
    texts = [r["text"] for r in eval_texts("tatoeba-fra", "queries")]
    path = tmp_path / "c.idx"
    embedder = HashingEmbedder()
    from indexer.build import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "base.jsonl").write_text("\n".join(json.dumps({"id": f"base{i}", "text": texts[i]}) for i in range(200)))
    build_index(corpus, path, model=embedder, id_field="id")
    victims = [f"base{i}" for i in range(0, 3 * ROUNDS)]
    queries = [texts[int(v[4:])] for v in victims[::3]] + [texts[500], texts[501]]
    done = tmp_path / "done"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(FAKES), json.dumps(queries), str(done)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    deleted_at: dict[int, float] = {}
    try:
        time.sleep(1.0)
        for r in range(ROUNDS):
            upsert_documents(
                path, [{"id": f"new{r}-{j}", "text": texts[500 + r * 5 + j]} for j in range(5)], model=embedder
            )
            doomed = victims[3 * r : 3 * r + 3]
            ids = [cid for d in doomed for cid in _chunks_of(path, d)]
            assert delete_documents(path, doomed) == 3
            returned = time.time()
            deleted_at.update(dict.fromkeys(ids, returned))
            time.sleep(0.1)
    finally:
        done.touch()
    results = [json.loads(p.communicate(timeout=120)[0]) for p in readers]
    quiet = Index.open(path, model=embedder)
    expected = [[h.chunk_id for h in quiet.search(q, k=10)] for q in queries]
    total = stale = 0
    for result in results:
        assert result["errors"] == []
        for started, ids in result["samples"]:
            total += 1
            stale += sum(1 for cid in ids if cid in deleted_at and started > deleted_at[cid])
        assert result["final"] == expected
    print(
        f"concurrency: {len(readers)} readers, {total} searches during {ROUNDS} rounds of upserts and deletes, "
        f"0 errors, {stale} deleted chunks returned after their delete returned"
    )
    assert total > 20  # enough searches overlapped the writes (about 200 on a quiet machine)
    assert stale == 0
