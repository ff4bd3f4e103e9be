"""``ef_search`` per call on HNSW indexes (store.faiss_index.search), never set on the index."""

from __future__ import annotations

import faiss
import numpy as np

from store import faiss_index


def test_ef_search_is_passed_per_call_and_never_below_k():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    graph = faiss.IndexHNSWFlat(32, 16, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 40
    index = faiss.IndexIDMap2(graph)
    index.add_with_ids(vectors, np.arange(100, 4100, dtype=np.int64))
    graph.hnsw.efSearch = 128
    queries = rng.standard_normal((200, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 100

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(ids, truth, strict=True)]))

    _, narrow = faiss_index.search(index, queries, 10, None, ef_search=10)
    _, wide = faiss_index.search(index, queries, 10, None, ef_search=512)
    _, default = faiss_index.search(index, queries, 10, None)
    assert recall(narrow) < recall(default) <= recall(wide) and recall(wide) > 0.98
    assert graph.hnsw.efSearch == 128  # the shared index is left as it was
    _, one = faiss_index.search(index, queries, 10, None, ef_search=1)
    assert (one >= 0).all()  # efSearch is raised to k: always k results
    _, some = faiss_index.search(index, queries, 10, None, ids=np.arange(100, 600, dtype=np.int64), ef_search=512)
    assert ((some >= 100) & (some < 600)).all()
