"""`indexer mcp` through the official SDK's own client: the server runs as a subprocess, spoken
to over stdio (read-only, and with --allow-writes) and over streamable HTTP with a token.

Each server is started once for the module; its client session lives on an event loop of its
own thread, so that the tests themselves stay synchronous.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from indexer.build import build_index
from indexer.cli import cli
from search import Index
from search.mcp_server import READ_TOOLS, WRITE_TOOLS, stdout_to_stderr
from search.rag import format_context
from tests.helpers import MULTILINGUAL_DOCS, write_files

pytestmark = pytest.mark.slow

TOKEN = "mcp-test-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
GERMAN = "Wie entsteht Sauerstoff in Pflanzen?"


def _env() -> dict[str, str]:
    keep = ("HF_HUB_OFFLINE", "BABELINDEX_PRECISION", "BABELINDEX_CACHE", "TOKENIZERS_PARALLELISM")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _command(index: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "indexer.cli", "mcp", "--index", str(index), *args]


class Connected:
    """A ``ClientSession`` held open on an event loop of its own thread: ``call`` and
    ``list_tools`` block until the answer. ``stray`` collects what the transport could not
    read as JSON-RPC (on stdio: anything but the protocol on the server's stdout)."""

    def __init__(self, connect: Callable[[], AbstractAsyncContextManager[Any]]):
        self.stray: list[Exception] = []
        self.closing: list[Any] = []  # files to close with the session
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        ready: concurrent.futures.Future[ClientSession] = concurrent.futures.Future()
        self._closing: asyncio.Event | None = None

        async def hold() -> None:
            self._closing = asyncio.Event()
            try:
                async with connect() as streams, ClientSession(streams[0], streams[1], message_handler=self._seen) as s:
                    await s.initialize()
                    ready.set_result(s)
                    await self._closing.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        self._held = asyncio.run_coroutine_threadsafe(hold(), self.loop)
        self._ready = ready

    @property
    def session(self) -> ClientSession:
        """The session, once initialized (the server may still be starting when this is made)."""
        return self._ready.result(timeout=120)

    async def _seen(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.stray.append(message)

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(self.session.call_tool(tool, arguments or {}), self.loop).result(60)

    def list_tools(self) -> Any:
        return asyncio.run_coroutine_threadsafe(self.session.list_tools(), self.loop).result(60)

    def close(self) -> None:
        self.session  # noqa: B018 - started: wait for it, to close it in order
        assert self._closing is not None
        self.loop.call_soon_threadsafe(self._closing.set)
        try:
            self._held.result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            for item in self.closing:
                item.close()


def _stdio(index: Path, log: Path, *args: str) -> Connected:
    """A session with ``indexer mcp`` over stdio; the server's stderr goes to ``log``."""
    params = StdioServerParameters(command=sys.executable, args=_command(index, *args)[1:], env=_env(), cwd=ROOT)
    errlog = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed with the session
    connected = Connected(lambda: stdio_client(params, errlog=errlog))
    connected.closing.append(errlog)
    return connected


@pytest.fixture(scope="module")
def built(tmp_path_factory, use_model) -> Path:
    root = tmp_path_factory.mktemp("mcp")
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "idx", model=use_model)
    return root / "idx"


@pytest.fixture(scope="module")
def servers(built, tmp_path_factory):
    """The three servers, started at once (each waits for its model): a read-only one on stdio,
    one with --allow-writes (and --max-documents 2) on stdio on a copy of the index, and one on
    streamable HTTP with a token."""
    root = tmp_path_factory.mktemp("mcp-servers")
    shutil.copytree(built, root / "writable")
    port = _free_port()
    http_log = root / "http.log"
    with open(http_log, "wb") as out:
        proc = subprocess.Popen(
            _command(built, "--http", "--port", str(port)),
            env=dict(os.environ, BABELINDEX_TOKEN=TOKEN),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    started = {
        "reader": _stdio(built, root / "reader.log"),
        "writer": _stdio(root / "writable", root / "writer.log", "--allow-writes", "--max-documents", "2"),
        "http": (proc, f"http://127.0.0.1:{port}/mcp", http_log),
    }
    yield started
    for name in ("reader", "writer"):
        started[name].close()
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()


@pytest.fixture(scope="module")
def reader(servers) -> Connected:
    return servers["reader"]


@pytest.fixture(scope="module")
def writer(servers) -> Connected:
    return servers["writer"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(servers) -> tuple[str, Path]:
    proc, url, log = servers["http"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(url, timeout=1)
            return url, log
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not start: {log.read_text()}")


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


# -- stdio, read-only -------------------------------------------------------------------------
def test_the_tools_are_listed_with_their_schemas(reader):
    tools = {t.name: t for t in reader.list_tools().tools}
    assert tuple(tools) == READ_TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80  # something an agent can act on
        assert tool.input_schema["type"] == "object" and tool.output_schema is not None
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert set(search["properties"]) == {"query", "k", "lang", "mode", "source", "where", "group_by"}
    assert search["properties"]["k"]["maximum"] == 1_000  # the server's --max-k, stated in the schema
    assert search["properties"]["mode"]["enum"] == ["dense", "lexical", "hybrid"]
    passage = tools["search"].output_schema["$defs"]["Passage"]["properties"]
    assert {"source", "doc_id", "chunk_id", "start", "end", "lang", "score", "text"} <= set(passage)


def test_a_german_question_finds_the_french_passage_cited_as_format_context_cites(reader, built, use_model):
    result = reader.call("search", {"query": GERMAN, "k": 2})
    assert result.is_error is False
    passages = result.structured_content["passages"]
    assert passages[0]["doc_id"] == "fr/photosynthese.txt" and passages[0]["lang"] == "fr"
    assert passages[0]["number"] == 1 and passages[0]["start"] == 0 and passages[0]["end"] == 163
    with Index.open(built, model=use_model) as index:
        hits = index.search(GERMAN, k=2)
    assert _text(result) == format_context(hits)
    assert _text(result).startswith("[1] source: fr/photosynthese.txt | doc_id: fr/photosynthese.txt | chars 0-163")
    assert [p["chunk_id"] for p in passages] == [h.chunk_id for h in hits]


def test_the_filters_modes_and_grouping_reach_the_search(reader):
    found = reader.call("search", {"query": "volcano", "lang": "German", "k": 3}).structured_content
    assert {p["lang"] for p in found["passages"]} == {"de"}
    found = reader.call("search", {"query": "café", "mode": "lexical"}).structured_content
    assert [p["doc_id"] for p in found["passages"]] == ["es/cafe.html"] and found["mode"] == "lexical"
    found = reader.call("search", {"query": "Vulkan", "where": {"title": "Vulkane"}, "k": 5}).structured_content
    assert [p["doc_id"] for p in found["passages"]] == ["de/vulkan.md"]
    found = reader.call("search", {"query": "Vulkan", "where": ["title=Vulkane"], "source": "de/"}).structured_content
    assert [p["doc_id"] for p in found["passages"]] == ["de/vulkan.md"]
    found = reader.call("search", {"query": "tides", "k": 6, "group_by": "document", "lang": "ja,ru"})
    assert sorted(p["lang"] for p in found.structured_content["passages"]) == ["ja", "ru"]


def test_get_document_gives_the_text_in_parts_with_exact_offsets(reader):
    whole = reader.call("get_document", {"doc_id": "de/vulkan.md"})
    assert whole.is_error is False
    doc = whole.structured_content
    assert doc["metadata"] == {"title": "Vulkane"} and doc["n_chars"] == 180 and doc["next_start"] is None
    assert doc["text"].startswith("Vulkane\n\nEin Vulkan bricht aus") and len(doc["text"]) == 180
    first = reader.call("get_document", {"doc_id": "de/vulkan.md", "max_chars": 100}).structured_content
    assert first["text"] == doc["text"][:100] and first["next_start"] == 100
    rest = reader.call("get_document", {"doc_id": "de/vulkan.md", "start": 100}).structured_content
    assert first["text"] + rest["text"] == doc["text"] and rest["end"] == 180
    assert "call get_document with start=100" in _text(
        reader.call("get_document", {"doc_id": "de/vulkan.md", "max_chars": 100})
    )


def test_index_info_tells_model_languages_and_counts(reader):
    info = reader.call("index_info").structured_content
    assert info["model"] == "use-multilingual" and info["dimension"] == 512
    assert info["documents"] == 6 and info["chunks"] == 6 and info["version"] == 1
    assert info["languages"] == {lang: 1 for lang in ("de", "en", "es", "fr", "ja", "ru")}
    assert info["writes_allowed"] is False and info["limits"]["max_k"] == 1_000
    assert info["index_type"] == "IDMap2,SQfp16"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {"query": "x", "k": 0}, "k must be an integer from 1"),
        ("search", {"query": "x", "k": 5_000}, "over this server's limit of 1000 (server option --max-k)"),
        ("search", {"query": "x", "k": "many"}, "valid integer"),
        ("search", {"query": "   "}, "every query must be a non-empty string"),
        ("search", {"query": "x" * 2_001}, "server option --max-query-chars"),
        ("search", {"query": "x", "lang": "xx"}, "'xx' names no language"),
        ("search", {"query": "x", "lang": "Klingon"}, "holds no Klingon (tlh) passages"),
        ("search", {"query": "x", "where": ["year>>2020"]}, "cannot read the condition 'year>>2020'"),
        ("search", {"query": "x", "where": {"year": {">=": 2020}}}, "No document has the metadata key 'year'"),
        ("search", {"query": "x", "mode": "semantic"}, "mode must be one of dense, lexical, hybrid"),
        ("search", {"query": "x", "group_by": "chunk"}, "group_by must be None or 'document'"),
        ("search", {"query": '"unclosed', "mode": "lexical"}, "quote"),
        ("get_document", {"doc_id": "nope.txt"}, "no document with id 'nope.txt'"),
        ("get_document", {"doc_id": "de/vulkan.md", "start": 500}, "beyond the end of the document"),
        ("get_document", {"doc_id": "de/vulkan.md", "max_chars": 10**9}, "max_chars"),
        ("upsert_documents", {"documents": [{"id": "a", "text": "b"}]}, "Unknown tool"),
        ("delete_documents", {"ids": ["de/vulkan.md"]}, "Unknown tool"),
    ],
)
def test_a_bad_argument_is_a_tool_error_with_the_library_message(reader, tool, arguments, message):
    result = reader.call(tool, arguments)
    assert result.is_error is True
    assert message in _text(result)
    assert str(ROOT) not in _text(result)


def test_the_server_lives_on_after_errors_and_wrote_only_protocol_to_stdout(reader):
    assert reader.call("search", {"query": GERMAN, "k": 1}).structured_content["passages"][0]["lang"] == "fr"
    assert reader.stray == []


def test_writes_are_refused_on_a_read_only_server_and_the_index_is_unchanged(reader):
    assert reader.call("upsert_documents", {"documents": [{"id": "x", "text": "y"}]}).is_error is True
    assert reader.call("index_info").structured_content["documents"] == 6


# -- stdio, --allow-writes --------------------------------------------------------------------
def test_writes_work_with_allow_writes(writer):
    tools = [t.name for t in writer.list_tools().tools]
    assert tuple(tools) == READ_TOOLS + WRITE_TOOLS
    note = {
        "id": "notes/kaffee",
        "text": "Kaffeebohnen werden geröstet, bevor man sie mahlt.",
        "metadata": {"year": 2024},
    }
    added = writer.call("upsert_documents", {"documents": [note]})
    assert added.is_error is False and added.structured_content["documents_added"] == 1
    assert "searchable now" in _text(added)
    found = writer.call("search", {"query": "How are coffee beans prepared?", "k": 1, "where": ["year>=2020"]})
    assert found.structured_content["passages"][0]["doc_id"] == "notes/kaffee"
    again = writer.call("upsert_documents", {"documents": [note]}).structured_content
    assert again["documents_unchanged"] == 1 and again["chunks_embedded"] == 0

    deleted = writer.call("delete_documents", {"ids": ["notes/kaffee", "never-there"]})
    assert deleted.structured_content["deleted"] == 1
    assert writer.call("get_document", {"doc_id": "notes/kaffee"}).is_error is True
    assert writer.call("index_info").structured_content["writes_allowed"] is True


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([{"id": f"d{i}", "text": "t"} for i in range(3)], "the limit is 2 (server option --max-documents)"),
        ([{"id": "d", "text": "a"}, {"id": "d", "text": "b"}], "appears twice"),
        ([{"id": "d", "text": "  "}], "needs a non-empty string 'text'"),
        ([{"id": "d", "text": "t", "metadata": _nested(20)}], "levels"),
        ([], "no documents given"),
    ],
)
def test_a_bad_write_is_a_tool_error_and_writes_nothing(writer, documents, message):
    before = writer.call("index_info").structured_content["version"]
    result = writer.call("upsert_documents", {"documents": documents})
    assert result.is_error is True and message in _text(result)
    assert writer.call("index_info").structured_content["version"] == before


