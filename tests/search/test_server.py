"""The HTTP API (search/server.py), in process with FastAPI's TestClient: every endpoint,
authentication, each request limit, the Host check, and the serve command's refusals."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from indexer.cli import cli
from search import Index, InvalidInput
from search.page import is_open
from search.server import Limits, ServerSettings, check_exposure, default_allowed_hosts, is_loopback

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:8000"
HIT_FIELDS = {"score", "text", "doc_id", "chunk_id", "source", "lang", "start", "end", "metadata", "signals"}


@pytest.fixture
def client(client_for):
    return client_for()


def test_get_search_returns_the_same_hits_as_the_python_api(client, server_index, use_model):
    response = client.get("/search", params={"q": "Wie entstehen Gezeiten im Meer?", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "Wie entstehen Gezeiten im Meer?" and body["version"] >= 1 and body["took_ms"] > 0
    assert body["hits"][0]["doc_id"] == "ja/kaiyo.txt"
    with Index.open(server_index, model=use_model) as index:
        expected = [h.to_dict() for h in index.search("Wie entstehen Gezeiten im Meer?", k=3)]
    assert all(set(h) == HIT_FIELDS for h in body["hits"])
    assert [(h["chunk_id"], h["text"], h["start"], h["end"]) for h in body["hits"]] == [
        (h["chunk_id"], h["text"], h["start"], h["end"]) for h in expected
    ]
    assert [h["score"] for h in body["hits"]] == pytest.approx([h["score"] for h in expected], abs=1e-5)


def test_get_search_filters_modes_and_grouping(client):
    hits = client.get("/search", params={"q": "plants", "k": 6, "lang": "de,ru"}).json()["hits"]
    assert hits and {h["lang"] for h in hits} <= {"de", "ru"}
    hits = client.get("/search", params={"q": "plants", "k": 6, "source": "fr/"}).json()["hits"]
    assert [h["source"] for h in hits] == ["fr/photosynthese.txt"]
    hits = client.get("/search", params={"q": "Magma", "mode": "lexical"}).json()["hits"]
    assert hits[0]["doc_id"] == "de/vulkan.md" and hits[0]["signals"] == ["lexical"]
    hits = client.get("/search", params={"q": "Magma", "mode": "hybrid", "group_by": "document"}).json()["hits"]
    assert hits[0]["doc_id"] == "de/vulkan.md" and set(hits[0]["signals"]) == {"dense", "lexical"}
    assert len({h["doc_id"] for h in hits}) == len(hits)


def test_post_search_one_query_or_a_batch_with_where(client):
    client.post(
        "/documents",
        json={
            "documents": [
                {"id": "m1", "text": "Der Mount Everest ist der höchste Berg der Erde.", "metadata": {"year": 2019}},
                {"id": "m2", "text": "Die Zugspitze ist der höchste Berg Deutschlands.", "metadata": {"year": 2024}},
            ]
        },
    )
    one = client.post("/search", json={"query": "highest mountain", "k": 2, "where": {"year": {">=": 2020}}}).json()
    assert [h["doc_id"] for h in one["hits"]] == ["m2"]
    many = client.post("/search", json={"queries": ["highest mountain", "coffee beans"], "k": 1}).json()
    assert [r["query"] for r in many["results"]] == ["highest mountain", "coffee beans"]
    assert many["results"][0]["hits"][0]["doc_id"] in {"m1", "m2"}
    assert many["results"][1]["hits"][0]["doc_id"] == "es/cafe.html"
    empty = client.post("/search", json={"queries": ["coffee", "  "]})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    neither = client.post("/search", json={"k": 1})
    assert neither.status_code == 422 and "exactly one of 'query'" in neither.json()["detail"]
    bad = client.post("/search", json={"query": "x", "where": {"year; DROP TABLE chunks": 1}})
    assert bad.status_code == 422 and "year; DROP TABLE chunks" in bad.json()["detail"]  # a bad filter: 422
    unknown = client.post("/search", json={"query": "x", "colour": "red"})
    assert unknown.status_code == 422


def test_upsert_get_delete_round_trip(client):
    doc = {
        "id": "notes/42",
        "text": "Der Bodensee liegt zwischen Deutschland, Österreich und der Schweiz.",
        "metadata": {"topic": "geo"},
        "source": "../../etc/passwd",
    }
    report = client.post("/documents", json={"documents": [doc]}).json()
    assert report["documents_added"] == 1 and report["chunks_embedded"] == 1
    got = client.get("/documents/notes/42").json()
    assert got["doc_id"] == "notes/42" and got["metadata"] == {"topic": "geo"} and got["lang"] == "de"
    assert got["source"] == "../../etc/passwd"  # a label only: nothing a client sends names a file
    chunk = got["chunks"][0]
    assert chunk["text"] == doc["text"] and (chunk["start"], chunk["end"]) == (0, len(doc["text"]))
    assert client.get(f"/chunks/{chunk['chunk_id']}").json()["doc_id"] == "notes/42"
    top = client.get("/search", params={"q": doc["text"], "k": 1}).json()["hits"][0]
    assert top["doc_id"] == "notes/42"
    again = client.post("/documents", json={"documents": [doc]}).json()
    assert again["documents_unchanged"] == 1 and again["chunks_embedded"] == 0
    assert client.delete("/documents/notes/42").json() == {"deleted": 1}
    assert client.get("/documents/notes/42").status_code == 404
    assert client.get(f"/chunks/{chunk['chunk_id']}").status_code == 404
    hits = client.get("/search", params={"q": doc["text"], "k": 10}).json()["hits"]
    assert "notes/42" not in {h["doc_id"] for h in hits}
    missing = client.delete("/documents/notes/42")
    assert missing.status_code == 404 and "notes/42" in missing.json()["detail"]


def test_delete_many_and_stats(client):
    before = client.get("/stats").json()
    assert before["documents"] == 6 and before["model"] == "use-multilingual" and "languages" in before
    assert client.post("/documents/delete", json={"ids": ["en/bees.txt", "ru/shakhmaty.txt", "nope"]}).json() == {
        "deleted": 2
    }
    after = client.get("/stats").json()
    assert after["documents"] == 4 and after["server"]["writes"] == 1
    hits = client.get("/search", params={"q": "bees pollen chess", "k": 10}).json()["hits"]
    assert not {"en/bees.txt", "ru/shakhmaty.txt"} & {h["doc_id"] for h in hits}


def test_bad_documents_are_refused_whole_and_nothing_is_written(client):
    bad = client.post("/documents", json={"documents": [{"id": "ok", "text": "fine"}, {"id": "x", "text": ""}]})
    assert bad.status_code == 422
    dup = client.post("/documents", json={"documents": [{"id": "a", "text": "one"}, {"id": "a", "text": "two"}]})
    assert dup.status_code == 422 and "twice" in dup.json()["detail"]
    assert client.get("/documents/ok").status_code == 404 and client.get("/stats").json()["documents"] == 6


def test_health_openapi_and_docs(client):
    assert client.get("/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert {
        "/search",
        "/documents",
        "/documents/{doc_id}",
        "/documents/delete",
        "/chunks/{chunk_id}",
        "/stats",
        "/health",
    } <= set(spec["paths"])
    assert set(spec["components"]["schemas"]["Hit"]["properties"]) == HIT_FIELDS
    assert "securitySchemes" not in spec["components"]  # no token, no Authorize
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "/static/swagger/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text  # served here, offline
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404


def test_with_a_token_the_page_and_docs_load_but_nothing_of_the_index_does(client_for):
    client = client_for(ServerSettings(token=TOKEN))
    assert client.get("/health").json()["auth"] == "bearer"
    for path in ("/", "/docs", "/static/page.js", "/static/token.js", "/static/swagger/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "photosynth" not in response.text and "bees.txt" not in response.text, path
    assert client.get("/openapi.json").status_code == 401
    spec = client.get("/openapi.json", headers=AUTH).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The token the server was started with.",
    }
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/search"]["get"]["security"] == [{"bearer": []}]


def test_only_the_page_and_its_files_are_open():
    assert all(map(is_open, ["/", "/docs", "/static/page.js", "/static/swagger/swagger-ui.css"]))
    closed = ["/stats", "/openapi.json", "/docs/x", "/static", "/static/../stats", "/static/a/../../x"]
    assert not any(map(is_open, closed))


# -- authentication ---------------------------------------------------------------------------------
def test_with_a_token_every_endpoint_but_health_needs_it(client_for):
    client = client_for(ServerSettings(token=TOKEN))
    assert client.get("/health").status_code == 200
    requests = [
        ("get", "/search?q=coffee", None),
        ("post", "/search", {"query": "coffee"}),
        ("post", "/documents", {"documents": [{"id": "a", "text": "b"}]}),
        ("get", "/documents/en/bees.txt", None),
        ("delete", "/documents/en/bees.txt", None),
        ("post", "/documents/delete", {"ids": ["en/bees.txt"]}),
        ("get", "/chunks/1", None),
        ("get", "/stats", None),
        ("get", "/openapi.json", None),
        ("get", "/no-such-path", None),
    ]
    wrong = [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ]
    for method, url, body in requests:
        for headers in wrong:
            response = client.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in response.text
    assert client.get("/search", params={"q": "coffee"}, headers=AUTH).status_code == 200
    assert (
        client.get("/search", params={"q": "coffee"}, headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    )
    assert client.get("/documents/en/bees.txt", headers=AUTH).status_code == 200
    assert client.delete("/documents/en/bees.txt", headers=AUTH).json() == {"deleted": 1}
    assert client.get("/documents/en/bees.txt", headers=AUTH).status_code == 404


def test_exposure_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", TOKEN)
    with pytest.raises(InvalidInput, match="without a token"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(InvalidInput, match="at least 16"):
        check_exposure("127.0.0.1", "short")
    assert "192.168.1.5" in default_allowed_hosts("192.168.1.5")
    assert "evil.example" not in default_allowed_hosts("0.0.0.0")


def test_serve_refuses_a_public_address_without_a_token(server_index, monkeypatch):
    monkeypatch.delenv("BABELINDEX_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--index", str(server_index), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "without a token" in result.output
    result = CliRunner().invoke(cli, ["serve", "--index", str(server_index), "--token", "short"])
    assert result.exit_code == 1 and "at least 16" in result.output


# -- the Host check (DNS rebinding) ------------------------------------------------------------------
def test_foreign_host_headers_are_refused(client_for):
    client = client_for(ServerSettings(token=TOKEN))
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.", ""):
        response = client.get("/search", params={"q": "x"}, headers={**AUTH, "Host": host})
        assert response.status_code == 400, host
        assert "DNS rebinding" in response.json()["detail"]
    assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000"):
        assert client.get("/search", params={"q": "x"}, headers={**AUTH, "Host": host}).status_code == 200, host


def test_allow_host_adds_names(client_for):
    client = client_for(ServerSettings(allowed_hosts=(*default_allowed_hosts("127.0.0.1"), "search.internal")))
    assert client.get("/health", headers={"Host": "search.internal:8000"}).status_code == 200
    assert client.get("/health", headers={"Host": "other.internal"}).status_code == 400


# -- limits -------------------------------------------------------------------------------------------
def test_each_limit_gives_a_4xx_that_names_it(client_for):
    limits = Limits(max_body_bytes=2_000, max_query_chars=50, max_k=20, max_queries=3, max_documents=2, max_ids=4)
    client = client_for(ServerSettings(limits=limits))
    cases = [
        (client.get("/search", params={"q": "x" * 51}), 413, "limit is 50"),
        (client.get("/search", params={"q": "x", "k": 21}), 422, "limit of 20"),
        (client.post("/search", json={"queries": ["a", "b", "c", "d"]}), 413, "limit is 3"),
        (
            client.post("/documents", json={"documents": [{"id": str(i), "text": "t"} for i in range(3)]}),
            413,
            "limit is 2",
        ),
        (client.post("/documents/delete", json={"ids": list("abcde")}), 413, "limit is 4"),
        (
            client.post("/documents", json={"documents": [{"id": "big", "text": "x" * 3_000}]}),
            413,
            "limit of 2000 bytes",
        ),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in response.json()["detail"], response.json()
    # A body streamed without Content-Length is counted as it arrives.
    streamed = client.post(
        "/search", content=iter([b'{"query": "', b"x" * 2_500, b'"}']), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.get("/search", params={"q": "x" * 50, "k": 20}).status_code == 200
    assert client.get("/stats").json()["documents"] == 6  # nothing over a limit was written


def test_a_writer_holding_the_lock_gives_409_and_searches_go_on(client_for, tmp_path):
    from store import IndexDir

    client = client_for()
    path = tmp_path / "idx0"  # the copy client_for made
    with IndexDir.open_for_writing(path):  # another writer, as `indexer build` would be
        response = client.post("/documents", json={"documents": [{"id": "a", "text": "Ein Text."}]})
        assert response.status_code == 409
        assert f"is being written by pid {os.getpid()}" in response.json()["detail"]
        assert response.headers["retry-after"] == "1"
        assert client.get("/search", params={"q": "coffee"}).status_code == 200
    assert client.post("/documents", json={"documents": [{"id": "a", "text": "Ein Text."}]}).status_code == 200


def test_the_index_own_state_is_a_5xx_not_a_client_error(client_for, server_index, use_model, tmp_path):
    """An index that cannot answer (no full-text table yet) is the server's state: 503, not 400."""
    import sqlite3

    client = client_for()
    path = tmp_path / "idx0"
    with sqlite3.connect(path / "meta.db") as conn:  # as an index of the first schema had it
        for name in ("TRIGGER chunks_fts_insert", "TRIGGER chunks_fts_delete", "TABLE chunks_fts"):
            conn.execute(f"DROP {name}")
    response = client.get("/search", params={"q": "Vulkan", "mode": "lexical"})
    assert response.status_code == 503
    assert "no full-text table yet" in response.json()["detail"]
    assert client.get("/search", params={"q": "Vulkan"}).status_code == 200  # dense search still answers


def test_an_index_whose_first_build_never_published_is_not_ready(tmp_path):
    from search import IndexNotReady
    from store import IndexDir

    IndexDir.open_for_writing(tmp_path / "new.idx").close()  # created, nothing published
    with pytest.raises(IndexNotReady, match="no published index yet; run `indexer build`") as err:
        Index.open(tmp_path / "new.idx")
    assert not isinstance(err.value, InvalidInput)
