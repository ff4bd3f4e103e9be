"""The adversary's requests of issue 16, measured against a real ``indexer serve``.

Prints, for the sample corpus (examples/corpus) served with a token:

* amplification: what happens to a 4 MB metadata upsert, then the response size and the
  server's peak RSS for ``GET /search?k=1000&source=amp`` over a document of 240 chunks
  carrying the largest metadata allowed;
* stalls: the latency of a normal search alone, and beside (a) two searches with the
  longest glob allowed against 4,000-character source labels, (b) two POST /search of 16
  lexical queries of 666 two-letter terms each.

    python bench/hostile.py            # about a minute
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-hostile-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def normal_latencies(url: str, n: int = 10) -> list[float]:
    out = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=300) as client:
        for _ in range(n):
            started = time.perf_counter()
            assert client.get("/search", params={"q": "Wie bricht ein Vulkan aus?", "k": 5}).status_code == 200
            out.append(time.perf_counter() - started)
    return out


def beside(url: str, attack) -> tuple[list[float], list[str]]:
    """Normal search latencies while two threads repeat ``attack(client)``."""
    stop = threading.Event()
    answers: list[str] = []

    def loop() -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=300) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = attack(client)
                answers.append(f"{response.status_code} in {time.perf_counter() - started:.2f} s")

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        return normal_latencies(url), answers
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", BABELINDEX_TOKEN=TOKEN)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer.cli",
            "build",
            str(ROOT / "examples" / "corpus"),
            "--index",
            str(work / "idx"),
            "--model",
            "use-multilingual",
            "--quiet",
        ],
        check=True,
        env=env,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indexer.cli",
            "serve",
            "--index",
            str(work / "idx"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        proc = psutil.Process(server.pid)
        client = httpx.Client(base_url=url, headers=AUTH, timeout=600)

        # -- amplification ------------------------------------------------------------------------
        text = " ".join(f"Tom wrote line {i} of a long letter." for i in range(2400))
        huge = client.post(
            "/documents",
            json={"documents": [{"id": "amp", "text": text, "source": "amp", "metadata": {"blob": "m" * 4_000_000}}]},
        )
        print(f"4 MB metadata upsert: {huge.status_code} {huge.json()['detail'][:100]!r}")
        allowed = {"blob": "m" * 40_900}
        ok = client.post(
            "/documents", json={"documents": [{"id": "amp", "text": text, "source": "amp", "metadata": allowed}]}
        )
        assert ok.status_code == 200, ok.text
        chunks = len(client.get("/documents/amp").json()["chunks"])
        rss_before = proc.memory_info().rss
        peak = [rss_before]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.perf_counter()
        response = client.get("/search", params={"q": "Tom", "k": 1000, "source": "amp"})
        took = time.perf_counter() - started
        done.set()
        watcher.join()
        hits = response.json()["hits"]
        print(
            f"amplification: document of {chunks} chunks and {len(json.dumps(allowed)):,} bytes of metadata; "
            f"k=1000 source=amp: {response.status_code}, {len(hits)} hits, {len(response.content) / 1e6:.1f} MB "
            f"in {took:.2f} s; server RSS {rss_before / 1e6:.0f} MB before, peak {peak[0] / 1e6:.0f} MB"
        )

        # -- stalls -------------------------------------------------------------------------------
        labels = [{"id": f"glob{i}", "text": f"Ein Dokument {i}.", "source": "a" * 4000 + f"/{i}"} for i in range(200)]
        assert client.post("/documents", json={"documents": labels}).status_code == 200
        alone = normal_latencies(url)
        glob = "*" + "[a-b]" * 15 + "c"  # as many wildcards as allowed (16)

        def glob_attack(c: httpx.Client) -> httpx.Response:
            return c.get("/search", params={"q": "Dokument", "source": glob})

        terms = " ".join(f"{i % 100:02d}" for i in range(666))

        def lexical_attack(c: httpx.Client) -> httpx.Response:
            return c.post("/search", json={"queries": [terms] * 16, "mode": "lexical", "k": 10})

        for name, attack in (
            ("5(a) longest glob allowed", glob_attack),
            ("5(b) 16 x 666 lexical terms", lexical_attack),
        ):
            latencies, answers = beside(url, attack)
            print(
                f"{name}: normal search median {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms (alone: median {statistics.median(alone) * 1000:.0f} ms, "
                f"max {max(alone) * 1000:.0f} ms); the attack's answers: {answers[:4]}"
            )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
