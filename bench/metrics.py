"""What `GET /metrics` costs a search: `indexer serve` with metrics on and off, side by side.

Builds an index of a multilingual corpus (../shared/eval sentences) with the offline
multilingual model (`use-multilingual`, the sample corpus's model), starts two servers on
loopback over copies of it, one with the default `--metrics` and one with `--no-metrics`,
and sends them the same `GET /search?q=…&k=10` requests (Tatoeba sentences in nine
languages) one at a time, alternating between the two, so that the machine's noise falls on
both alike. Prints p50, p90 and mean latency per setting and their differences; then the
time one scrape of `/metrics` takes. The last line is one JSON object.

    python bench/metrics.py [--requests 2000] [--docs 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer.build import build_index
from indexer.embedding.precision import cpu_flags

from build import sentences, write_corpus
from serve import Connection, start_server
from watch import cpu_model


def cpu() -> str:
    """The CPU model and the flags that matter for inference speed."""
    return f"{cpu_model()}, {os.cpu_count()} threads, flags {' '.join(cpu_flags())}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def alternate(urls: dict[str, str], queries: list[str], requests: int) -> dict[str, list[float]]:
    """``requests`` searches per server, one at a time, alternating (the order flips each round)."""
    connections = {name: await Connection.open(url) for name, url in urls.items()}
    targets = ["/search?" + urlencode({"q": q, "k": 10}) for q in queries]
    rng = random.Random(0)
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    for _ in range(20):  # warm both up
        for name in names:
            await connections[name].get(rng.choice(targets))
    for round_ in range(requests):
        target = rng.choice(targets)
        for name in names if round_ % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            status, body = await connections[name].get(target)
            elapsed = time.perf_counter() - started
            if status != 200 or len(json.loads(body)["hits"]) != 10:
                raise SystemExit(f"{name}: {status} {body[:200]!r}")
            latencies[name].append(elapsed)
    for connection in connections.values():
        connection.close()
    return latencies


async def scrape_times(url: str, times: int) -> list[float]:
    connection = await Connection.open(url)
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        status, body = await connection.get("/metrics")
        spent.append(time.perf_counter() - started)
        if status != 200 or b"babelindex_http_requests_total" not in body:
            raise SystemExit(f"/metrics: {status}")
    connection.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="searches per setting")
    parser.add_argument("--docs", type=int, default=400, help="documents in the corpus")
    args = parser.parse_args()
    by_lang = sentences()
    queries = [s for texts in by_lang.values() for s in texts[:40]]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_corpus(root / "corpus", by_lang, args.docs)
        report = build_index(root / "corpus", root / "on.idx", model="use-multilingual")
        shutil.copytree(root / "on.idx", root / "off.idx")
        servers = {}
        for name, extra in (("metrics_on", []), ("metrics_off", ["--no-metrics"])):
            servers[name] = start_server(root / f"{name[8:]}.idx", extra, "auto", root / f"{name}.log")
        try:
            latencies = asyncio.run(alternate({n: url for n, (_, url) in servers.items()}, queries, args.requests))
            scrapes = asyncio.run(scrape_times(servers["metrics_on"][1], 50))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    figures = {
        name: {
            "p50_ms": round(percentile(values, 0.5) * 1000, 3),
            "p90_ms": round(percentile(values, 0.9) * 1000, 3),
            "mean_ms": round(statistics.fmean(values) * 1000, 3),
        }
        for name, values in latencies.items()
    }
    on, off = figures["metrics_on"], figures["metrics_off"]
    result = {
        "cpu": cpu(),
        "chunks": report.chunks_total,
        "requests_per_setting": args.requests,
        **figures,
        "added_p50_ms": round(on["p50_ms"] - off["p50_ms"], 3),
        "added_mean_ms": round(on["mean_ms"] - off["mean_ms"], 3),
        "scrape_p50_ms": round(percentile(scrapes, 0.5) * 1000, 3),
    }
    print(f"CPU: {result['cpu']}")
    print(f"{report.chunks_total} chunks; {args.requests} sequential GET /search per setting, alternating")
    for name in ("metrics_on", "metrics_off"):
        f = figures[name]
        print(f"{name:12s} p50 {f['p50_ms']:7.3f} ms  p90 {f['p90_ms']:7.3f} ms  mean {f['mean_ms']:7.3f} ms")
    print(f"added by metrics: p50 {result['added_p50_ms']:+.3f} ms, mean {result['added_mean_ms']:+.3f} ms")
    print(f"one scrape of /metrics: p50 {result['scrape_p50_ms']:.3f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
