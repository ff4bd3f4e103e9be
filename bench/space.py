"""Where the bytes of an index of short texts go, and what deleting most of it gives back.

Builds an index of ``--docs`` short multilingual sentences (Tatoeba, ../shared/eval: the
queries of eight languages and the English corpus), one document each, with
``use-multilingual`` (512 dimensions) or, with ``--model hashing``, the hashing test double
of the same width (same bytes on disk, no model time). Then deletes ``--delete`` of the
documents twice, on two copies: once as before automatic reclaim (it is turned off), once
with it (a publish gives space back once 25% and 8 MiB of meta.db are free); then runs
``indexer compact`` (``indexer.update.compact``) on the second. Prints, at each step, bytes
on disk by part and, from SQLite's dbstat, by table (the vectors, the full-text tables, the
documents and chunks with their indexes), and the compacted directory's share of the built
one (the target is 30% or less after deleting 80%). The last line is one JSON object.

    python bench/space.py                           # 5,000 sentences, use-multilingual
    python bench/space.py --model hashing           # the same bytes, seconds faster
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from indexer.embedding import load_embedder  # noqa: E402
from indexer.embedding.precision import cpu_flags  # noqa: E402
from indexer.update import compact, delete_documents, upsert_documents  # noqa: E402
from search import Index  # noqa: E402
from store import IndexDir, compaction  # noqa: E402

from build import sentences  # noqa: E402
from watch import cpu_model  # noqa: E402

GROUPS = {
    "vectors": ("vectors",),
    "full text (FTS5 trigram)": ("chunks_fts_data", "chunks_fts_idx", "chunks_fts_docsize", "chunks_fts_config"),
    "chunks (text, offsets) + index": ("chunks", "chunks_document"),
    "documents + indexes": (
        "documents",
        "sqlite_autoindex_documents_1",
        "documents_corpus_source",
        "documents_source",
    ),
}


def short_texts(n: int) -> list[str]:
    by_lang = sentences()
    out: list[str] = []
    langs = sorted(by_lang)
    i = 0
    while len(out) < n:  # interleave the languages
        lang = langs[i % len(langs)]
        pos = i // len(langs)
        if pos < len(by_lang[lang]):
            out.append(by_lang[lang][pos])
        elif all(i // len(langs) >= len(v) for v in by_lang.values()):
            raise SystemExit(f"only {len(out)} sentences in ../shared/eval; ask for fewer --docs")
        i += 1
    return out


def embedder_for(name: str):
    if name == "hashing":
        from tests.fakes import HashingEmbedder

        return HashingEmbedder(512)
    return load_embedder(name)


def measure(path: Path, embedder) -> dict:
    """Bytes by part, by table group, and the free pages of meta.db."""
    with IndexDir.open_for_reading(path) as idx:
        tables = idx.meta.table_space()
        free = idx.meta.free_space()
        chunks = idx.meta.count("chunks")
    usage = compaction.space_usage(path, "faiss")
    with Index.open(path, model=embedder) as index:
        stats_size = index.stats()["size_bytes"]
    groups = {g: sum(t.bytes for t in tables if t.name in names) for g, names in GROUPS.items()}
    unused = {g: sum(t.unused for t in tables if t.name in names) for g, names in GROUPS.items()}
    known = {n for names in GROUPS.values() for n in names}
    groups["other tables, schema"] = sum(t.bytes for t in tables if t.name not in known)
    groups["free pages"] = free.free_bytes
    return {
        "chunks": chunks,
        "usage": usage.to_dict(),
        "stats_size_bytes": stats_size,
        "tables": groups,
        "unused_in_pages": unused,
        "free_pages": free.free,
        "page_size": free.page_size,
    }


def show(label: str, m: dict) -> None:
    u = m["usage"]
    print(
        f"\n{label}: {m['chunks']:,} chunks, {u['total'] / 1e6:.2f} MB on disk "
        f"(meta.db {u['meta_db'] / 1e6:.2f} MB, wal {u['wal'] / 1e6:.2f} MB, faiss {u['faiss'] / 1e6:.2f} MB; "
        f"indexer stats size_bytes: {m['stats_size_bytes']})"
    )
    total_db = sum(m["tables"].values())
    for group, size in m["tables"].items():
        per = f"{size / m['chunks']:8.0f} B/chunk" if m["chunks"] else ""
        slack = m["unused_in_pages"].get(group, 0)
        slack_text = f", {slack / size:.0%} of it unused in its pages" if size and slack else ""
        print(f"  {group:32} {size / 1e6:7.2f} MB {size / max(total_db, 1):6.1%} of meta.db {per}{slack_text}")
    faiss_bytes = u["faiss"]
    per = f"{faiss_bytes / m['chunks']:8.0f} B/chunk" if m["chunks"] else ""
    print(f"  {'FAISS files (faiss/)':32} {faiss_bytes / 1e6:7.2f} MB {'':17}{per}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--delete", type=float, default=0.8, help="share of the documents to delete")
    parser.add_argument("--model", default="use-multilingual", help="use-multilingual, or hashing (same bytes)")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} threads, flags {' '.join(cpu_flags())}")
    texts = short_texts(args.docs)
    chars = sum(len(t) for t in texts)
    print(f"{len(texts):,} sentences, {chars / len(texts):.0f} characters on average, model {args.model}")
    embedder = embedder_for(args.model)
    work = Path(tempfile.mkdtemp(prefix="babelindex-space-"))
    try:
        built_path = work / "built.idx"
        started = time.perf_counter()
        upsert_documents(built_path, [{"id": f"s{i:05d}", "text": t} for i, t in enumerate(texts)], model=embedder)
        build_seconds = time.perf_counter() - started
        built = measure(built_path, embedder)
        show(f"built ({build_seconds:.1f} s)", built)

        ids = [f"s{i:05d}" for i in range(len(texts))]
        doomed = sorted(random.Random(0).sample(ids, round(args.delete * len(ids))))
        manual, auto = work / "manual.idx", work / "auto.idx"
        shutil.copytree(built_path, manual)
        shutil.copytree(built_path, auto)
        saved = compaction.RECLAIM_MIN_FREE_BYTES
        compaction.RECLAIM_MIN_FREE_BYTES = 1 << 62  # as before automatic reclaim
        delete_documents(manual, doomed)
        compaction.RECLAIM_MIN_FREE_BYTES = saved
        without = measure(manual, embedder)
        show(f"deleted {len(doomed):,} documents, no automatic reclaim (as before)", without)
        started = time.perf_counter()
        delete_documents(auto, doomed)
        delete_seconds = time.perf_counter() - started
        with_auto = measure(auto, embedder)
        ran = "ran" if with_auto["free_pages"] == 0 else "not due"
        show(
            f"deleted {len(doomed):,} documents, automatic reclaim {ran} (the delete: {delete_seconds:.2f} s)",
            with_auto,
        )
        report = compact(auto)
        compacted = measure(auto, embedder)
        show(
            f"indexer compact ({report.seconds:.2f} s, removed {', '.join(report.faiss_removed) or 'nothing'})",
            compacted,
        )
        report_manual = compact(manual)
        ratio = compacted["usage"]["total"] / built["usage"]["total"]
        ratio_manual = report_manual.after.total / built["usage"]["total"]
        print(
            f"\ncompacted / built: {ratio:.1%} (target <= 30%); "
            f"compacting the copy without automatic reclaim: {ratio_manual:.1%} "
            f"({report_manual.reclaimed / 1e6:.1f} MB given back in {report_manual.seconds:.2f} s)"
        )
        print(
            json.dumps(
                {
                    "bench": "space",
                    "cpu": cpu_model(),
                    "docs": len(texts),
                    "deleted": len(doomed),
                    "model": args.model,
                    "built": built,
                    "deleted_without_reclaim": without,
                    "deleted_with_reclaim": with_auto,
                    "compacted": compacted,
                    "ratio": round(ratio, 4),
                    "ratio_without_reclaim": round(ratio_manual, 4),
                    "compact_seconds": report.seconds,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
