"""Updates, deletes, reindexing, corruption and repair: each with an exact outcome."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.cli import cli
from indexer.update import reindex, remove_sources, repair, upsert_documents
from search import CorruptIndex, Index, InvalidInput, UnsafeFilesystem
from store import IndexDir
from store.check import check_index
from store.faiss_index import exact_search, recall_at_k
from tests.helpers import eval_texts, write_files


@pytest.fixture
def built(tmp_path, multilingual_corpus, use_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=use_model)
    return tmp_path / "i.idx"


def _ids(path) -> set[int]:
    with IndexDir.open_for_reading(path) as idx:
        return set(idx.meta.chunk_ids().tolist())


def test_delete_takes_effect_before_it_returns_and_ids_are_never_reused(built, use_model):
    index = Index.open(built, model=use_model)
    other = Index.open(built, model=use_model)  # a second reader that never refreshes
    victim = index.search("Vulkan Magma Lava", k=1)[0]
    assert victim.doc_id == "de/vulkan.md"
    before = _ids(built)
    assert index.delete(["de/vulkan.md", "no-such-doc"]) == 1
    for reader in (index, other):
        assert all(h.doc_id != "de/vulkan.md" for h in reader.search("Vulkan Magma Lava", k=50))
        assert len(reader.search("Vulkan", k=5)) == 5  # still k hits from what is left
    report = index.upsert(
        [{"id": "de/vulkan.md", "text": "Ein Vulkan bricht aus, wenn Magma aufsteigt.", "metadata": {"year": 2024}}]
    )
    assert (report.documents_added, report.chunks_embedded) == (1, 1)
    hit = index.search("Vulkan Magma", k=1)[0]
    assert (hit.doc_id, hit.metadata, hit.source) == ("de/vulkan.md", {"year": 2024}, "de/vulkan.md")
    assert hit.chunk_id > max(before)  # a new id from the counter, never an old one


def test_upsert_of_unchanged_documents_embeds_nothing_and_bad_documents_write_nothing(built, use_model):
    docs = [{"id": "a", "text": "Alpha text about rivers."}, {"id": "b", "text": "Beta text about mountains."}]
    assert upsert_documents(built, docs, model=use_model).documents_added == 2
    again = upsert_documents(built, docs, model=use_model)
    assert (again.documents_unchanged, again.chunks_embedded) == (2, 0)
    before = _ids(built)
    with pytest.raises(InvalidInput, match="document 'c' needs a non-empty string 'text'"):
        upsert_documents(built, [{"id": "z", "text": "fine"}, {"id": "c", "text": ""}], model=use_model)
    assert _ids(built) == before


def test_remove_by_source_and_cli_exit_codes(built):
    report = remove_sources(built, ["fr/photosynthese.txt"])
    assert report.removed == {"fr/photosynthese.txt": ["fr/photosynthese.txt"]} and report.missing == []
    result = CliRunner().invoke(cli, ["remove", "en/bees.txt", "nope.txt", "--index", str(built)])
    assert result.exit_code == 1
    assert result.output == f"Removed 1 document from {built}\n  not in the index: nope.txt\n"
    with IndexDir.open_for_reading(built) as idx:
        assert {d for (d,) in idx.meta.conn.execute("SELECT doc_id FROM documents")} == {
            "de/vulkan.md",
            "es/cafe.html",
            "ja/kaiyo.txt",
            "ru/shakhmaty.txt",
        }


@pytest.fixture(scope="module")
def big_index(tmp_path_factory, use_model):
    """3,000 Tatoeba sentences (English, German, French) as JSONL records."""
    import json

    rows = [r for t in ("tatoeba-deu", "tatoeba-fra") for r in eval_texts(t, "queries")] + eval_texts("tatoeba-deu")
    folder = tmp_path_factory.mktemp("big")
    with open(folder / "s.jsonl", "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            fh.write(json.dumps({"id": f"s{i}", "text": r["text"]}, ensure_ascii=False) + "\n")
    path = folder / "i.idx"
    build_index(folder / "s.jsonl", path, model=use_model, id_field="id")
    return path


@pytest.mark.parametrize(
    ("kind", "factory_start", "floor"),
    [
        ("ivf", "IVF", 0.95),
        ("ivf-sq8", "IVF", 0.93),
        ("hnsw", "IDMap2,HNSW32", 0.95),
        ("ivf-pq", "IVF", 0.5),
        ("flat", "IDMap2,SQfp16", 1.0),
    ],
)
def test_reindex_switches_type_without_reembedding_and_keeps_recall(big_index, use_model, kind, factory_start, floor):
    with IndexDir.open_for_reading(big_index) as idx:
        ids = idx.meta.chunk_ids()
        vecs = idx.meta.vectors(ids, 512)
    info = reindex(big_index, kind)
    assert info.kind == kind and info.factory.startswith(factory_start)
    if kind.startswith("ivf"):
        assert info.nlist and info.nprobe and info.tuned_recall is not None
    with IndexDir.open_for_reading(big_index) as idx:
        assert idx.meta.get_setting("build")["index_type"] == kind
        assert np.array_equal(idx.meta.chunk_ids(), ids)  # same chunks, nothing re-embedded
    rng = np.random.default_rng(3)
    queries = vecs[rng.choice(len(ids), 100, replace=False)] + rng.normal(0, 0.03, (100, 512)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_search(lambda: iter([(ids, vecs)]), queries, 10)
    index = Index.open(big_index, model=use_model)
    found = np.array([[h.chunk_id for h in hits] for hits in index.search_vectors(queries, k=10)])
    assert recall_at_k(found, truth) >= floor
    assert check_index(big_index).ok


def _corrupt(path, how: str) -> None:
    with IndexDir.open_for_reading(path) as idx:
        file = path / "faiss" / idx.faiss_info().file
    data = file.read_bytes()
    if how.startswith("truncate"):
        file.write_bytes(data[: len(data) * int(how.split("-")[1]) // 100])
    elif how.startswith("flip"):
        at = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[how.split("-")[1]]
        file.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    elif how == "missing":
        file.unlink()


@pytest.mark.parametrize(
    "how", ["truncate-10", "truncate-50", "truncate-99", "flip-start", "flip-middle", "flip-end", "missing"]
)
def test_damage_is_detected_before_loading_and_repair_restores_the_results(built, use_model, how):
    queries = ["Bienen und Blumen", "café", "潮の満ち引き"]
    before = Index.open(built, model=use_model).search(queries, k=4)
    _corrupt(built, how)
    report = check_index(built)
    assert not report.ok and len(report.problems) == 1
    assert ("is missing" if how == "missing" else "damaged") in report.problems[0]
    assert "indexer repair" in report.problems[0]
    with pytest.raises(CorruptIndex, match="indexer repair"):
        Index.open(built, model=use_model)
    result = CliRunner().invoke(cli, ["check", "--index", str(built)])
    assert result.exit_code == 1 and "PROBLEM" in result.output and "1 problem(s) found." in result.output
    repair(built)
    assert check_index(built).ok
    assert Index.open(built, model=use_model).search(queries, k=4) == before


def test_leftover_temporary_files_are_reported_and_removed(built, use_model):
    (built / "faiss" / ".v000009.faiss.tmp").write_bytes(b"half a file")
    report = check_index(built)
    assert report.ok and any(".v000009.faiss.tmp" in w for w in report.warnings)
    repair(built)
    assert not (built / "faiss" / ".v000009.faiss.tmp").exists()
    assert check_index(built).warnings == []


def test_shards_of_an_interrupted_distributed_build_are_reported(built):
    folder = built / "staging" / "20261122T030000-abcdef12"
    folder.mkdir(parents=True)
    (folder / "shard-000000.parquet").write_bytes(b"PAR1")
    report = check_index(built)
    assert report.ok
    assert any(
        "1 shards of an interrupted distributed build" in w and "20261122T030000-abcdef12" in w for w in report.warnings
    )


def test_check_on_a_fresh_index_passes_and_says_so(built):
    result = CliRunner().invoke(cli, ["check", "--index", str(built)])
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "All checks passed."
    assert "ok       FAISS ids = live chunk ids" in result.output


def test_a_network_filesystem_is_refused_for_writing(tmp_path, monkeypatch):
    import store.index_dir

    monkeypatch.setattr(store.index_dir, "filesystem_type", lambda path: "nfs4")
    with pytest.raises(UnsafeFilesystem, match=r"network filesystem \(nfs4\).*BABELINDEX_ALLOW_NETWORK_FS=1"):
        IndexDir.open_for_writing(tmp_path / "n.idx")
    monkeypatch.setenv("BABELINDEX_ALLOW_NETWORK_FS", "1")
    IndexDir.open_for_writing(tmp_path / "n.idx").close()


def test_an_unknown_filesystem_gives_a_clear_warning(tmp_path, monkeypatch):
    import store.index_dir

    monkeypatch.setattr(store.index_dir, "filesystem_type", lambda path: None)
    with pytest.warns(UserWarning, match="cannot tell which filesystem"):
        IndexDir.open_for_writing(tmp_path / "u.idx").close()


def test_ivf_is_retrained_when_the_collection_grows_four_times(tmp_path, use_model):
    docs = {f"d{i}.txt": f"Document {i} is about subject {i * 37 % 101} and {i % 13}." for i in range(100)}
    corpus = write_files(tmp_path / "c", docs)
    build_index(corpus, tmp_path / "i.idx", model=use_model, index_type="ivf")
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        first = idx.faiss_info()
    write_files(corpus, {f"e{i}.txt": f"Extra note {i} on topic {i * 7 % 59}." for i in range(350)})
    build_index(corpus, tmp_path / "i.idx", model=use_model)
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        second = idx.faiss_info()
    assert (first.trained_on, first.nlist) == (100, 2)
    assert (second.trained_on, second.nlist) == (450, 11)
    assert check_index(tmp_path / "i.idx").ok
