"""Approximate search on cross-lingual queries: the nprobe curves of `ivf` and `ivf-pq`.

Writes one BEIR task from ../shared/eval alone (the English and the other-language
sentences of the eight Tatoeba tasks as one corpus of 16,000; each other-language
sentence also a query whose relevant document is its English translation, its own copy
not counting, as BEIR's `ignore_identical_ids`), then runs `indexer eval --nprobe-curve`
on it with `--index-type ivf` and `ivf-pq` and the offline `use-multilingual` model, and
prints both curves (recall@10 and MRR@10 of ann against exact search, ms per query) with
the nprobe each index tuned: on the task's queries, as `indexer eval` does, and on stored
vectors alone, as `indexer build` does without `--tune-queries`.

    python bench/crosslingual.py [--task-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexer.embedding.precision import cpu_flags

from watch import cpu_model

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
LANGS = ("ara", "cmn", "deu", "fra", "ita", "jpn", "rus", "spa")


def write_task(folder: Path) -> None:
    """The cross-lingual task in BEIR layout under ``folder``."""
    corpus, queries, qrels = [], [], []
    for lang in LANGS:
        task = EVAL / f"tatoeba-{lang}"
        with open(task / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                corpus.append({"_id": f"{lang}:{record['_id']}", "title": "", "text": record["text"]})
        with open(task / "queries.jsonl", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                corpus.append({"_id": record["_id"], "title": "", "text": record["text"]})
                queries.append({"_id": record["_id"], "text": record["text"], "lang": lang})
        with open(task / "qrels" / "test.tsv", encoding="utf-8") as fh:
            for line in list(fh)[1:]:
                query, doc, score = line.split()
                qrels.append(f"{query}\t{lang}:{doc}\t{score}")
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus), "utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in queries), "utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels) + "\n", "utf-8")


def indexer(*args: str) -> str:
    command = [sys.executable, "-m", "indexer.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task-dir", type=Path, default=None, help="where to write the task (default: a temporary folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = args.task_dir or root / "tatoeba-crosslingual"
        write_task(task)
        print(f"CPU: {cpu_model()}, {os.cpu_count()} threads, flags {' '.join(cpu_flags())}")
        model = ["--model", "use-multilingual"]
        built = root / "ivf.idx"
        indexer(
            "build",
            str(task / "corpus.jsonl"),
            "--index",
            str(built),
            "--index-type",
            "ivf",
            "--text-field",
            "text",
            "--id-field",
            "_id",
            *model,
            "-q",
        )
        for kind in ("ivf", "ivf-pq"):
            index = root / f"{kind}.eval.idx"
            shutil.copytree(built, index)  # embedded once; eval re-publishes as `kind`, tuned on the task's queries
            report = json.loads(
                indexer(
                    "eval", str(task), "--index", str(index), "--index-type", kind, "--nprobe-curve", "--json", *model
                )
            )
            alone = root / f"{kind}.stored.idx"
            shutil.copytree(built, alone)
            indexer("reindex", "--index", str(alone), "--index-type", kind)
            stored = json.loads(indexer("stats", "--index", str(alone), "--json"))
            print(
                f"\n{kind}: {report['chunks']} chunks, {report['queries']} queries; nprobe tuned on the task's queries "
                f"{report['nprobe']}, on stored vectors {stored['nprobe']} (of {stored['nlist']} lists); "
                f"MRR@10 exact {report['exact']['mrr_at_10']:.4f}, ann {report['ann']['mrr_at_10']:.4f}"
            )
            print("   nprobe  recall@10  MRR@10 ann  MRR@10 exact  loss     ms/query p50")
            for point in report["curve"]:
                mark = "*" if point["default"] else ("s" if point["value"] == stored["nprobe"] else " ")
                loss = point["exact_mrr_at_10"] - point["mrr_at_10"]
                print(
                    f"   {point['value']:>5}{mark}  {point['recall_at_10']:9.3f}  {point['mrr_at_10']:10.4f}  "
                    f"{point['exact_mrr_at_10']:12.4f}  {loss:7.4f}  {point['latency_ms_p50']:12.3f}"
                )
        print("\n* tuned on the task's queries (indexer eval); s tuned on stored vectors (indexer build)")


if __name__ == "__main__":
    main()
