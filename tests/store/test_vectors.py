"""FAISS index choice, IVF recall against exact search, ids, and versioned files."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from store import faiss_files, faiss_index, index_types, records
from store.errors import CorruptIndex, InvalidInput
from tests.helpers import eval_texts


def _stream_of(ids, vecs, batch=700):
    def stream():
        for lo in range(0, len(ids), batch):
            yield ids[lo : lo + batch], vecs[lo : lo + batch]

    return stream


def _fetch_of(ids, vecs):
    pos = {int(i): n for n, i in enumerate(ids)}
    return lambda want: vecs[[pos[int(i)] for i in want]]


def test_choose_kind_auto_switches_at_flat_max():
    assert index_types.choose_kind(index_types.FLAT_MAX, "auto") == "flat"
    assert index_types.choose_kind(index_types.FLAT_MAX + 1, "auto") == "ivf"
    assert index_types.choose_kind(10, "ivf") == "ivf"
    assert index_types.choose_kind(999, "ivf-pq") == "flat"  # too few vectors to train PQ code books
    assert index_types.choose_kind(1000, "ivf-pq") == "ivf-pq"
    with pytest.raises(
        InvalidInput, match="unknown index type 'lsh'; choose one of auto, flat, ivf, ivf-sq8, ivf-pq, ivf-opq, hnsw"
    ):
        index_types.choose_kind(10, "lsh")


def test_nlist_follows_the_square_root_rule_and_has_training_points():
    assert index_types.choose_nlist(100) == 2  # capped by n / 39
    assert index_types.choose_nlist(10_000) == 256  # capped by n / 39 = 256 < 4·√n = 400
    assert index_types.choose_nlist(1_000_000) == 4000
    assert index_types.choose_nlist(10) == 1


@pytest.fixture(scope="module")
def real_vectors(use_model):
    """use-multilingual vectors of 4,000 Tatoeba sentences in four languages, ids from 1000."""
    texts = [r["text"] for t in ("tatoeba-deu", "tatoeba-fra") for k in ("corpus", "queries") for r in eval_texts(t, k)]
    vecs = use_model.embed_documents(texts)
    ids = np.arange(1000, 1000 + len(texts), dtype=np.int64) * 3  # sparse, not positions
    return ids, vecs


def test_ivf_recall_at_10_against_exact_search_is_at_least_095(real_vectors):
    ids, vecs = real_vectors
    index, params = faiss_index.build_index("ivf", vecs.shape[1], ids, _stream_of(ids, vecs), _fetch_of(ids, vecs))
    assert params.kind == "ivf"
    assert params.factory == f"IVF{params.nlist},Flat"
    assert params.nlist == index_types.choose_nlist(len(ids))
    assert params.trained_on == len(ids)
    rng = np.random.default_rng(1)
    queries = vecs[rng.choice(len(ids), 200, replace=False)] + rng.normal(0, 0.02, (200, vecs.shape[1])).astype(
        np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = faiss_index.exact_search(_stream_of(ids, vecs), queries, 10)
    _, found = faiss_index.search(index, queries, 10, params.nprobe)
    assert faiss_index.recall_at_k(found, exact) >= 0.95
    assert params.tuned_recall >= 0.95
    assert set(faiss_index.index_ids(index).tolist()) == set(ids.tolist())


def test_flat_search_is_exact_and_returns_chunk_ids(real_vectors):
    ids, vecs = real_vectors
    # As meta.db stores them (float16): flat's codes are those values, so its search is exact on them.
    ids, vecs = ids[:500], vecs[:500].astype(np.float16).astype(np.float32)
    index, params = faiss_index.build_index("flat", vecs.shape[1], ids, _stream_of(ids, vecs), _fetch_of(ids, vecs))
    assert params == records.IndexParams(kind="flat", factory="IDMap2,SQfp16")
    scores, found = faiss_index.search(index, vecs[:5], 3, None)
    assert found[:, 0].tolist() == ids[:5].tolist()  # each vector finds itself first
    np.testing.assert_allclose(scores[:, 0], np.sum(vecs[:5] ** 2, axis=1), atol=1e-6)
    brute = np.argsort(-(vecs[:5] @ vecs.T), axis=1)[:, :3]
    assert found.tolist() == ids[brute].tolist()
    np.testing.assert_allclose(scores, np.take_along_axis(vecs[:5] @ vecs.T, brute, axis=1), atol=1e-6)


def test_written_version_roundtrips_and_damage_is_detected(tmp_path, real_vectors):
    ids, vecs = real_vectors
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
    index.add_with_ids(vecs[:50], ids[:50])
    name, sha, size = faiss_files.write_version(tmp_path, 7, index)
    assert name == "v000007.faiss"
    info = records.FaissInfo(version=7, file=name, sha256=sha, size=size, ntotal=50, kind="flat", factory="IDMap2,Flat")
    loaded = faiss_files.read_version(tmp_path, info)
    assert sorted(faiss_index.index_ids(loaded).tolist()) == sorted(ids[:50].tolist())
    path = tmp_path / "faiss" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIndex, match="fails its checksum"):
        faiss_files.read_version(tmp_path, info)
    path.unlink()
    with pytest.raises(CorruptIndex, match="is missing"):
        faiss_files.read_version(tmp_path, info)
