"""Scaling figures: (a) the Ray engine against the local one, (b) IVF index types at 1M×768.

(a) comes from ``bench/scale_ray.py`` (``measure_ray()``), when it is there; ``--skip-ray``
skips it.

(b) Synthetic clustered vectors, ``--n`` of them (default 1,000,000) of ``--dim`` 768
dimensions: ``--centres`` Gaussian cluster centres, each vector a centre plus a offset in a
shared 64-dimensional subspace plus a little isotropic noise, L2-normalised (so neighbours
are structured as with real embeddings, not pure noise). Generated in chunks with a fixed
seed into a float32 memory-mapped file (``--n × --dim × 4`` bytes on disk, never held twice
in memory); ``--queries`` queries are drawn from the same distribution. For ivf (flat
codes), ivf-sq8, ivf-pq and ivf-opq, with the library's rules (``choose_nlist``,
``pq_subquantizers``, ``tune_nprobe``):

* build: the coarse k-means (``nlist`` centroids, trained once on ``--train-per-list`` (40)·nlist
  sampled vectors and shared, as is the assignment of every vector to its list) plus each
  type's own code training (SQ ranges, PQ/OPQ code books on a 65,536 sample) and adding in
  batches of 50,000;
* bytes per vector: code, FAISS file (codes, ids, centroids, code books) and memory when
  memory-mapped;
* recall@10 against exact search (FAISS IndexFlatIP over the same vectors) at the nprobe
  ``tune_nprobe`` chooses (recall@10 ≥ 0.95 on 500 stored vectors), and at nprobe 64;
* latency p50/p99 of single-query searches at that nprobe, loaded in memory and memory-mapped
  (warm page cache), and the seconds to verify the file's sha256 before mapping.

    nice -n 10 python bench/scale.py [--n 1000000] [--skip-ray]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from store import faiss_files, faiss_index, index_types, records

BATCH = 50_000
SUBSPACE = 64


def generate(path: Path, n: int, dim: int, centres: int, seed: int) -> np.memmap:
    """``n`` clustered unit vectors float32 ``(n, dim)`` written to a memory-mapped file at ``path``."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(centres, dim)).astype(np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    basis = np.linalg.qr(rng.normal(size=(dim, SUBSPACE)))[0].T.astype(np.float32)  # (64, dim), orthonormal rows
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for lo in range(0, n, BATCH):
        out[lo : lo + BATCH] = sample(rng, centre, basis, min(BATCH, n - lo))
    out.flush()
    return out