# -- streamable HTTP with a token -------------------------------------------------------------
def test_streamable_http_lists_and_calls_the_tools_with_the_token(http_server):
    import httpx2

    url, log = http_server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connected = Connected(lambda: streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers)))
    try:
        assert tuple(t.name for t in connected.list_tools().tools) == READ_TOOLS
        result = connected.call("search", {"query": GERMAN, "k": 1})
        assert result.structured_content["passages"][0]["doc_id"] == "fr/photosynthese.txt"
        assert connected.call("index_info").structured_content["documents"] == 6
        assert connected.call("get_document", {"doc_id": "ja/kaiyo.txt"}).structured_content["lang"] == "ja"
        bad = connected.call("search", {"query": "x", "lang": "xx"})
        assert bad.is_error is True and "names no language" in _text(bad)
    finally:
        connected.close()
    assert TOKEN not in log.read_text()


def test_streamable_http_refuses_a_missing_or_wrong_token_and_a_foreign_host(http_server):
    url, _ = http_server
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=hello, headers=accept).status_code == 401
    wrong = httpx.post(url, json=hello, headers={**accept, "Authorization": "Bearer " + TOKEN[::-1]})
    assert wrong.status_code == 401
    rebound = httpx.post(url, json=hello, headers={**accept, "Authorization": f"Bearer {TOKEN}", "Host": "evil.test"})
    assert rebound.status_code == 421  # the SDK's DNS-rebinding guard, fed with indexer serve's host names
    origin = {**accept, "Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.test"}
    assert httpx.post(url, json=hello, headers=origin).status_code == 403


# -- the command line, without a server ------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--port", "9000"], 2, "--port apply to --http only"),
        (["--token", TOKEN], 2, "--token apply to --http only"),
        (["--http", "--host", "0.0.0.0"], 1, "refusing to listen on 0.0.0.0 without a token"),
        (["--http", "--token", "short"], 1, "use at least 16"),
    ],
)
def test_the_command_refuses_bad_options_before_opening_anything(tmp_path, args, code, message):
    result = CliRunner().invoke(cli, ["mcp", "--index", str(tmp_path / "none"), *args], env={"BABELINDEX_TOKEN": None})
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "none").exists()


def test_a_missing_index_is_an_error_and_not_created_without_allow_writes(tmp_path):
    result = CliRunner().invoke(cli, ["mcp", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and "indexer build" in result.output
    assert not (tmp_path / "none").exists()


def test_stdout_to_stderr_sends_python_and_c_level_output_to_stderr(capfd):
    with stdout_to_stderr():
        print("from print", flush=True)
        os.write(1, b"from the file descriptor\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "after\n"
    assert "from print" in err and "from the file descriptor" in err
