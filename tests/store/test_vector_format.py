"""How ``meta.db`` stores vectors: float16 in 16 KB pages for new indexes, float32 kept for old ones."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexer.update import reindex, upsert_documents
from search import Index
from store import IndexDir
from store.check import check_index
from store.database import PAGE_SIZE, MetaStore
from store.errors import SchemaVersionError
from tests.fakes import HashingEmbedder
from tests.helpers import eval_texts, to_float32_format

DIMENSION = 384
"""all-MiniLM-L6-v2's width."""


def _embedder() -> HashingEmbedder:
    return HashingEmbedder(DIMENSION)


def _docs(n: int, start: int = 0) -> list[dict]:
    texts = [r["text"] for t in ("deu", "fra", "rus") for r in eval_texts(f"tatoeba-{t}", "queries")]
    return [{"id": f"d{i:04d}", "text": texts[i]} for i in range(start, start + n)]


def _sql(path: Path, query: str, *args) -> list[tuple]:
    conn = sqlite3.connect(path / "meta.db")
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def test_a_new_index_stores_float16_vectors_that_flat_search_scores_exactly(tmp_path):
    path = tmp_path / "new.idx"
    docs = _docs(200)
    upsert_documents(path, docs, model=_embedder())
    assert _sql(path, "SELECT value FROM settings WHERE key = 'vector_dtype'") == [('"float16"',)]
    assert _sql(path, "SELECT DISTINCT length(vector) FROM vectors") == [(2 * DIMENSION,)]
    assert _sql(path, "PRAGMA page_size") == [(PAGE_SIZE,)]

    expected = _embedder().embed_documents([d["text"] for d in docs]).astype(np.float16).astype(np.float32)
    with IndexDir.open_for_reading(path) as idx:
        stored = idx.meta.vectors(idx.meta.chunk_ids(), DIMENSION)
        assert stored.dtype == np.float32
        np.testing.assert_array_equal(stored, expected)  # the float16 values, read back as float32
        assert idx.faiss_info().factory == "IDMap2,SQfp16"

    query = "Der Hund schläft"
    with Index.open(path, model=_embedder()) as index:
        hits = index.search(query, k=5)
        q = _embedder().embed_queries([query])[0]
        by_id = {d["id"]: i for i, d in enumerate(docs)}
        best = sorted((float(v @ q) for v in expected), reverse=True)[:5]
        np.testing.assert_allclose([h.score for h in hits], best, atol=1e-6)  # the top 5 (ties in any order)
        np.testing.assert_allclose([h.score for h in hits], [expected[by_id[h.doc_id]] @ q for h in hits], atol=1e-6)


def test_vectors_of_an_index_of_short_texts_take_little_more_than_their_float16_bytes(tmp_path):
    """The footprint of issue 15: 2,000 short texts, one vector each, 384 dimensions."""
    path = tmp_path / "small.idx"
    upsert_documents(path, _docs(2000), model=_embedder())
    with IndexDir.open_for_reading(path) as idx:
        info = idx.faiss_info()
    per_chunk_faiss = info.size / 2000
    assert per_chunk_faiss <= 2 * DIMENSION + 16  # float16 codes and an 8-byte id
    pages = dict(_sql(path, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    assert pages["vectors"] / 2000 <= 1.1 * 2 * DIMENSION  # rows fill their 16 KB pages
    meta_db = (path / "meta.db").stat().st_size
    assert meta_db / 2000 <= 2 * DIMENSION + 700  # text, offsets, documents and full text: a few hundred bytes


def test_an_index_written_with_float32_vectors_keeps_them_and_takes_more(tmp_path):
    path = tmp_path / "old.idx"
    upsert_documents(path, _docs(30), model=_embedder())
    to_float32_format(path)  # as babelindex wrote it before float16: no setting, 4 bytes a value

    upsert_documents(path, _docs(10, start=30), model=_embedder())
    assert _sql(path, "SELECT DISTINCT length(vector) FROM vectors") == [(4 * DIMENSION,)]
    assert check_index(path).ok
    # Rebuilt from float32 vectors, flat keeps float32 too: its search stays exact on them.
    assert reindex(path, "flat").factory == "IDMap2,Flat"
    with IndexDir.open_for_reading(path) as idx:
        stored = idx.meta.vectors(idx.meta.chunk_ids(), DIMENSION)
    q = _embedder().embed_queries(["Der Hund schläft"])[0]
    with Index.open(path, model=_embedder()) as index:
        hits = index.search("Der Hund schläft", k=3)
    np.testing.assert_allclose([h.score for h in hits], np.sort(stored @ q)[::-1][:3], atol=1e-6)
    with Index.open(path, model=_embedder()) as index:
        doc = _docs(1, start=35)[0]
        assert index.search(doc["text"], k=1)[0].doc_id == doc["id"]
        assert index.search(_docs(1, start=3)[0]["text"], k=1)[0].doc_id == "d0003"


def test_a_vector_format_this_version_does_not_know_asks_for_an_upgrade(tmp_path):
    path = tmp_path / "future.idx"
    upsert_documents(path, _docs(3), model=_embedder())
    conn = sqlite3.connect(path / "meta.db")
    with conn:
        conn.execute("UPDATE settings SET value = ? WHERE key = 'vector_dtype'", (json.dumps("int4"),))
    conn.close()
    with pytest.raises(SchemaVersionError, match=r"stores its vectors as 'int4'.*Upgrade babelindex"):
        MetaStore(path / "meta.db", readonly=True)
