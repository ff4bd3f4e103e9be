"""Memory-mapped indexes: same results as in memory, checksum first, bytes per vector."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.importing import import_vectors
from indexer.update import reindex
from search import Index
from store import CorruptIndex, IndexDir, faiss_files, faiss_index
from tests.fakes import HashingEmbedder

DIM = 32
N = 1200


def clustered(n: int, seed: int) -> np.ndarray:
    """``n`` unit vectors float32 ``(n, DIM)`` around 40 fixed centres (seed 0), noise seeded by ``seed``."""
    centres = np.random.default_rng(0).normal(size=(40, DIM))
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 40, n)] + rng.normal(scale=0.4, size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An index of 1,200 imported clustered vectors (one chunk per document), and 30 queries."""
    folder = tmp_path_factory.mktemp("mmap")
    vecs = clustered(N, 1)
    table = pa.table(
        {
            "doc_id": [f"d{i}" for i in range(N)],
            "text": [f"chunk {i}" for i in range(N)],
            "lang": ["en"] * N,
            "vector": pa.array(list(vecs), type=pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, folder / "v.parquet")
    import_vectors([folder / "v.parquet"], folder / "i.idx", model=HashingEmbedder(DIM), check_model=False)
    return folder / "i.idx", clustered(30, 2)


@pytest.mark.parametrize(
    ("kind", "code_bytes"),
    [
        ("ivf", 4 * DIM),
        ("ivf-sq8", DIM),
        ("ivf-pq", faiss_index.pq_subquantizers(DIM)),
        ("ivf-opq", faiss_index.pq_subquantizers(DIM)),
        ("flat", 2 * DIM),  # float16 codes
        ("hnsw", 4 * DIM),
    ],
)
def test_memory_mapped_index_gives_the_same_results_as_in_memory(big, kind, code_bytes):
    path, queries = big
    reindex(path, kind)
    with Index.open(path) as loaded, Index.open(path, mmap=True) as mapped:
        for nprobe in (None, 4):
            a, b = (
                loaded.search_vectors(queries, k=10, nprobe=nprobe),
                mapped.search_vectors(queries, k=10, nprobe=nprobe),
            )
            assert [[h.chunk_id for h in hits] for hits in a] == [[h.chunk_id for h in hits] for hits in b]
            assert np.allclose([[h.score for h in hits] for hits in a], [[h.score for h in hits] for hits in b])
        s_loaded, s_mapped = loaded.stats(), mapped.stats()
    assert s_loaded["index_kind"] == kind and s_loaded["code_bytes_per_vector"] == code_bytes
    assert not s_loaded["mmap"] and s_mapped["mmap"]
    with IndexDir.open_for_reading(path) as idx:
        size = idx.faiss_info().size
    assert s_loaded["memory_bytes"] == size and s_loaded["file_bytes_per_vector"] == round(size / N, 1)
    # mapped: the codes (and, for IVF, the ids) stay in the file
    assert s_mapped["memory_bytes"] <= size - N * code_bytes


def test_mapped_search_keeps_filters_and_refresh_maps_the_new_version(big):
    path, queries = big
    reindex(path, "ivf-pq")
    with Index.open(path, mmap=True) as index:
        hits = index.search_vectors(queries[:1], k=5)[0]
        assert len(hits) == 5
        reindex(path, "ivf")
        assert index.refresh() and index.stats()["mmap"] and index.stats()["index_kind"] == "ivf"
        assert [h.chunk_id for h in index.search_vectors(queries[:1], k=5, nprobe=64)[0]][:3] == [
            h.chunk_id for h in Index.open(path).search_vectors(queries[:1], k=5, nprobe=64)[0]
        ][:3]


def test_a_damaged_file_is_refused_before_it_is_mapped(big, tmp_path):
    path, _ = big
    info = reindex(path, "ivf-sq8")
    file = path / "faiss" / info.file
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    try:
        with pytest.raises(CorruptIndex, match="fails its checksum"):
            Index.open(path, mmap=True)
        file.write_bytes(bytes(data[:1000]))
        with pytest.raises(CorruptIndex, match="truncated or damaged"):
            Index.open(path, mmap=True)
    finally:
        reindex(path, "ivf")  # a fresh version for the other tests
    with IndexDir.open_for_reading(path) as idx:
        assert idx.faiss_info().kind == "ivf"


def test_cli_stats_shows_bytes_per_vector(big):
    path, _ = big
    reindex(path, "ivf-pq")
    result = CliRunner().invoke(cli, ["stats", "--index", str(path), "--mmap"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("per vector:"))
    assert line.startswith(f"per vector: {faiss_index.pq_subquantizers(DIM)} B code, ") and "memory-mapped" in line


def test_tuned_nprobe_stops_where_recall_stops_growing(big):
    """PQ codes of 4 bytes cap recall far below 0.95 when their approximate scores rank: visiting
    every list bought nothing (the 1M benchmark's ivf-pq went to all 4,000 lists, 59 ms a query,
    for the recall of 64). Tuned on the raw codes, nprobe stops where recall stops growing."""
    path, _ = big
    info = reindex(path, "ivf-pq")
    with IndexDir.open_for_reading(path) as idx:
        ids = idx.meta.chunk_ids()
        vecs = idx.meta.vectors(ids, DIM)
    index = faiss_files.read_version(path, info)
    queries = vecs[np.random.default_rng(1).choice(len(ids), 500, replace=False)]
    nprobe, recall = faiss_index.tune_nprobe(index, lambda: iter([(ids, vecs)]), queries)  # no re-ranking
    assert recall < faiss_index.TARGET_RECALL and nprobe < info.nlist
    truth = faiss_index.exact_search(lambda: iter([(ids, vecs)]), queries, 10)
    everything = index.search(queries, 10, params=faiss_index.ivf_params(index, info.nlist))[1]
    tuned = index.search(queries, 10, params=faiss_index.ivf_params(index, nprobe))[1]
    assert faiss_index.recall_at_k(tuned, truth) >= faiss_index.recall_at_k(everything, truth) - 0.02


def test_lossy_kinds_rerank_exactly_and_tune_on_what_they_return(big):
    """ivf-pq re-ranks RERANK_FACTOR × k candidates by the stored float32 vectors: scores are
    exact cosines, recall passes what the codes alone reach, and nprobe is tuned on that."""
    path, _ = big
    info = reindex(path, "ivf-pq")
    with IndexDir.open_for_reading(path) as idx:
        ids = idx.meta.chunk_ids()
        vecs = idx.meta.vectors(ids, DIM)

        def refine(wanted):
            return idx.meta.vectors_or_nan(wanted, DIM)

        index = faiss_files.read_version(path, info)
        queries = vecs[np.random.default_rng(2).choice(len(ids), 200, replace=False)]
        truth = faiss_index.exact_search(lambda: iter([(ids, vecs)]), queries, 10)
        raw = index.search(queries, 10, params=faiss_index.ivf_params(index, info.nprobe))[1]
        scores, found = faiss_index.search(index, queries, 10, info.nprobe, refine=refine)
        assert faiss_index.recall_at_k(found, truth) > faiss_index.recall_at_k(raw, truth) + 0.1
        by_id = dict(zip(ids.tolist(), vecs, strict=True))
        for q, row, srow in zip(queries, found, scores, strict=True):
            exact = [float(by_id[int(i)] @ q) for i in row if i >= 0]
            np.testing.assert_allclose(srow[: len(exact)], exact, rtol=1e-5, atol=1e-6)
            assert list(srow[: len(exact)]) == sorted(srow[: len(exact)], reverse=True)
        # An id whose vector is gone (deleted since the version was loaded) is dropped, not an error.
        gone = int(found[0][0])

        def refine_without(wanted):
            out = refine(wanted)
            out[wanted == gone] = np.nan
            return out

        _, again = faiss_index.search(index, queries[:1], 10, info.nprobe, refine=refine_without)
        assert gone not in again[0].tolist()
    assert info.tuned_on == "stored vectors" and info.tuned_queries == 500 and info.tuned_recall >= 0.9
