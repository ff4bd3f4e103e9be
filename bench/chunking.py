"""Chunking time against text length, for text with and without sentence punctuation.

Texts of 20 KB to 2 MB (characters; ASCII words, so also bytes) are cut by
:func:`indexer.chunking.chunk_text` with a tokenizer like the test suite's tiny model (a
WordPiece trained on ../shared/eval sentences, see :func:`indexer.embedding.synthetic.make_distilbert`):
``punctuated`` is words in sentences of 5 to 25 words, each ending with a full stop;
``unpunctuated`` is the same words with no sentence end at all, so the whole text is one
"sentence" that the chunker must cut by tokens. Prints seconds per size and kind; a kind
whose run exceeds ``--max-seconds`` is not tried at larger sizes (marked ``skipped``). The
last line is one JSON object.

    python bench/chunking.py [--sizes 20,80,160,320,1000,2000] [--max-seconds 120] [--kinds punctuated]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from indexer.chunking import chunk_text

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "near",
    "river",
    "while",
    "mountain",
    "science",
    "history",
    "language",
    "computer",
    "network",
    "garden",
    "window",
    "coffee",
    "morning",
    "evening",
    "music",
    "library",
    "student",
]


def make_text(n_chars: int, punctuated: bool, seed: int = 0) -> str:
    """About ``n_chars`` characters of words, in sentences or in one run without sentence ends."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_chars:
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 25))]
        sentence = " ".join(words)
        if punctuated:
            sentence = sentence.capitalize() + "."
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)[:n_chars].rstrip()


def tokenizer_counter():
    """The tiny test model's ``count_tokens`` (built here in a temporary folder)."""
    from indexer.embedding import load_embedder
    from indexer.embedding.synthetic import make_distilbert

    texts = []
    for task in ("tatoeba-deu", "tatoeba-jpn", "tatoeba-rus"):
        for kind in ("corpus", "queries"):
            with open(EVAL / task / f"{kind}.jsonl", encoding="utf-8") as fh:
                texts += [json.loads(line)["text"] for line in fh]
    folder = make_distilbert(Path(tempfile.mkdtemp(prefix="bench-chunking-")), texts)
    embedder = load_embedder(str(folder))
    return embedder.count_tokens, embedder.max_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,80,160,320,1000,2000", help="text sizes in KB (1 KB = 1,000 characters)")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--kinds", default="punctuated,unpunctuated", help="which texts to time")
    args = parser.parse_args()
    count, max_tokens = tokenizer_counter()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, float | None]] = {"punctuated": {}, "unpunctuated": {}}
    print(f"{'KB':>6} {'punctuated s':>14} {'unpunctuated s':>16}   chunks (p/u)")
    too_slow = {"punctuated", "unpunctuated"} - set(args.kinds.split(","))
    for kb in sizes:
        row, chunks = [], []
        for kind in results:
            if kind in too_slow:
                results[kind][str(kb)] = None
                row.append("skipped")
                chunks.append("-")
                continue
            text = make_text(kb * 1000, kind == "punctuated")
            started = time.perf_counter()
            spans = chunk_text(text, count, max_tokens=max_tokens, lang="en")
            seconds = time.perf_counter() - started
            results[kind][str(kb)] = round(seconds, 2)
            row.append(f"{seconds:.2f}")
            chunks.append(str(len(spans)))
            if seconds > args.max_seconds:
                too_slow.add(kind)
        print(f"{kb:>6} {row[0]:>14} {row[1]:>16}   {'/'.join(chunks)}", flush=True)
    print(json.dumps({"seconds": results, "max_tokens": max_tokens}))


if __name__ == "__main__":
    main()
