"""Index.open and search: Hit fields, batches, k and nprobe, errors, laziness."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import FrozenInstanceError, fields

import pytest

from indexer.build import build_index
from search import Hit, Index, IndexNotFound, InvalidInput
from tests.helpers import MULTILINGUAL_DOCS, assert_same_hits


@pytest.fixture
def built(tmp_path, multilingual_corpus, tiny_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    return tmp_path / "i.idx"


def test_hit_has_exactly_the_documented_fields_and_is_frozen(built, tiny_model):
    assert [f.name for f in fields(Hit)] == [
        "score",
        "text",
        "doc_id",
        "chunk_id",
        "source",
        "lang",
        "start",
        "end",
        "metadata",
        "signals",
    ]
    hit = Index.open(built, model=tiny_model).search("Kaffee", k=1)[0]
    with pytest.raises(FrozenInstanceError):
        hit.score = 2.0


def test_hits_point_back_into_their_documents(built, tiny_model):
    hits = Index.open(built, model=tiny_model).search("bees and pollen", k=6)
    assert len(hits) == 6
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.score <= 1.0 + 1e-6 for h in hits)
    by_doc = {h.doc_id: h for h in hits}
    assert set(by_doc) == set(MULTILINGUAL_DOCS)
    es = by_doc["es/cafe.html"]
    assert es.source == "es/cafe.html" and es.lang == "es" and es.metadata == {"title": "El café"}
    assert "tracking" not in es.text and "color:red" not in es.text
    en = by_doc["en/bees.txt"]
    assert en.text == MULTILINGUAL_DOCS["en/bees.txt"][en.start : en.end]
    assert isinstance(en.chunk_id, int) and en.lang == "en"


def test_a_list_of_queries_gives_a_list_of_lists(built, tiny_model):
    index = Index.open(built, model=tiny_model)
    batch = index.search(["Vulkan", "échecs", "潮の満ち引き"], k=2)
    assert [len(r) for r in batch] == [2, 2, 2]
    assert_same_hits(batch[1], index.search("échecs", k=2))  # a batch and a single query: float noise only


def test_k_larger_than_the_index_returns_everything_once(built, tiny_model):
    index = Index.open(built, model=tiny_model)
    hits = index.search("anything", k=1000)
    assert len(hits) == len(index) == len({h.chunk_id for h in hits})


def test_bad_arguments_raise_invalid_input(built, tiny_model):
    index = Index.open(built, model=tiny_model)
    with pytest.raises(InvalidInput, match="k must be an integer from 1 to 10000"):
        index.search("x", k=0)
    with pytest.raises(InvalidInput, match="non-empty string"):
        index.search("   ")
    with pytest.raises(InvalidInput, match="nprobe must be a positive integer"):
        index.search("x", nprobe=0)


def test_opening_a_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFound, match=r"no index at .*nope\. Build one with `indexer build CORPUS --index"):
        Index.open(tmp_path / "nope")


def test_open_loads_the_recorded_model_lazily(built, tiny_model):
    index = Index.open(built)  # no model given: the recorded one (a local directory) is used
    assert index.model_name == tiny_model.name
    assert index._embedder is None
    assert index.search("Schach", k=2) == Index.open(built, model=tiny_model).search("Schach", k=2)


def test_importing_search_does_not_import_torch():
    code = "import sys, search; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_nprobe_is_per_call_and_refresh_sees_new_versions(tmp_path, tiny_model):
    from tests.helpers import write_files

    corpus = write_files(
        tmp_path / "c", {f"d{i}.txt": f"Document {i} is about subject {i * 31 % 97}." for i in range(160)}
    )
    build_index(corpus, tmp_path / "i.idx", model=tiny_model, index_type="ivf")
    index = Index.open(tmp_path / "i.idx", model=tiny_model)
    nlist = index.stats()["nlist"]
    default = index.search("subject 5", k=5)
    full = index.search("subject 5", k=5, nprobe=nlist)
    assert index.search("subject 5", k=5) == default  # the per-call nprobe left no trace
    assert len(full) == 5
    write_files(corpus, {"new.txt": "A brand new document about volcanoes."})
    build_index(corpus, tmp_path / "i.idx", model=tiny_model)
    assert all(h.doc_id != "new.txt" for h in index.search("volcanoes", k=200, nprobe=nlist))
    assert index.refresh() is True
    assert "new.txt" in {h.doc_id for h in index.search("volcanoes", k=200, nprobe=nlist)}
    assert index.refresh() is False


def test_searches_go_on_while_refresh_reads_a_new_version(built, tiny_model, monkeypatch):
    """Refresh reads and verifies the new FAISS file outside the lock that searches take
    (a large file takes seconds to checksum: searches must not stall behind it)."""
    import threading

    from indexer.update import upsert_documents
    from store import faiss_files

    index = Index.open(built, model=tiny_model)
    vector = index.embed(["Kaffee"])
    upsert_documents(built, [{"id": "new", "text": "Ein neues Dokument über Tee."}], model=tiny_model)
    reading, searched = threading.Event(), threading.Event()
    order: list[str] = []
    real_read = faiss_files.read_version

    def slow_read(*args, **kwargs):
        # The read lasts until the search is done (or 60 s, if the search waits for the read).
        reading.set()
        searched.wait(60)
        order.append("read")
        return real_read(*args, **kwargs)

    monkeypatch.setattr(faiss_files, "read_version", slow_read)
    refresher = threading.Thread(target=index.refresh)
    refresher.start()
    assert reading.wait(10)
    hits = index.search("Kaffee", k=3, query_vectors=vector)
    order.append("searched")
    searched.set()
    refresher.join()
    assert len(hits) == 3 and order == ["searched", "read"]
    assert index.get_document("new") is not None and "new" in {h.doc_id for h in index.search("Tee", k=10)}


def test_hit_to_dict_has_every_field_and_copies_the_metadata():
    from dataclasses import asdict

    hit = Hit(
        score=0.5,
        text="t",
        doc_id="d",
        chunk_id=3,
        source="s",
        lang="de",
        start=0,
        end=1,
        metadata={"tags": ["a"], "year": 2020},
        signals=("dense", "lexical"),
    )
    data = hit.to_dict()
    assert list(data) == [f.name for f in fields(Hit)]
    assert data == {**asdict(hit), "signals": ["dense", "lexical"]}
    data["metadata"]["tags"].append("b")
    assert hit.metadata == {"tags": ["a"], "year": 2020}
