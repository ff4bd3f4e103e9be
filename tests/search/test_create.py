"""An index from Python texts alone: ``Index.create``, upserts into a new path, serve on a new path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.update import upsert_documents
from search import Index
from store.errors import InvalidInput, ModelMismatch, ModelNotAvailable

DOCS = [
    {"id": "tea", "text": "Green tea leaves are steamed soon after picking."},
    {"id": "kaffee", "text": "Kaffeebohnen werden geröstet, bevor man sie mahlt.", "metadata": {"year": 2024}},
    {"id": "the", "text": "Le thé noir est oxydé avant d'être séché."},
]


def test_create_then_upsert_then_search(tmp_path, use_model):
    index = Index.create(tmp_path / "notes.idx", model=use_model)
    assert len(index) == 0 and index.search("anything", k=3) == []
    report = index.upsert(DOCS)
    assert report.documents_added == 3
    hits = index.search("How are coffee beans prepared?", k=1)
    assert [h.doc_id for h in hits] == ["kaffee"]
    assert hits[0].metadata == {"year": 2024}
    index.close()


def test_create_refuses_an_existing_index_unless_told_and_then_checks_the_model(tmp_path, use_model, tiny_model):
    Index.create(tmp_path / "i", model=use_model).close()
    with pytest.raises(InvalidInput, match="already an index"):
        Index.create(tmp_path / "i", model=use_model)
    with Index.create(tmp_path / "i", model=use_model, exist_ok=True) as again:
        assert again.model_name == use_model.name
    with pytest.raises(ModelMismatch):
        Index.create(tmp_path / "i", model=tiny_model, exist_ok=True)


def test_create_with_a_model_that_cannot_load_leaves_nothing_behind(tmp_path):
    with pytest.raises(ModelNotAvailable, match="no model directory at"):
        Index.create(tmp_path / "new", model=str(tmp_path / "no-such-model"))
    assert not (tmp_path / "new").exists()


def test_upsert_into_a_new_path_makes_the_index(tmp_path, use_model):
    report = upsert_documents(tmp_path / "fresh.idx", DOCS, model=use_model)
    assert report.documents_added == 3
    with Index.open(tmp_path / "fresh.idx") as index:
        assert len(index) == 3 and index.model_name == use_model.name


def test_serve_on_a_new_path_creates_an_empty_index_to_fill_over_http(tmp_path, monkeypatch):
    import search.server

    served = {}

    def fake_serve(index, **kwargs):
        served["chunks"], served["model"] = len(index), index.model_name

    monkeypatch.setattr(search.server, "serve", fake_serve)
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "new.idx"), "--model", "use-multilingual"])
    assert result.exit_code == 0, result.output
    assert "Created a new, empty index" in result.stderr
    assert served == {"chunks": 0, "model": "use-multilingual"}


def test_a_new_index_is_filled_over_http(tmp_path, use_model):
    from fastapi.testclient import TestClient

    from search.server import create_app

    index = Index.create(tmp_path / "http.idx", model=use_model)
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        assert client.post("/documents", json={"documents": DOCS}).status_code == 200
        hits = client.get("/search", params={"q": "black tea", "k": 1}).json()["hits"]
    assert [h["doc_id"] for h in hits] == ["the"]
