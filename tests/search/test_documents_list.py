"""Listing documents (``Index.documents``, ``indexer documents``, ``GET /documents``), and the
small search options: ``min_score``, and ``nprobe`` where it changes nothing."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.cli import cli
from search import Index, InvalidFilter, InvalidInput, NprobeIgnored
from tests.helpers import MULTILINGUAL_DOCS, write_files

RECORDS = "\n".join(
    json.dumps({"id": f"r{i}", "text": f"Report {i} on volcanoes.", "year": 2020 + i}) for i in range(5)
)


@pytest.fixture(scope="module")
def built(tmp_path_factory, use_model):
    root = tmp_path_factory.mktemp("documents")
    files = dict(MULTILINGUAL_DOCS) | {"reports.jsonl": RECORDS}
    build_index(write_files(root / "c", files), root / "i.idx", model=use_model, id_field="id")
    return root / "i.idx"


def test_documents_are_listed_by_id_a_page_at_a_time(built):
    with Index.open(built) as index:
        page = index.documents(limit=4)
        assert page.total == 11 and len(page.documents) == 4
        ids = [d.doc_id for d in page.documents]
        assert ids == sorted(ids)
        rest = index.documents(limit=100, offset=4)
        assert rest.documents[0].doc_id > ids[-1] and len(rest.documents) == 7
        every = {d.doc_id: d for d in index.documents(limit=100).documents}
        assert every["r3"].metadata == {"year": 2023} and every["r3"].source == "reports.jsonl"
        assert every["de/vulkan.md"].lang == "de" and every["de/vulkan.md"].chunks >= 1


def test_documents_take_the_search_filters(built):
    with Index.open(built) as index:
        assert {d.doc_id for d in index.documents(lang="ja").documents} == {"ja/kaiyo.txt"}
        assert {d.doc_id for d in index.documents(source="reports.jsonl").documents} == {f"r{i}" for i in range(5)}
        assert {d.doc_id for d in index.documents(where={"year": {">=": 2023}}).documents} == {"r3", "r4"}
        with pytest.raises(InvalidFilter):
            index.documents(where={"yaer": {">=": 2023}})  # a key the index does not hold
        with pytest.raises(InvalidInput, match="limit"):
            index.documents(limit=0)


def test_indexer_documents_prints_a_table_and_json(built):
    out = CliRunner().invoke(cli, ["documents", "--index", str(built), "--limit", "3"])
    assert out.exit_code == 0, out.output
    assert "1–3 of 11 documents; the next page: --offset 3" in out.output
    data = json.loads(
        CliRunner().invoke(cli, ["documents", "--index", str(built), "--where", "year>=2024", "--json"]).output
    )
    assert data["total"] == 1 and data["documents"][0]["doc_id"] == "r4"


def test_get_documents_over_http(built):
    from fastapi.testclient import TestClient

    from search.server import create_app

    with TestClient(create_app(Index.open(built)), base_url="http://127.0.0.1") as client:
        page = client.get("/documents", params={"limit": 2, "offset": 1}).json()
        assert page["total"] == 11 and page["offset"] == 1 and len(page["documents"]) == 2
        assert client.get("/documents", params={"lang": "ru"}).json()["documents"][0]["doc_id"] == "ru/shakhmaty.txt"
        assert client.get("/documents", params={"where": "colour=red"}).status_code == 422
        assert client.get("/documents/de/vulkan.md").status_code == 200  # one document, as before
        hits = client.get("/search", params={"q": "volcano", "min_score": 0.99}).json()["hits"]
        assert hits == []
        assert client.get("/search", params={"q": "volcano", "min_score": "nan"}).status_code == 422


def test_min_score_leaves_out_weaker_hits(built):
    with Index.open(built) as index:
        hits = index.search("Wie bricht ein Vulkan aus?", k=10)
        cut = hits[2].score
        kept = index.search("Wie bricht ein Vulkan aus?", k=10, min_score=cut)
        assert kept == [h for h in hits if h.score >= cut] and len(kept) >= 3
        with pytest.raises(InvalidInput, match="min_score"):
            index.search("x", min_score=float("nan"))


def test_nprobe_on_a_flat_index_warns_that_it_changes_nothing(built):
    with Index.open(built) as index:
        assert not index.uses_nprobe
        with pytest.warns(NprobeIgnored, match="IVF indexes only"):
            hits = index.search("volcano", k=3, nprobe=8)
        assert hits == index.search("volcano", k=3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            index.search("volcano", k=3)  # no nprobe: no warning
    out = CliRunner().invoke(cli, ["search", "volcano", "--index", str(built), "--nprobe", "8"])
    assert out.exit_code == 0 and "--nprobe changes nothing on this index (flat" in out.stderr
