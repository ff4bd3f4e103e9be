"""The Ray engine's build throughput against the local engine's, side by side in one run.

Generates the corpus of bench/build.py (documents of 4 to 9 Tatoeba sentences in nine
languages), takes a randomly initialised model of DistilmBERT's exact shape (speed is that
of the real model; its vectors mean nothing; saved once under the babelindex cache, as
bench/embed.py does), and builds the corpus twice into fresh indexes: with ``--engine local``,
then with ``--engine ray`` on a local Ray of this machine's CPUs (one actor per CPU, each
loading the model by its path). Both builds load the model from disk and run at the
precision ``auto`` picks; chunks/s is the number of chunks over the wall-clock time of the
whole build, model loading and Ray's start-up of workers included (Ray itself is started
before the clock). Prints both, their ratio and the Ray build's steps; the last line is one
JSON object.

    python bench/scale_ray.py [--docs 1500] [--chunk-tokens 128] [--ray-address ADDRESS]

Target: ray ≥ 0.8 × local on one machine (the cost of the engine: workers, shards, merge).
``measure_ray()`` is what bench/scale.py calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer.build import build_index
from indexer.embedding.synthetic import DISTILMBERT_SHAPE, make_distilbert

from build import sentences, write_corpus  # bench/build.py


def distilmbert_shape_model(by_lang: dict[str, list[str]]) -> Path:
    """The random-weight DistilmBERT-shape model of bench/embed.py, made once in the cache."""
    from indexer.embedding.precision import cache_dir

    model_dir = cache_dir() / "bench" / "distilmbert-shape-v1"
    if not (model_dir / "model.safetensors").exists():
        tmp = Path(tempfile.mkdtemp(prefix="babelindex-model-"))
        make_distilbert(
            tmp / "model",
            [s for texts in by_lang.values() for s in texts],
            shape=DISTILMBERT_SHAPE,
            tokenizer_vocab=30000,
        )
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp / "model"), model_dir)
    return model_dir


def measure_ray(
    n_docs: int = 1500, chunk_tokens: int = 128, *, ray_address: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Build one corpus of ``n_docs`` documents with both engines; chunks/s of each and the ratio.

    ``model`` defaults to the DistilmBERT-shape model. Returns ``local_chunks_per_s``,
    ``ray_chunks_per_s``, ``ratio`` (ray / local), ``chunks``, ``local_seconds``,
    ``ray_seconds``, ``ray_steps`` (seconds per step), ``actors``, ``precision`` and
    ``merge_seconds_per_million_chunks`` (merge and publish, scaled linearly).
    """
    import ray

    work = Path(tempfile.mkdtemp(prefix="babelindex-scale-ray-"))
    try:
        by_lang = sentences()
        write_corpus(work / "corpus", by_lang, n_docs)
        model = model or str(distilmbert_shape_model(by_lang))

        local = build_index(work / "corpus", work / "local.idx", model=model, chunk_tokens=chunk_tokens)

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=ray_address,
                num_cpus=None if ray_address else os.cpu_count(),
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
            )
        try:
            actors = int(ray.cluster_resources().get("GPU", 0)) or int(ray.cluster_resources().get("CPU", 1))
            distributed = build_index(
                work / "corpus", work / "ray.idx", model=model, chunk_tokens=chunk_tokens, engine="ray"
            )
        finally:
            if started_here:
                ray.shutdown()
        assert local.chunks_total == distributed.chunks_total == distributed.chunks_embedded
        n = local.chunks_total
        local_cps, ray_cps = n / local.seconds, n / distributed.seconds
        merge = distributed.steps.get("merge", 0.0) + distributed.steps.get("publish", 0.0)
        return {
            "chunks": n,
            "documents": n_docs,
            "chunk_tokens": chunk_tokens,
            "local_seconds": local.seconds,
            "ray_seconds": distributed.seconds,
            "local_chunks_per_s": round(local_cps, 1),
            "ray_chunks_per_s": round(ray_cps, 1),
            "ratio": round(ray_cps / local_cps, 3),
            "ray_steps": distributed.steps,
            "actors": actors,
            "cpus": os.cpu_count(),
            "precision": os.environ.get("BABELINDEX_PRECISION", "auto"),
            "merge_seconds_per_million_chunks": round(merge / n * 1e6, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--chunk-tokens", type=int, default=128)
    parser.add_argument("--ray-address", default=None, help="a running Ray cluster (default: a local one)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    r = measure_ray(args.docs, args.chunk_tokens, ray_address=args.ray_address)
    print(
        f"corpus: {r['documents']} documents, {r['chunks']} chunks of ≤ {r['chunk_tokens']} tokens; "
        f"model: DistilmBERT shape, random weights, precision {r['precision']}; {r['cpus']} CPUs"
    )
    print(f"local engine: {r['local_seconds']:7.1f} s  {r['local_chunks_per_s']:7.1f} chunks/s")
    print(
        f"ray engine:   {r['ray_seconds']:7.1f} s  {r['ray_chunks_per_s']:7.1f} chunks/s  "
        f"({r['actors']} actors; steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["ray_steps"].items()) + ")"
    )
    print(
        f"ratio ray/local: {r['ratio']:.2f} (target ≥ 0.8); merge + publish: "
        f"{r['merge_seconds_per_million_chunks']:.0f} s per million chunks; run {time.perf_counter() - t0:.0f} s"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
