"""Build throughput against pure embedding throughput, side by side in one run.

Generates a multilingual corpus from ../shared/eval sentences (documents of 4 to 9
sentences in one of nine languages, some long enough to need two chunks), builds it with a
randomly initialised model of DistilmBERT's exact shape (speed is that of the real model;
the vectors mean nothing), then embeds exactly the chunks of that build with the same
loaded model. Prints chunks/s of both and their ratio; the last line is one JSON object.

    python bench/build.py [--docs 2000] [--chunk-tokens 128]

Target: build chunks/s ≥ 0.9 × pure embedding chunks/s (the pipeline costs at most 10%).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from indexer.build import build_index
from indexer.chunking import DEFAULT_OVERLAP_TOKENS
from indexer.embedding import load_embedder
from indexer.embedding.synthetic import DISTILMBERT_SHAPE, make_distilbert
from indexer.reading import Document, read_corpus
from indexer.writer import Chunker
from store import IndexDir
from store.records import IndexSettings

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
TASKS = ["deu", "fra", "spa", "rus", "cmn", "ara", "jpn", "ita"]


def sentences() -> dict[str, list[str]]:
    """Tatoeba sentences by language: the eight query languages and English."""
    out: dict[str, list[str]] = {"eng": []}
    for task in TASKS:
        folder = EVAL / f"tatoeba-{task}"
        out[task] = _texts(folder / "queries.jsonl")
        out["eng"] += _texts(folder / "corpus.jsonl")
    return out


def _texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def write_corpus(root: Path, by_lang: dict[str, list[str]], n_docs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    langs = sorted(by_lang)
    for i in range(n_docs):
        lang = langs[i % len(langs)]
        sep = "" if lang in ("cmn", "jpn") else " "
        text = sep.join(rng.sample(by_lang[lang], rng.randint(4, 9)))
        path = root / lang / f"doc{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in ``embed_documents``."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_documents(self, texts):
        t0 = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - t0


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--chunk-tokens", type=int, default=128)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="babelindex-bench-"))
    by_lang = sentences()
    write_corpus(work / "corpus", by_lang, args.docs)
    t0 = time.perf_counter()
    model_dir = make_distilbert(
        work / "model", [s for texts in by_lang.values() for s in texts], shape=DISTILMBERT_SHAPE, tokenizer_vocab=30000
    )
    embedder = load_embedder(str(model_dir))
    print(
        f"model: DistilmBERT shape {DISTILMBERT_SHAPE}, random weights; made and loaded in "
        f"{time.perf_counter() - t0:.1f} s; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    embedder.embed_documents(["warm-up " * 40] * 16)

    # Pure embedding runs once before and once after the build, on the chunks the build
    # makes, and the build is compared with their mean: drift on a shared machine then
    # weighs on both sides alike.
    chunker = Chunker(embedder, IndexSettings(chunk_tokens=args.chunk_tokens, overlap_tokens=DEFAULT_OVERLAP_TOKENS))
    probe_texts = [c.text for doc in read_corpus(work / "corpus") if isinstance(doc, Document) for c in chunker(doc)]
    before_s = timed(embedder.embed_documents, probe_texts)
    inside = TimedEmbedder(embedder)
    report = build_index(work / "corpus", work / "bench.idx", model=inside, chunk_tokens=args.chunk_tokens)
    with IndexDir.open_for_reading(work / "bench.idx") as idx:
        texts = idx.meta.chunk_texts()
        tokens = sum(r[0] for r in idx.meta.conn.execute("SELECT n_tokens FROM chunks"))
    assert len(texts) == report.chunks_embedded == report.chunks_total

    assert sorted(texts) == sorted(probe_texts)
    after_s = timed(embedder.embed_documents, texts)
    pure_s = (before_s + after_s) / 2

    build_cps = len(texts) / report.seconds
    pure_cps = len(texts) / pure_s
    print(
        f"corpus: {args.docs} documents in 9 languages -> {len(texts)} chunks, {tokens} tokens "
        f"({tokens / len(texts):.0f} per chunk, target {args.chunk_tokens})"
    )
    print(
        f"build:           {report.seconds:8.1f} s  {build_cps:7.1f} chunks/s  (read, detect, chunk, embed, store, publish;"
        f" {inside.seconds:.1f} s of it in the model, {report.seconds - inside.seconds:.1f} s around it)"
    )
    print(
        f"pure embedding:  {pure_s:8.1f} s  {pure_cps:7.1f} chunks/s  (the same chunks, the same model;"
        f" mean of {before_s:.1f} s before and {after_s:.1f} s after the build)"
    )
    print(f"ratio build/pure: {build_cps / pure_cps:.3f}  (target >= 0.9)")
    print(
        json.dumps(
            {
                "chunks": len(texts),
                "tokens": tokens,
                "build_seconds": round(report.seconds, 2),
                "build_chunks_per_s": round(build_cps, 2),
                "embed_seconds": round(pure_s, 2),
                "embed_chunks_per_s": round(pure_cps, 2),
                "ratio": round(build_cps / pure_cps, 3),
                "build_model_seconds": round(inside.seconds, 2),
                "build_pipeline_seconds": round(report.seconds - inside.seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
