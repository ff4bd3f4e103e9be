"""HTTP search throughput and latency of `indexer serve`, micro-batching on and off, in one run.

Builds an index of a multilingual corpus (../shared/eval sentences) with a randomly
initialised model of DistilmBERT's exact shape (speed is that of the real model; the vectors
mean nothing), then starts `indexer serve` on loopback twice: with micro-batching
(`--batch-size 8`, the default) and one query at a time (`--batch-size 1`). Against each in turn, closed loops of
1, 4 and 16 clients send `GET /search?q=…&k=10` (Tatoeba sentences in nine languages) for a
fixed time; each client sends its next request when the previous answer arrives. Prints
requests/s, p50 and p99 latency and errors per setting; the last line is one JSON object.

    python bench/serve.py [--seconds 15] [--docs 400] [--precision auto]

Targets at 16 clients: 0 errors; micro-batching ≥ 2× the requests/s of one at a time;
p99 ≤ 250 ms. The clients run on the same 2 cores as the server, so the figures are a
floor for a server with a machine of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer.build import build_index
from indexer.embedding.synthetic import DISTILMBERT_SHAPE, make_distilbert

from build import sentences, write_corpus

CLIENTS = (1, 4, 16)
SETTINGS = {"batching": ["--batch-size", "8"], "one_at_a_time": ["--batch-size", "1"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, extra: list[str], precision: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "indexer.cli",
                "serve",
                "--index",
                str(index),
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--precision",
                precision,
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
    deadline = time.monotonic() + 600  # the first `auto` load measures the precisions (a minute or so)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


class Connection:
    """A minimal HTTP/1.1 keep-alive client for GET requests: the load generator shares the
    server's two cores, and httpx costs 1.5-3 ms of CPU per request against about 0.2 ms here."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    async def get(self, target: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length"
        )
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def closed_loop(url: str, queries: list[str], clients: int, seconds: float) -> dict:
    """``clients`` concurrent loops of GET /search for ``seconds``: requests/s, latency, errors."""
    latencies: list[float] = []
    errors = 0
    targets = ["/search?" + urlencode({"q": q, "k": 10}) for q in queries]
    connections = [await Connection.open(url) for _ in range(clients)]
    stop_at = time.perf_counter() + seconds

    async def loop(connection: Connection, seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                status, body = await connection.get(rng.choice(targets))
                ok = status == 200 and len(json.loads(body)["hits"]) == 10
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c, i) for i, c in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="Length of each closed loop.")
    parser.add_argument("--docs", type=int, default=400, help="Documents in the served index.")
    parser.add_argument("--precision", default="auto", help="Model arithmetic of the server (auto, fp32, bf16, int8).")
    parser.add_argument("--batch-size", type=int, default=8, help="--batch-size of the micro-batching server.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="babelindex-bench-serve-"))
    by_lang = sentences()
    write_corpus(work / "corpus", by_lang, args.docs)
    model_dir = make_distilbert(
        work / "model", [s for texts in by_lang.values() for s in texts], shape=DISTILMBERT_SHAPE, tokenizer_vocab=30000
    )
    t0 = time.perf_counter()
    report = build_index(work / "corpus", work / "bench.idx", model=str(model_dir))
    print(
        f"index: {report.chunks_total} chunks of {args.docs} documents, {report.index_type}, built in "
        f"{time.perf_counter() - t0:.1f} s; model DistilmBERT shape, random weights; precision {args.precision}"
    )
    queries = [q for texts in by_lang.values() for q in texts[:200]]

    # Both servers run at once (one idles while the other is measured) and the loops
    # alternate between them, so that drift in the machine's load weighs on both alike.
    settings = {**SETTINGS, "batching": ["--batch-size", str(args.batch_size)]}
    servers = {
        name: start_server(work / "bench.idx", extra, args.precision, work / f"{name}.log")
        for name, extra in settings.items()
    }
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    try:
        for _, url in servers.values():
            asyncio.run(closed_loop(url, queries, 4, 3.0))  # warm-up
        for i, clients in enumerate(CLIENTS):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for name in order:
                row = asyncio.run(closed_loop(servers[name][1], queries, clients, args.seconds))
                results[name].append(row)
                print(
                    f"{name:14} {clients:2d} clients: {row['rps']:7.1f} requests/s  p50 {row['p50_ms']:6.1f} ms  "
                    f"p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}",
                    flush=True,
                )
        for name, (_, url) in servers.items():
            server = httpx.get(url + "/stats").json()["server"]
            print(
                f"{name:14} model calls {server['model_calls']}, queries embedded {server['queries_embedded']} "
                f"({server['queries_embedded'] / max(server['model_calls'], 1):.1f} per call)"
            )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    for rows in results.values():
        rows.sort(key=lambda r: r["clients"])

    at16 = {name: next(r for r in rows if r["clients"] == 16) for name, rows in results.items()}
    speedup = at16["batching"]["rps"] / at16["one_at_a_time"]["rps"]
    print(
        f"16 clients: micro-batching {speedup:.2f}x the requests/s of one at a time (target >= 2); "
        f"p99 {at16['batching']['p99_ms']} ms (target <= 250); errors {at16['batching']['errors']} (target 0)"
    )
    print(
        json.dumps(
            {
                "speedup_16": round(speedup, 2),
                "p99_16_ms": at16["batching"]["p99_ms"],
                "errors_16": at16["batching"]["errors"],
                "seconds_per_loop": args.seconds,
                "chunks": report.chunks_total,
                "precision": args.precision,
                "batch_size": args.batch_size,
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
