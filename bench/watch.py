"""``indexer watch`` measured: save-to-searchable latency, a checkout-like burst, idle CPU, RSS.

The worker runs on a thread of this process (``indexer.watch.Watcher``, the code of
``indexer watch``) with the offline model ``use-multilingual``, loaded once; a searcher in
this process looks for each edit's marker word with lexical search on a freshly refreshed
``search.Index``, every 10 ms. Prints:

1. latency from a file's save (a one-page file, about 3,000 characters of Tatoeba
   sentences, written to a temporary name and renamed over the original as editors do) to
   its marker being searchable: p50, p90, p99 and max over ``--edits`` edits;
2. a ``git checkout``-like burst: ``--burst`` files written as fast as possible into the
   watched folder, time from the first write to the index holding all of them, against
   ``build_index`` of the same folder into a fresh index with the same loaded model;
3. idle CPU of the process over ``--idle`` seconds with nothing changing (percent of one
   core, from ``time.process_time``, which counts every thread);
4. RSS after every quarter of ``--events`` file events (rounds of 100 rewritten files,
   each round waited for): flat when memory does not grow with the event count.

    python bench/watch.py                    # about 8 minutes on 2 cores
    python bench/watch.py --edits 20 --burst 500 --idle 5 --events 1000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"

from indexer.build import build_index  # noqa: E402
from indexer.embedding import load_embedder  # noqa: E402
from indexer.embedding.precision import cpu_flags  # noqa: E402
from indexer.watch import BatchReport, Watcher, WatchOptions  # noqa: E402
from search import Index  # noqa: E402


def sentences() -> list[str]:
    out = []
    for task in sorted(EVAL.glob("tatoeba-*")):
        for kind in ("corpus.jsonl", "queries.jsonl"):
            with open(task / kind, encoding="utf-8") as fh:
                out.extend(json.loads(line)["text"] for line in fh)
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def page(texts: list[str], at: int, chars: int = 3000) -> str:
    out, n = [], 0
    while n < chars:
        t = texts[at % len(texts)]
        out.append(t)
        n += len(t) + 1
        at += 1
    return " ".join(out)


def wait_until(check, timeout: float = 120.0, every: float = 0.01) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("the index did not catch up")
        time.sleep(every)
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()

    print(f"cpu: {cpu_model()}, {os.cpu_count()} threads, flags {' '.join(cpu_flags())}")
    texts = sentences()
    model = load_embedder("use-multilingual")
    print(f"model: {model.name} ({model.dimension} dimensions), offline; worker: step 200 ms, debounce 2000 ms")
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        corpus, index = work / "corpus", work / "idx"
        corpus.mkdir()
        for i in range(20):
            (corpus / f"page{i:02d}.txt").write_text(page(texts, i * 50), encoding="utf-8")
        batches: list[BatchReport] = []
        watcher = Watcher(corpus, index, model=model, options=WatchOptions(), on_event=lambda e: batches.append(e))  # type: ignore[arg-type,func-returns-value]
        watcher.start()
        thread = threading.Thread(target=watcher.loop, daemon=True)
        thread.start()
        searcher = Index.open(index, model=model)

        def found(word: str, doc_id: str) -> bool:
            searcher.refresh()
            return [h.doc_id for h in searcher.search(word, k=1, mode="lexical")] == [doc_id]

        # 1. latency of single-file edits
        latencies = []
        for n in range(args.edits):
            target = corpus / f"page{n % 20:02d}.txt"
            marker = f"zqmarker{n}x"
            tmp = corpus / f".{target.name}.swp"
            tmp.write_text(page(texts, 1000 + n * 7) + f" {marker}", encoding="utf-8")
            saved = time.perf_counter()
            os.replace(tmp, target)
            wait_until(lambda m=marker, t=target.name: found(m, t))
            latencies.append(time.perf_counter() - saved)
            time.sleep(0.05)
        print(
            f"1. save to searchable, {args.edits} edits of a {len(page(texts, 0))}-character file: "
            f"p50 {statistics.median(latencies):.3f} s, p90 {percentile(latencies, 90):.3f} s, "
            f"p99 {percentile(latencies, 99):.3f} s, max {max(latencies):.3f} s"
        )

        # 2. a checkout-like burst, against a fresh build of the same folder
        burst = corpus / "checkout"
        before = len([b for b in batches if isinstance(b, BatchReport) and b.version is not None])
        started = time.perf_counter()
        burst.mkdir()
        for i in range(args.burst):
            sub = burst / f"d{i % 50:02d}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{i:05d}.txt").write_text(
                " ".join(texts[(i * 5 + j) % len(texts)] for j in range(5)), encoding="utf-8"
            )
        written = time.perf_counter() - started
        target_docs = 20 + args.burst

        def converged() -> bool:  # cheap to ask every 50 ms: a count of documents, no stats
            searcher.refresh()
            return searcher.documents(limit=1).total == target_docs and not watcher.dirty

        wait_until(converged, timeout=1800, every=0.05)
        watched = time.perf_counter() - started
        publishes = len([b for b in batches if isinstance(b, BatchReport) and b.version is not None]) - before
        fresh = build_index(corpus, work / "fresh", model=model)
        print(
            f"2. burst of {args.burst} files (written in {written:.1f} s): converged {watched:.1f} s after the first "
            f"write ({watched - written:.1f} s after the last) with {publishes} publishes; fresh build of the same "
            f"{target_docs} files: {fresh.seconds:.1f} s; ratio {watched / fresh.seconds:.2f}x from the first write, "
            f"{(watched - written) / fresh.seconds:.2f}x from the last"
        )
        shutil.rmtree(work / "fresh")

        # 3. idle CPU
        time.sleep(3)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(args.idle)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100
        print(
            f"3. idle for {args.idle:.0f} s: {cpu:.3f}% of one core (the whole process: worker, searcher, model threads)"
        )

        # 4. RSS against the number of events
        proc = psutil.Process()
        rss = [proc.memory_info().rss]
        rounds = max(1, args.events // 100)
        files = sorted((burst / "d00").glob("*.txt"))[:100]
        for r in range(rounds):
            for i, f in enumerate(files):
                f.write_text(f"round {r} file {i} " + texts[(r * 100 + i) % len(texts)], encoding="utf-8")
            last = files[-1]
            wait_until(
                lambda r=r, last=last: (
                    found(f"round {r} file {len(files) - 1}", f"checkout/d00/{last.name}") and not watcher.dirty
                ),
                timeout=300,
            )
            if (r + 1) % max(1, rounds // 4) == 0:
                rss.append(proc.memory_info().rss)
        mb = ", ".join(f"{x / 2**20:.0f}" for x in rss)
        print(
            f"4. RSS (MiB) at 0, 1/4 … 4/4 of {rounds * len(files)} events: {mb}; growth {(rss[-1] - rss[1]) / 2**20:+.1f} MiB after the first quarter"
        )
        watcher.stop()
        thread.join()
        searcher.close()
        summary = {
            "cpu": cpu_model(),
            "model": model.name,
            "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p99_s": round(percentile(latencies, 99), 3),
            "burst_files": args.burst,
            "burst_s": round(watched, 2),
            "build_s": round(fresh.seconds, 2),
            "burst_publishes": publishes,
            "idle_cpu_percent": round(cpu, 3),
            "rss_mib": [round(x / 2**20, 1) for x in rss],
        }
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