def sample(rng: np.random.Generator, centre: np.ndarray, basis: np.ndarray, n: int) -> np.ndarray:
    dim = centre.shape[1]
    x = centre[rng.integers(0, len(centre), n)]
    x += 0.5 * (rng.normal(size=(n, SUBSPACE)).astype(np.float32) @ basis) / np.sqrt(SUBSPACE)
    x += 0.15 * rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries_like(n: int, dim: int, centres: int, seed: int, qseed: int) -> np.ndarray:
    """Queries from the distribution :func:`generate` draws from (same centres and subspace)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(centres, dim)).astype(np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    basis = np.linalg.qr(rng.normal(size=(dim, SUBSPACE)))[0].T.astype(np.float32)
    return sample(np.random.default_rng(qseed), centre, basis, n).astype(np.float32)


def stream_of(data: np.ndarray):
    def stream():
        for lo in range(0, len(data), BATCH):
            yield np.arange(lo, min(lo + BATCH, len(data)), dtype=np.int64), np.ascontiguousarray(data[lo : lo + BATCH])

    return stream


def latencies(index: faiss.Index, queries: np.ndarray, nprobe: int) -> dict[str, float]:
    """p50 and p99 milliseconds of one-query searches (k=10) at ``nprobe``."""
    params = faiss_index.ivf_params(index, nprobe)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None, :], 10, params=params)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_kind(
    kind: str, data: np.ndarray, centroids: np.ndarray, assign: np.ndarray, codec_sample: np.ndarray
) -> tuple[faiss.Index, float, float]:
    """An index of ``kind`` over ``data`` on the shared coarse centroids; (index, train s, add s)."""
    n, dim = data.shape
    nlist = len(centroids)
    m = faiss_index.pq_subquantizers(dim)
    t = time.perf_counter()
    opq = None
    if kind == "ivf-opq":
        opq = faiss.OPQMatrix(dim, m)
        opq.train(codec_sample)
        centroids = opq.apply(centroids)  # orthogonal: inner products, hence the lists, are unchanged
        codec_sample = opq.apply(codec_sample)
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(centroids)
    if kind == "ivf":
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf-sq8":
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
    else:
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    ivf.train(codec_sample)  # the quantizer is trained: only the codes are
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    for lo in range(0, n, BATCH):
        x = np.ascontiguousarray(data[lo : lo + BATCH])
        if opq is not None:
            x = opq.apply(x)
        ids = np.arange(lo, lo + len(x), dtype=np.int64)
        a = np.ascontiguousarray(assign[lo : lo + len(x)])
        ivf.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(a))
    add_s = time.perf_counter() - t
    index = ivf
    if opq is not None:
        index = faiss.IndexPreTransform(opq, ivf)
    return index, train_s, add_s


def measure_ivf(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n, dim = args.n, args.dim
    t = time.perf_counter()
    data = generate(work / "vectors.npy", n, dim, args.centres, args.seed)
    gen_s = time.perf_counter() - t
    log(f"generated {n:,} × {dim} float32 ({data.nbytes / 1e9:.2f} GB, memory-mapped) in {gen_s:.0f} s")
    queries = queries_like(args.queries, dim, args.centres, args.seed, args.seed + 1)
    stream = stream_of(data)

    t = time.perf_counter()
    truth = faiss_index.exact_search(stream, queries, 10)
    exact_s = time.perf_counter() - t
    log(f"exact top-10 of {len(queries)} queries in {exact_s:.0f} s")

    nlist = index_types.choose_nlist(n)
    rng = np.random.default_rng(args.seed + 2)
    train_ids = np.sort(rng.choice(n, size=min(n, args.train_per_list * nlist), replace=False))
    t = time.perf_counter()
    kmeans = faiss.Kmeans(
        dim, nlist, niter=10, seed=args.seed, spherical=False, max_points_per_centroid=args.train_per_list
    )
    kmeans.train(np.ascontiguousarray(data[train_ids]))
    coarse_s = time.perf_counter() - t
    centroids = kmeans.centroids
    del kmeans
    log(f"coarse k-means: {nlist} lists on {len(train_ids):,} vectors in {coarse_s:.0f} s")
    t = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(centroids)
    assign = np.empty(n, dtype=np.int64)
    for ids, vecs in stream():
        assign[ids] = quantizer.search(vecs, 1)[1][:, 0]
    del quantizer
    assign_s = time.perf_counter() - t
    log(f"assignment of {n:,} vectors to lists in {assign_s:.0f} s")
    codec_sample = np.ascontiguousarray(data[np.sort(rng.choice(n, size=min(n, 65_536), replace=False))])
    tune_queries = np.ascontiguousarray(data[np.sort(rng.choice(n, size=min(n, 500), replace=False))])

    results: dict[str, Any] = {}
    for kind in args.kinds:
        index, train_s, add_s = build_kind(kind, data, centroids, assign, codec_sample)
        log(f"{kind}: codes trained in {train_s:.0f} s, {n:,} vectors added in {add_s:.0f} s")
        t = time.perf_counter()
        nprobe, tuned = faiss_index.tune_nprobe(index, stream, tune_queries)
        tune_s = time.perf_counter() - t
        found = index.search(queries, 10, params=faiss_index.ivf_params(index, nprobe))[1]
        recall = faiss_index.recall_at_k(found, truth)
        found64 = index.search(queries, 10, params=faiss_index.ivf_params(index, 64))[1]
        loaded = latencies(index, queries, nprobe)
        (work / faiss_files.FAISS_DIR).mkdir(exist_ok=True)
        path = work / faiss_files.FAISS_DIR / f"{kind}.faiss"
        faiss.write_index(index, str(path))
        ivf = faiss_index.ivf_of(index)
        code = int(ivf.code_size)
        del index, ivf
        gc.collect()
        size = path.stat().st_size
        t = time.perf_counter()
        sha = faiss_files.sha256_file(path)
        hash_s = time.perf_counter() - t
        info = records.FaissInfo(version=1, file=path.name, sha256=sha, size=size, ntotal=n, kind=kind, factory="")
        rss_before = _rss()
        t = time.perf_counter()
        mapped = faiss_files.read_version(work, info, mmap=True)  # verifies the sha256, then maps
        open_s = time.perf_counter() - t
        mapped_lat = latencies(mapped, queries, nprobe)
        mem = faiss_index.memory_report(mapped, info, True)
        rss_growth = _rss() - rss_before
        del mapped
        gc.collect()
        path.unlink()
        results[kind] = {
            "build_s": round(coarse_s + assign_s + train_s + add_s, 1),
            "code_train_s": round(train_s, 1),
            "add_s": round(add_s, 1),
            "nprobe": nprobe,
            "tuned_recall": round(tuned, 3),
            "tune_s": round(tune_s, 1),
            "recall_at_10": round(recall, 4),
            "recall_at_10_nprobe64": round(faiss_index.recall_at_k(found64, truth), 4),
            "code_bytes_per_vector": code,
            "file_bytes_per_vector": round(size / n, 1),
            "mmap_memory_bytes_per_vector": mem["memory_bytes_per_vector"],
            "file_mb": round(size / 1e6, 1),
            "loaded": loaded,
            "mmap": mapped_lat,
            "mmap_open_s": round(open_s, 2),
            "sha256_s": round(hash_s, 2),
            "mmap_rss_growth_mb": round(rss_growth / 1e6, 1),
        }
        log(f"{kind}: {json.dumps(results[kind])}")
    return {
        "n": n,
        "dim": dim,
        "centres": args.centres,
        "queries": len(queries),
        "nlist": nlist,
        "train_vectors": len(train_ids),
        "generate_s": round(gen_s, 1),
        "exact_s": round(exact_s, 1),
        "coarse_kmeans_s": round(coarse_s, 1),
        "assign_s": round(assign_s, 1),
        "kinds": results,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--centres", type=int, default=2_000, help="cluster centres of the synthetic data")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--train-per-list", type=int, default=40, help="coarse k-means sample: this many vectors per list"
    )
    parser.add_argument("--kinds", default="ivf,ivf-sq8,ivf-pq,ivf-opq", type=lambda s: s.split(","))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ray", action="store_true", help="skip part (a), the Ray engine's throughput")
    parser.add_argument("--workdir", type=Path, default=None, help="where the vectors file goes (default: a temp dir)")
    args = parser.parse_args()

    out: dict[str, Any] = {}
    if args.skip_ray:
        out["ray"] = {"skipped": "--skip-ray"}
    else:
        try:
            from scale_ray import measure_ray  # bench/ is on sys.path when run as a script
        except ImportError as exc:
            out["ray"] = {"skipped": f"bench/scale_ray.py unavailable ({exc})"}
        else:
            out["ray"] = measure_ray()
            log(f"ray: {json.dumps(out['ray'])}")

    with tempfile.TemporaryDirectory(prefix="babelindex-scale-", dir=args.workdir) as tmp:
        out["ivf"] = measure_ivf(args, Path(tmp))

    r = out["ivf"]
    print(
        f"{r['n']:,} vectors × {r['dim']}, nlist {r['nlist']} (coarse k-means on {r['train_vectors']:,} vectors "
        f"{r['coarse_kmeans_s']:.0f} s, assignment {r['assign_s']:.0f} s, shared), {r['queries']} queries"
    )
    print(
        "| type | build s | bytes/vector code / file / mmap RAM | nprobe | recall@10 | recall@10 nprobe 64 "
        "| p50 / p99 ms loaded | p50 / p99 ms mmap | sha256 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, k in r["kinds"].items():
        print(
            f"| {kind} | {k['build_s']:.0f} | {k['code_bytes_per_vector']} / {k['file_bytes_per_vector']:g} / "
            f"{k['mmap_memory_bytes_per_vector']:g} | {k['nprobe']} | {k['recall_at_10']:.3f} | "
            f"{k['recall_at_10_nprobe64']:.3f} | {k['loaded']['p50_ms']} / {k['loaded']['p99_ms']} | "
            f"{k['mmap']['p50_ms']} / {k['mmap']['p99_ms']} | {k['sha256_s']} |"
        )
    if "local_chunks_per_s" in out["ray"]:
        ray = out["ray"]
        print(
            f"ray: {ray['ray_chunks_per_s']:.1f} chunks/s vs local {ray['local_chunks_per_s']:.1f} "
            f"(ratio {ray['ratio']:.2f})"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
