"""The service against hostile input (issue 16): each test names the defect it guards against.

In process, with FastAPI's TestClient over an index of the cheap hashing model; the real
uvicorn process (headers, slow clients, connections, SIGKILL) is in test_server_process.py.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.update import upsert_documents
from search import DiskFull, Index, InvalidFilter, InvalidInput
from search.server import ServerSettings, create_app
from store import IndexDir
from store.check import check_index
from store.lock import WriterLock
from store.metadata_json import MAX_METADATA_BYTES
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder()
TOKEN = "hardening-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:8000"
RECORDS = [{"id": f"r{i}", "text": f"Vulkan report number {i} on rivers.", "year": 2020 + i % 5} for i in range(20)]


@pytest.fixture
def index_path(tmp_path) -> Path:
    corpus = write_files(tmp_path / "c", {"r.jsonl": "\n".join(json.dumps(r) for r in RECORDS)})
    build_index(corpus, tmp_path / "idx", model=MODEL, id_field="id")
    return tmp_path / "idx"


@pytest.fixture
def client(index_path):
    settings = ServerSettings(token=TOKEN, max_pending_writes=4)
    with TestClient(create_app(Index.open(index_path, model=MODEL), settings), base_url=BASE, headers=AUTH) as c:
        yield c


# -- 1. NaN poisons nothing ----------------------------------------------------------------------
def test_nan_or_infinite_metadata_is_refused_naming_the_field_and_filters_keep_working(client):
    for bad in ("NaN", "Infinity", "-Infinity"):
        body = '{"documents": [{"id": "p", "text": "Metadaten mit NaN", "metadata": {"x": {"y": BAD}}}]}'
        body = body.replace("BAD", bad)
        response = client.post("/documents", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (400, 422), response.text
        assert "'x.y'" in response.text
    assert client.get("/search", params={"q": "Vulkan", "where": "year=2024"}).status_code == 200
    assert client.get("/documents/p").status_code == 404


def test_the_python_api_refuses_nan_metadata_with_invalid_input(index_path):
    with pytest.raises(InvalidInput, match=r"metadata field 'x' .* is nan, which JSON cannot store"):
        upsert_documents(index_path, [{"id": "p", "text": "Text", "metadata": {"x": float("nan")}}], model=MODEL)


def test_check_finds_metadata_that_is_not_valid_json(index_path):
    with sqlite3.connect(index_path / "meta.db") as conn:  # as an older babelindex could store it
        conn.execute("UPDATE documents SET metadata = '{\"x\": NaN}' WHERE doc_id = 'r3'")
    report = check_index(index_path)
    assert not report.ok
    assert any("not valid JSON" in p and "'r3'" in p for p in report.problems), report.problems


def test_check_verifies_the_full_text_table(index_path):
    with sqlite3.connect(index_path / "meta.db") as conn:  # a chunk whose text changed behind FTS's back
        conn.execute("UPDATE chunks SET text = 'changed' WHERE id = (SELECT min(id) FROM chunks)")
    report = check_index(index_path)
    assert any("full-text table fails its integrity check" in p for p in report.problems), report.problems


# -- 2 and 9. metadata is bounded, and hits share it -----------------------------------------------
def test_metadata_size_and_depth_are_bounded(client):
    big = {"blob": "x" * (MAX_METADATA_BYTES + 1)}
    response = client.post("/documents", json={"documents": [{"id": "b", "text": "Text", "metadata": big}]})
    assert response.status_code in (400, 422) and "the limit is 40,960" in response.text
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]
    response = client.post("/documents", json={"documents": [{"id": "d", "text": "Text", "metadata": deep}]})
    assert response.status_code in (400, 422) and "nests deeper than 16 levels" in response.text
    long_source = {"id": "s", "text": "Text", "source": "s" * 5000}
    response = client.post("/documents", json={"documents": [long_source]})
    assert response.status_code in (400, 422) and "the limit is 4096" in response.text


def test_hits_of_one_document_share_its_metadata(index_path):
    text = " ".join(f"Satz {i} über Vulkane und Flüsse." for i in range(400))
    meta = {"blob": "m" * 30_000}
    upsert_documents(index_path, [{"id": "long", "text": text, "metadata": meta}], model=MODEL)
    with Index.open(index_path, model=MODEL) as index:
        hits = [h for h in index.search("Vulkane Flüsse", k=100) if h.doc_id == "long"]
    assert len(hits) > 5
    assert all(h.metadata is hits[0].metadata for h in hits)  # one object, not one copy per hit


# -- 3 and 7. the writer lock ----------------------------------------------------------------------
def test_a_full_disk_while_taking_the_lock_leaves_no_lock_behind(tmp_path, monkeypatch):
    import os

    (tmp_path / "i").mkdir()
    real = os.pwrite

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(DiskFull, match="is full"):
        WriterLock(tmp_path / "i").acquire()
    monkeypatch.setattr(os, "pwrite", real)
    lock = WriterLock(tmp_path / "i")
    lock.acquire()  # not "being written by another process"
    lock.release()


def test_the_lock_file_never_holds_a_token(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "argv", ["indexer", "serve", "--index", "x", "--token", TOKEN])
    (tmp_path / "i").mkdir()
    with WriterLock(tmp_path / "i"):
        content = (tmp_path / "i" / "write.lock").read_text()
    assert TOKEN not in content and '"command": "indexer serve"' in content


# -- 5. small requests do not stall everyone -------------------------------------------------------
def test_lexical_queries_use_a_bounded_number_of_terms(client):
    from store.lexical import MAX_TERMS, terms

    assert len(terms(" ".join(f"t{i}" for i in range(666)))) == MAX_TERMS
    response = client.post(
        "/search", json={"queries": [" ".join(f"{i:02d}" for i in range(100))] * 4, "mode": "lexical"}
    )
    assert response.status_code == 200


def test_a_costly_filter_is_stopped_by_the_work_budget(tmp_path):
    build_index(write_files(tmp_path / "c", {"seed.txt": "document"}), tmp_path / "idx", model=MODEL)
    docs = [{"id": f"d{i}", "text": f"document {i}", "source": f"{'a' * 3000}/{i:04d}"} for i in range(300)]
    upsert_documents(tmp_path / "idx", docs, model=MODEL)
    pattern = "*" + "[a-b]" * 15 + "c"  # backtracks over every 3,000-character label
    with Index.open(tmp_path / "idx", model=MODEL) as index:
        index.budget_seconds = 0.05
        with pytest.raises(InvalidInput, match=r"needs more than 0\.05 s of work in the database; narrow it"):
            index.search("document", k=3, source=pattern)
        index.budget_seconds = 60
        assert index.search("document", k=3, source="a*") != []  # a cheap filter is answered


def test_a_glob_with_too_many_wildcards_is_refused(index_path):
    with Index.open(index_path, model=MODEL) as index, pytest.raises(InvalidInput, match="the limit is 16"):
        index.search("Vulkan", source="*" + "[a-b]" * 100 + "c")


def test_readers_have_a_connection_per_thread(index_path):
    """A reader's SQLite work runs beside another's, not behind one shared lock."""
    with IndexDir.open_for_reading(index_path) as idx:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(idx.meta.conn))
        thread.start()
        thread.join()
        assert seen[0] is not idx.meta.conn
        with idx.meta.lock:  # a no-op for readers: another thread's query does not wait
            other = threading.Thread(target=lambda: seen.append(idx.meta.count("chunks")))
            other.start()
            other.join(10)
            assert seen[-1] == len(RECORDS)


# -- 6. no empty token --------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_is_an_error(token):
    with pytest.raises(InvalidInput, match="the token is empty"):
        ServerSettings(token=token)


def test_the_cli_refuses_an_empty_token_file_or_variable(index_path, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from indexer.cli import cli

    for content in ("", "\n", "   \nsecond-line-is-not-read-0123456789"):
        (tmp_path / "tok.txt").write_text(content)
        result = CliRunner().invoke(
            cli, ["serve", "--index", str(index_path), "--token-file", str(tmp_path / "tok.txt")]
        )
        assert result.exit_code == 1 and "the token is empty" in result.output, result.output
    monkeypatch.setenv("BABELINDEX_TOKEN", "")
    result = CliRunner().invoke(cli, ["serve", "--index", str(index_path)])
    assert result.exit_code == 1 and "the token is empty" in result.output, result.output


# -- 8. writes never starve reads --------------------------------------------------------------------
def test_queued_writes_do_not_hold_up_health_and_reads(client, monkeypatch):
    release = threading.Event()
    started = threading.Event()
    from search import index as index_module

    real_upsert = index_module.Index.upsert

    def slow_upsert(self, documents):
        started.set()
        release.wait(60)
        return real_upsert(self, documents)

    monkeypatch.setattr(index_module.Index, "upsert", slow_upsert)
    answers: list[int] = []

    def write(i: int) -> None:
        answers.append(client.post("/documents", json={"documents": [{"id": f"w{i}", "text": "Text"}]}).status_code)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(45)]
    for thread in writers:
        thread.start()
    try:
        assert started.wait(30)
        assert client.get("/health").status_code == 200
        assert client.get("/documents/r1").status_code == 200
        assert client.get("/stats").status_code == 200
        assert client.get("/search", params={"q": "Vulkan"}).status_code == 200
    finally:
        release.set()
        for thread in writers:
            thread.join(60)
    assert answers.count(503) >= 45 - 5  # the writer's queue holds 4, one runs
    assert set(answers) <= {200, 503}


# -- 10. every input class is a 4xx ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/search", {"params": {"q": "Vul\x00kan", "mode": "lexical"}}),
        ("post", "/search", {"json": {"query": "Vulkan", "where": {"year": 2**70}}}),
        ("post", "/search", {"json": {"query": "Vulkan", "where": {"year": {"in": list(range(300_000))}}}}),
        ("post", "/search", {"json": {"query": "Vulkan", "lang": ["de"] * 300_000}}),
        ("post", "/search", {"json": {"query": "Vulkan", "where": {f"k{i}": i for i in range(2000)}}}),
        ("get", "/search", {"params": [("q", "Vulkan")] + [("where", f"k{i}>={i}") for i in range(1200)]}),
        ("post", "/search", {"content": '{"query": "\\ud800 Vulkan"}'}),
        ("post", "/documents", {"content": '{"documents": [{"id": "x", "text": "bad \\ud800"}]}'}),
        ("post", "/documents", {"content": '{"documents": [{"id": "\\udc80", "text": "Text"}]}'}),
        ("post", "/documents", {"content": '{"documents": [{"id": "x", "text": "T", "metadata": {"k": "\\ud800"}}]}'}),
        ("post", "/search", {"content": '{"query": "Vulkan", "k": NaN}'}),
        ("post", "/search", {"content": '{"query": "Vulkan", "k": Infinity}'}),
        ("post", "/search", {"content": '{"query": "Vulkan", "k": 1e400}'}),
        ("get", "/chunks/99999999999999999999999", {}),
    ],
)
def test_hostile_inputs_get_a_4xx_never_a_500(client, method, path, kwargs):
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": {"content-type": "application/json"}}
    response = getattr(client, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["detail"]


def test_a_number_beyond_64_bits_in_a_cli_condition_compares_as_a_float(client):
    response = client.get("/search", params={"q": "Vulkan", "where": f"year<{2**70}"})
    assert response.status_code == 200 and len(response.json()["hits"]) == 10
    assert client.get("/search", params={"q": "Vulkan", "where": "year=1e400"}).json()["hits"] == []  # a text


def test_the_python_api_raises_invalid_input_for_those_inputs(index_path):
    with Index.open(index_path, model=MODEL) as index:
        for kwargs in (
            {"query": "Vul\x00kan", "mode": "lexical"},
            {"query": "\ud800"},
            {"query": "x", "where": {"year": 2**70}},
            {"query": "x", "where": {"year": {"in": list(range(5000))}}},
            {"query": "x", "where": {"year": float("nan")}},
            {"query": "x", "lang": ["de"] * 1000},
        ):
            with pytest.raises(InvalidInput):
                index.search(**kwargs)
        assert index.get_chunk(2**80) is None


# -- 11. the refresh loop lives on -------------------------------------------------------------------
def test_therefresh_loop_survives_any_exception(caplog):
    import asyncio

    from search.server import refresh_loop

    calls = []

    class Flaky:
        def refresh(self) -> bool:
            calls.append(1)
            if len(calls) == 1:
                raise KeyError("an unknown key in a settings record")
            return False

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(refresh_loop(Flaky(), 0.01))
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert len(calls) >= 3
    assert "looking for a newer version failed" in caplog.text


# -- 12. a full disk is a clear 507 ---------------------------------------------------------------
def test_a_full_disk_during_an_upsert_is_a_507_and_the_index_still_serves(client, monkeypatch):
    from store import faiss_files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(faiss_files, "atomic_writer", _failing_writer(full))
    response = client.post("/documents", json={"documents": [{"id": "n", "text": "Ein neuer Text."}]})
    assert response.status_code == 507 and "is full" in response.json()["detail"]
    monkeypatch.undo()
    assert client.get("/search", params={"q": "Vulkan"}).status_code == 200
    assert client.post("/documents", json={"documents": [{"id": "n", "text": "Ein neuer Text."}]}).status_code == 200


def _failing_writer(fail):
    from contextlib import contextmanager

    from store.atomic import atomic_writer

    @contextmanager
    def writer(path, **kwargs):
        with atomic_writer(path, **kwargs) as fh:
            fail()
            yield fh

    return writer


# -- Low ------------------------------------------------------------------------------------------------
def test_host_and_authorization_headers_are_unambiguous(client):
    assert client.get("/search", params={"q": "x"}, headers={"host": "[::1]evil.com"}).status_code == 400
    assert client.get("/search", params={"q": "x"}, headers={"host": "[::1]:8000"}).status_code == 200
    twice = [("host", "127.0.0.1"), ("host", "evil.com"), ("authorization", AUTH["Authorization"])]
    assert client.get("/search", params={"q": "x"}, headers=twice).status_code == 400
    two_tokens = [("authorization", AUTH["Authorization"]), ("authorization", "Bearer wrong")]
    response = client.get("/search", params={"q": "x"}, headers=two_tokens)
    assert response.status_code == 400 and "twice" in response.json()["detail"]


def test_head_health_and_no_machine_paths_in_answers(client, index_path):
    assert client.head("/health").status_code == 200
    assert str(index_path) not in client.get("/stats").text
    report = client.post("/documents", json={"documents": [{"id": "z", "text": "Text"}]}).json()
    assert str(index_path) not in json.dumps(report)


def test_the_openapi_schema_lists_the_errors_and_refuses_what_the_server_refuses(client):
    schema = client.get("/openapi.json").json()
    get_search = schema["paths"]["/search"]["get"]
    assert {"400", "401", "413", "422", "503"} <= set(get_search["responses"])
    q = next(p for p in get_search["parameters"] if p["name"] == "q")
    assert q["schema"]["minLength"] == 1
    body = schema["components"]["schemas"]["SearchBody"]
    assert [branch["required"] for branch in body["oneOf"]] == [["query"], ["queries"]]


def test_a_cli_writer_can_wait_for_the_lock_instead_of_failing(index_path):
    """Under steady HTTP writes a CLI write was refused every time: --wait keeps trying."""
    from click.testing import CliRunner

    from indexer.cli import cli

    holder = IndexDir.open_for_writing(index_path)
    try:
        refused = CliRunner().invoke(cli, ["remove", "r1", "--index", str(index_path)])
        assert refused.exit_code == 1 and "is being written by" in refused.output
        threading.Timer(1.0, holder.close).start()  # the other writer finishes in a second
        waited = CliRunner().invoke(cli, ["remove", "r1", "--index", str(index_path), "--wait", "60"])
        assert waited.exit_code == 0 and "Removed 1 document" in waited.output, waited.output
    finally:
        holder.close()


def test_a_corpus_record_with_nan_metadata_is_skipped_with_its_reason_and_the_build_goes_on(tmp_path):
    lines = ['{"id": "ok", "text": "Ein guter Text."}', '{"id": "nan", "text": "Ein Text.", "year": NaN}']
    corpus = write_files(tmp_path / "c", {"r.jsonl": "\n".join(lines)})
    report = build_index(corpus, tmp_path / "idx", model=MODEL, id_field="id")
    assert report.documents_added == 1
    assert any("metadata field 'year'" in s["reason"] and "is nan" in s["reason"] for s in report.skipped), (
        report.skipped
    )
    with Index.open(tmp_path / "idx", model=MODEL) as index:
        with pytest.raises(InvalidFilter, match="No document has the metadata key 'year'"):  # none was kept
            index.search("Text", k=5, where={"year": {">": 1}})
        assert index.get_document("ok") is not None
