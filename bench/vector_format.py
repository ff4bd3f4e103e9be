"""What float16 vectors cost in search time and in repair, side by side with float32.

Builds one index of ``--chunks`` short texts with the hashing test double (``--dim``
dimensions: no model time), copies it, and turns the copy into the format of indexes written
before float16 (float32 BLOBs, no ``vector_dtype`` setting, ``IDMap2,Flat`` after a repair).
Then, in alternation on the two: ``indexer repair`` (the FAISS file rebuilt from the stored
vectors) ``--rounds`` times, and ``Index.search_vectors`` of single query vectors (``k=10``,
``--queries`` of them, also a filtered search by language, which scores the stored vectors
of the matching chunks exactly). Prints bytes (``indexer stats``: meta.db and the current FAISS file), repair seconds (best of the rounds),
search p50 / p90 in ms for each, and how far apart the two top-10 scores are. The last line is
one JSON object.

    python bench/vector_format.py [--chunks 16000] [--dim 384] [--queries 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from indexer.embedding.precision import cpu_flags  # noqa: E402
from indexer.update import repair, upsert_documents  # noqa: E402
from search import Index  # noqa: E402
from tests.fakes import HashingEmbedder  # noqa: E402
from tests.helpers import to_float32_format  # noqa: E402

from space import short_texts  # noqa: E402
from watch import cpu_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=16000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedder = HashingEmbedder(args.dim)
    work = Path(tempfile.mkdtemp(prefix="bench-vector-format-"))
    texts = short_texts(args.chunks)
    paths = {"float16": work / "f16.idx", "float32": work / "f32.idx"}
    upsert_documents(paths["float16"], [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)], model=embedder)
    shutil.copytree(paths["float16"], paths["float32"])
    to_float32_format(paths["float32"])
    print(f"cpu: {cpu_model()}, flags {' '.join(cpu_flags())}")
    print(f"{args.chunks} chunks of {args.dim} dimensions (hashing test double)")

    repair_s: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            t0 = time.perf_counter()
            repair(path)
            repair_s[name].append(time.perf_counter() - t0)
    factories, sizes = {}, {}
    asked = texts[:: max(1, len(texts) // args.queries)][: args.queries]
    queries = embedder.embed_queries(asked)
    latency: dict[str, dict[str, list[float]]] = {name: {"plain": [], "lang": []} for name in paths}
    found: dict[str, list[list[float]]] = {name: [] for name in paths}
    indexes = {name: Index.open(path, model=embedder) for name, path in paths.items()}
    for name, index in indexes.items():
        stats = index.stats()
        factories[name], sizes[name] = stats["index_type"], stats["size_bytes"]["total"]
        index.search_vectors(queries[:5], k=10)
    for text, q in zip(asked, queries, strict=True):
        for name, index in indexes.items():
            t0 = time.perf_counter()
            hits = index.search_vectors(q[None, :], k=10)[0]
            latency[name]["plain"].append((time.perf_counter() - t0) * 1000)
            found[name].append([h.score for h in hits])
            t0 = time.perf_counter()
            index.search(text, k=10, lang="de", query_vectors=q[None, :])
            latency[name]["lang"].append((time.perf_counter() - t0) * 1000)
    for index in indexes.values():
        index.close()
    result: dict = {"chunks": args.chunks, "dim": args.dim, "cpu": {"model": cpu_model(), "flags": cpu_flags()}}
    for name in paths:
        p = {k: np.percentile(v, [50, 90]) for k, v in latency[name].items()}
        result[name] = {
            "factory": factories[name],
            "bytes": sizes[name],
            "repair_s": round(min(repair_s[name]), 3),
            "search_p50_ms": round(float(p["plain"][0]), 3),
            "search_p90_ms": round(float(p["plain"][1]), 3),
            "lang_p50_ms": round(float(p["lang"][0]), 3),
        }
        r = result[name]
        print(
            f"{name}: {r['factory']:<14} {r['bytes'] / 1e6:6.2f} MB  repair {r['repair_s']:.2f} s (best of {args.rounds})  "
            f"search p50 {r['search_p50_ms']:.2f} ms p90 {r['search_p90_ms']:.2f} ms  lang=de p50 {r['lang_p50_ms']:.2f} ms"
        )
    gap = float(np.max(np.abs(np.asarray(found["float16"]) - np.asarray(found["float32"]))))
    result["max_top10_score_difference"] = round(gap, 6)
    print(
        f"top-10 scores, float16 against float32: at most {gap:.2e} apart (the test double's ties make ids a poor test)"
    )
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
