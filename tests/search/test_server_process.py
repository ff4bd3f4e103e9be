"""`indexer serve` as a real uvicorn process on loopback: a curl search, the token, logs that
never show it, and concurrent searches during writes (no errors, no deleted document
returned once its delete has returned)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from indexer.build import build_index

TOKEN = "process-test-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``indexer serve`` in a subprocess; its output goes to ``log``."""

    def __init__(self, index: Path, log: Path, *args: str, token: str | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env.pop("BABELINDEX_TOKEN", None)
        if token:
            env["BABELINDEX_TOKEN"] = token
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "indexer.cli", "serve", "--index", str(index), "--port", str(self.port), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not start: {log.read_text()}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def built(tmp_path_factory, use_model):
    from tests.helpers import MULTILINGUAL_DOCS, write_files

    root = tmp_path_factory.mktemp("served")
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "idx", model=use_model)
    return root


@pytest.mark.slow
def test_curl_search_and_the_token(built, tmp_path):
    index = tmp_path / "idx"
    shutil.copytree(built / "idx", index)
    server = Server(index, tmp_path / "open.log", "--log-level", "debug")
    try:
        query = "¿Cómo se forman las mareas?"
        if shutil.which("curl"):
            out = subprocess.run(
                ["curl", "-sf", "-G", server.url + "/search", "--data-urlencode", f"q={query}", "-d", "k=2"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            body = httpx.Response(200, content=out.encode()).json()
        else:  # pragma: no cover - curl is on these machines
            body = httpx.get(server.url + "/search", params={"q": query, "k": 2}).json()
        assert body["hits"][0]["doc_id"] == "ja/kaiyo.txt" and len(body["hits"]) == 2
    finally:
        server.stop()

    server = Server(index, tmp_path / "token.log", "--log-level", "debug", token=TOKEN)
    try:
        params = {"q": "coffee", "k": 1}
        assert httpx.get(server.url + "/search", params=params).status_code == 401
        assert httpx.get(server.url + "/health").status_code == 200
        ok = httpx.get(server.url + "/search", params=params, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["hits"][0]["doc_id"] == "es/cafe.html"
        wrong = httpx.get(server.url + "/search", params=params, headers={"Authorization": "Bearer " + TOKEN[::-1]})
        assert wrong.status_code == 401
    finally:
        log = server.stop()
    assert "GET /search" in log  # requests are logged …
    assert TOKEN not in log and TOKEN[::-1] not in log  # … the token never


@pytest.mark.slow
def test_concurrent_searches_during_writes(built, tmp_path):
    """Readers search the texts of documents that a writer adds and deletes over HTTP: no
    request fails, and no document is returned by a search that started after its delete
    returned."""
    index = tmp_path / "idx"
    shutil.copytree(built / "idx", index)
    server = Server(index, tmp_path / "server.log", "--log-level", "warning", token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(3)
    subjects = ["Die Elbe", "Der Rhein", "La Seine", "El Ebro", "The Thames", "La Loira", "Волга", "Der Inn"]
    texts = {
        f"river-{r}-{i}": f"{s} fließt durch viele Städte; Runde {r}, Absatz {i}."
        for r in range(8)
        for i, s in enumerate(subjects[:3])
    }
    deleted_at: dict[str, float] = {}
    errors: list[str] = []
    violations: list[tuple[str, float, float]] = []
    searches = [0]
    lock = threading.Lock()
    done = threading.Event()

    def reader(seed: int) -> None:
        pick = random.Random(seed)
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            while not done.is_set():
                doc_id = pick.choice(list(texts))
                started = time.monotonic()
                try:
                    response = client.post("/search", json={"query": texts[doc_id], "k": 5})
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text}")
                    continue
                with lock:
                    searches[0] += 1
                    for hit in response.json()["hits"]:
                        gone = deleted_at.get(hit["doc_id"])
                        if gone is not None and gone < started:
                            violations.append((hit["doc_id"], gone, started))

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in readers:
        thread.start()
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            for r in range(8):
                batch = [{"id": d, "text": t} for d, t in texts.items() if d.startswith(f"river-{r}-")]
                response = client.post("/documents", json={"documents": batch})
                assert response.status_code == 200, response.text
                found = client.post("/search", json={"query": batch[0]["text"], "k": 3}).json()["hits"]
                assert batch[0]["id"] in {h["doc_id"] for h in found}  # visible once the upsert returned
                time.sleep(rng.uniform(0.05, 0.3))
                gone = [d["id"] for d in batch[:2]]
                response = client.post("/documents/delete", json={"ids": gone})
                assert response.status_code == 200 and response.json() == {"deleted": 2}
                with lock:
                    for doc_id in gone:
                        deleted_at[doc_id] = time.monotonic()
                time.sleep(rng.uniform(0.05, 0.3))
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=60)
        log = server.stop()
    print(
        f"server: {searches[0]} searches by 3 clients during 8 rounds of upserts and deletes, "
        f"{len(errors)} errors, {len(violations)} deleted documents returned"
    )
    assert errors == [], (errors[:3], log[-2000:])
    assert violations == []
    assert searches[0] >= 24  # the readers really ran during the writes


def _reply_to(port: int, request: bytes, timeout: float = 10) -> bytes:
    """What the server answers to the raw bytes ``request`` (b"" if it closes without a word)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close while we are still sending
            sock.sendall(request)
        try:
            return sock.recv(4096)
        except OSError:
            return b""


@pytest.mark.slow
def test_headers_are_bounded_in_size_count_and_time_before_the_token(built, tmp_path):
    """A 200 KB header, 100,000 headers, slow clients and too many connections are turned
    away by the HTTP layer, before authentication, while normal requests are answered."""
    index = tmp_path / "idx"
    shutil.copytree(built / "idx", index)
    server = Server(index, tmp_path / "h.log", "--header-timeout", "1", "--max-connections", "16", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        big = b"GET /search?q=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
        assert _reply_to(server.port, big).startswith(b"HTTP/1.1 400")
        many = b"GET /search?q=x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n"
        assert _reply_to(server.port, many).startswith(b"HTTP/1.1 400")

        # Slow clients: each sends a header line every 0.3 s, never finishing; all are cut off.
        slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started, open_ = time.monotonic(), set(range(len(slow)))
        while open_ and time.monotonic() - started < 15:
            for i in list(open_):
                try:
                    slow[i].sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.discard(i)
            time.sleep(0.3)
        for sock in slow:
            sock.close()
        assert not open_, f"{len(open_)} slow connections still open after {time.monotonic() - started:.1f} s"
        assert time.monotonic() - started < 8

        # Too many connections: beyond --max-connections a request gets 503, and once the idle
        # ones are cut off (1 s) requests are answered again.
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(20)]
        try:
            assert httpx.get(server.url + "/health", timeout=10).status_code == 503
        finally:
            for sock in idle:
                sock.close()
        time.sleep(1.5)
        assert httpx.get(server.url + "/search", params={"q": "coffee"}, headers=auth, timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_write_and_undoes_no_delete(built, tmp_path):
    """SIGKILL the server while a client streams upserts and deletes: after a restart every
    acknowledged write is there and no acknowledged delete has come back."""
    import signal

    index = tmp_path / "idx"
    shutil.copytree(built / "idx", index)
    server = Server(index, tmp_path / "k.log", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    written: list[str] = []
    deleted: list[str] = []
    in_flight: list[str] = []  # a delete sent when the server died: done or not, unacknowledged
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                doc = {"id": f"k{i}", "text": f"Ein Dokument über Flüsse, Nummer {i}."}
                try:
                    if client.post("/documents", json={"documents": [doc]}).status_code == 200:
                        written.append(doc["id"])
                    if i % 3 == 2:
                        in_flight[:] = [f"k{i - 1}"]
                        if client.delete(f"/documents/k{i - 1}").status_code == 200:
                            deleted.append(f"k{i - 1}")
                        in_flight.clear()
                except httpx.HTTPError:
                    return  # the server is gone

    thread = threading.Thread(target=stream)
    thread.start()
    deadline = time.monotonic() + 60
    while len(written) < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(server.proc.pid, signal.SIGKILL)
    stop.set()
    thread.join(60)
    server.proc.wait(30)
    assert len(written) >= 12, "the writes never got going"

    again = Server(index, tmp_path / "k2.log", token=TOKEN)
    try:
        with httpx.Client(base_url=again.url, headers=auth, timeout=30) as client:
            for doc_id in written:
                expected = {404} if doc_id in deleted else {200, 404} if doc_id in in_flight else {200}
                assert client.get(f"/documents/{doc_id}").status_code in expected, doc_id
    finally:
        again.stop()
    from store.check import check_index

    assert check_index(index).ok


@pytest.mark.slow
def test_cli_writers_wait_their_turn_beside_http_writes_and_searches(built, tmp_path):
    """While a client streams upserts and searches over HTTP, `indexer build --wait` and
    `indexer remove --wait` from the command line get the lock in turn and succeed; no
    request fails (an upsert that meets a CLI writer gets 409 with Retry-After, and its
    retry succeeds)."""
    from tests.helpers import write_files

    index = tmp_path / "idx"
    shutil.copytree(built / "idx", index)
    server = Server(index, tmp_path / "w.log", token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    errors: list[str] = []
    refused: list[float] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            i = 0
            while not stop.is_set():
                doc = {"id": f"w{i}", "text": f"Ein Dokument über Berge, Nummer {i}."}
                upsert = client.post("/documents", json={"documents": [doc]})
                if upsert.status_code == 409:  # a CLI writer holds the lock: retry after Retry-After
                    refused.append(float(upsert.headers["retry-after"]))
                    time.sleep(refused[-1])
                    continue
                for response in (upsert, client.get("/search", params={"q": "Berge", "k": 3})):
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                i += 1

    thread = threading.Thread(target=stream)
    thread.start()
    extra = write_files(tmp_path / "extra", {"neu.txt": "Ein neues Dokument über Gletscher."})
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        time.sleep(1.0)
        for args in (
            ["build", str(extra), "--index", str(index), "--wait", "120", "--quiet"],
            ["remove", "w0", "--index", str(index), "--wait", "120"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "indexer.cli", *args], env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, (args, done.stdout, done.stderr)
    finally:
        stop.set()
        thread.join(120)
        server.stop()
    assert errors == []
    from search import Index

    with Index.open(index) as opened:
        assert opened.get_document("neu.txt") is not None and opened.get_document("w0") is None
