"""Retrieval quality on BEIR-format tasks, approximate (the index) next to exact search.

A task is a folder in the BEIR layout:

* ``corpus.jsonl``: ``{"_id", "title", "text", ...}`` per line, the documents;
* ``queries.jsonl``: ``{"_id", "text", "lang"?}`` per line;
* ``qrels/test.tsv``: ``query-id<TAB>corpus-id<TAB>score`` after a header line; a score
  above 0 marks a relevant document (its value is the graded relevance for nDCG).

:func:`evaluate` builds an index of the corpus with the chosen model (or updates one built
before: documents already indexed with the same model and content are not embedded again),
embeds every query once, and ranks documents two ways over the same stored vectors: with the
index's FAISS search (``ann``) and with exact brute-force inner product over the vectors in
SQLite (``exact``), so any loss from an approximate index shows. A document ranks by its
best chunk. Metrics, overall and per query language (the queries' ``lang`` field):

* ``recall_at_1``, ``recall_at_10``: the fraction of a query's relevant documents in the
  first 1 or 10, averaged over queries (with one relevant document per query, recall@1 is
  accuracy@1);
* ``mrr_at_10``: the mean of 1/rank of the first relevant document within the first 10
  (0 when none is);
* ``ndcg_at_10``: normalised discounted cumulative gain at 10 with linear gains (the
  qrels score) and log2(rank + 1) discounts, as trec_eval and BEIR compute it.

Only queries with at least one relevant document in the qrels are evaluated. A corpus
record's text is ``title + " " + text`` when its title is not empty (the BEIR convention).
The index lives outside the task folder, which is only read: ``index=`` or, by default,
``$BABELINDEX_CACHE/eval/<task>-<model>`` (``~/.cache/babelindex`` without the variable).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.jsonl import read_jsonl
from store.atomic import atomic_write
from store.errors import InvalidInput, ModelMismatch
from store.index_types import require_index_type

K = 10
"""Documents ranked per query: the metrics are @1 and @10."""
QUERY_BATCH = 256
"""Queries embedded and searched together."""
METRICS = ("recall_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10")


@dataclass(frozen=True)
class Task:
    """A BEIR task as read from its folder.

    ``queries``: ``(query id, text, lang or None)`` of each query that has a relevant
    document, in file order; ``qrels``: ``{query id: {document id: relevance > 0}}``.
    """

    name: str
    folder: Path
    queries: list[tuple[str, str, str | None]]
    qrels: dict[str, dict[str, int]]
    titled: bool
    """Whether some corpus record has a non-empty title (then texts are joined)."""
    corpus_sha256: str


@dataclass
class EvalReport:
    """What :func:`evaluate` measured; ``ann`` and ``exact`` as described in the module doc.

    ``ann`` / ``exact``: ``{"recall_at_1": float, "recall_at_10": float, "mrr_at_10":
    float, "ndcg_at_10": float, "per_language": {lang: {the same four, "queries": int}}}``.
    ``seconds`` is the wall-clock time of the whole evaluation, ``build_seconds`` the part
    spent building or checking the index.
    """

    task: str
    model: str
    index_type: str
    nprobe: int | None
    queries: int
    documents: int
    chunks: int
    ann: dict[str, Any]
    exact: dict[str, Any]
    index: str
    reused: bool
    corpus_sha256: str
    build_seconds: float = 0.0
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading a task -------------------------------------------------------------------------
def load_task(task_dir: str | Path) -> Task:
    """Read ``queries.jsonl`` and ``qrels/test.tsv`` and fingerprint ``corpus.jsonl``.

    Raises ``InvalidInput`` naming the file and line of anything malformed.
    """
    folder = Path(task_dir)
    files = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / "test.tsv"]
    missing = [str(p.relative_to(folder)) for p in files if not p.is_file()]
    if not folder.is_dir() or missing:
        what = "is not a folder" if not folder.is_dir() else f"lacks {', '.join(missing)}"
        raise InvalidInput(f"{folder} {what}: a BEIR task folder holds corpus.jsonl, queries.jsonl and qrels/test.tsv.")
    qrels = _read_qrels(files[2])
    queries = []
    for line, record in _jsonl(files[1]):
        qid, text = record.get("_id"), record.get("text")
        if qid is None or not isinstance(text, str):
            raise InvalidInput(f'{files[1]}:{line}: a query needs "_id" and a "text" string.')
        if str(qid) in qrels:
            queries.append((str(qid), text, record.get("lang") or None))
    if not queries:
        raise InvalidInput(f"no query of {files[1]} has a relevant document in {files[2]}; nothing to evaluate.")
    digest = hashlib.sha256()
    titled = False
    with open(files[0], "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    for _line, record in _jsonl(files[0]):
        if record.get("title"):
            titled = True
            break
    return Task(folder.resolve().name, folder, queries, qrels, titled, digest.hexdigest())


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(parts) == 4:  # TREC style: query-id, iteration, corpus-id, score
                parts = [parts[0], parts[2], parts[3]]
            try:
                qid, doc_id, score = parts[0], parts[1], int(float(parts[2]))
            except (IndexError, ValueError):
                if number == 1:
                    continue  # the header line
                raise InvalidInput(
                    f"{path}:{number}: expected query-id<TAB>corpus-id<TAB>score, got {line.strip()!r}."
                ) from None
            if score > 0:
                qrels[qid][doc_id] = score
    return dict(qrels)


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a task file; InvalidInput naming the first bad line."""
    for line in read_jsonl(path):
        if line.record is None:
            raise InvalidInput(f"{path}:{line.number}: {line.problem}.")
        yield line.number, line.record


# -- metrics --------------------------------------------------------------------------------
def query_metrics(ranked: Sequence[str], relevant: Mapping[str, int]) -> dict[str, float]:
    """recall@1, recall@10, MRR@10 and nDCG@10 of one ranking (document ids, best first).

    ``relevant``: ``{document id: graded relevance > 0}``, not empty.
    """
    top = list(ranked[:K])
    found = [d for d in top if d in relevant]
    rank = next((i for i, d in enumerate(top, start=1) if d in relevant), None)
    dcg = sum(relevant.get(d, 0) / math.log2(i + 1) for i, d in enumerate(top, start=1))
    ideal = sorted(relevant.values(), reverse=True)[:K]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return {
        "recall_at_1": len(set(top[:1]) & relevant.keys()) / len(relevant),
        "recall_at_10": len(set(found)) / len(relevant),
        "mrr_at_10": 1.0 / rank if rank else 0.0,
        "ndcg_at_10": dcg / idcg,
    }


def summarize(per_query: Sequence[dict[str, float]], langs: Sequence[str | None]) -> dict[str, Any]:
    """Mean metrics over queries, and per language (only if some query has a language)."""
    out: dict[str, Any] = _mean(per_query)
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for metrics, lang in zip(per_query, langs, strict=True):
        groups[lang or "unknown"].append(metrics)
    out["per_language"] = (
        {}
        if set(groups) == {"unknown"}
        else {lang: {**_mean(group), "queries": len(group)} for lang, group in sorted(groups.items())}
    )
    return out


def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {m: round(sum(r[m] for r in rows) / len(rows), 6) for m in METRICS}


# -- where the index lives ------------------------------------------------------------------
def cache_root() -> Path:
    """babelindex's cache folder (see :func:`indexer.embedding.precision.cache_dir`)."""
    from indexer.embedding.precision import cache_dir

    return cache_dir()


def default_index_path(task_dir: str | Path, model_name: str) -> Path:
    """``<cache>/eval/<task>-<model>``; a model given as a path is named by its last part
    and a short hash of the whole path (so two local models never share an index)."""
    task = Path(task_dir).resolve().name
    if "/" in model_name and (model_name.startswith((".", "/", "~")) or Path(model_name).exists()):
        full = str(Path(model_name).expanduser().resolve())
        slug = f"{Path(full).name}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"
    else:
        slug = model_name.replace("/", "--")
    return cache_root() / "eval" / re.sub(r"[^\w.-]+", "_", f"{task}-{slug}")


def _prepared_corpus(task: Task) -> Path:
    """The corpus file to build from: the task's own, or (titles present) a copy in the
    cache with ``title + " " + text`` as text, rewritten only when it changes."""
    source = task.folder / "corpus.jsonl"
    if not task.titled:
        return source
    where = hashlib.sha256(str(task.folder.resolve()).encode()).hexdigest()[:8]
    target = cache_root() / "eval" / "corpora" / f"{task.name}-{where}" / "corpus.jsonl"
    lines = []
    for _line, record in _jsonl(source):
        title, text = record.get("title") or "", record.get("text") or ""
        record["text"] = f"{title} {text}" if title and text else title or text
        lines.append(json.dumps(record, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode()
    if not target.is_file() or target.read_bytes() != data:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
    return target


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


# -- the evaluation -------------------------------------------------------------------------
def evaluate(
    task_dir: str | Path,
    *,
    model: Any = None,
    index_type: str = "auto",
    index: str | Path | None = None,
    nprobe: int | None = None,
    progress: Any = None,
) -> EvalReport:
    """Build (or update) an index of a BEIR task's corpus and measure retrieval on its queries.

    Args:
        task_dir: the task folder (read only; nothing is written inside it).
        model: a model name, a local directory or a loaded ``Embedder``; default
            ``distilbert-base-multilingual-cased``.
        index_type: as for ``indexer build`` (``auto``, ``flat``, ``ivf``, …).
        index: the index directory; default :func:`default_index_path`.
        nprobe: IVF lists to visit for the ``ann`` search (default: the index's tuned value).
        progress: build progress callbacks (see ``indexer.build.Progress``).
    Raises:
        InvalidInput: a malformed task, or an ``index`` inside the task folder.
        ModelMismatch: ``index`` was built with another model.
    """
    from indexer.build import BuildReport, build_index
    from indexer.embedding import DEFAULT_MODEL, load_embedder

    started = time.perf_counter()
    require_index_type(index_type)  # an unknown type fails before anything is built
    task = load_task(task_dir)
    embedder = load_embedder(model or DEFAULT_MODEL) if model is None or isinstance(model, str) else model
    default = index is None
    path = Path(index) if index is not None else default_index_path(task.folder, embedder.name)
    if _inside(path, task.folder):
        raise InvalidInput(
            f"the index {path} would be inside the task folder {task.folder}, which eval only reads; "
            "choose an --index elsewhere (or set BABELINDEX_CACHE)."
        )
    corpus = _prepared_corpus(task)

    def build() -> BuildReport:
        return build_index(
            corpus, path, model=embedder, index_type=index_type, text_field="text", id_field="_id", progress=progress
        )

    try:
        report = build()
    except ModelMismatch:
        if not default:
            raise
        shutil.rmtree(path)  # our own cache, from another version of the model: start again
        report = build()
    reused = not (
        report.chunks_embedded or report.documents_added or report.documents_updated or report.documents_removed
    )
    build_seconds = time.perf_counter() - started

    from search.index import Index
    from store import IndexDir

    with Index.open(path, model=embedder) as ix, IndexDir.open_for_reading(path) as store:
        stats = ix.stats()
        total = len(ix)
        vectors = _embed_queries(embedder, [text for _, text, _ in task.queries])
        ann = _rank(
            lambda v, n: [[h.doc_id for h in hits] for hits in ix.search_vectors(v, k=n, nprobe=nprobe)], vectors, total
        )
        exact = _rank(lambda v, n: _exact_doc_ids(store, ix.dimension, v, n), vectors, total)

    langs = [lang for _, _, lang in task.queries]

    def scores(rankings: list[list[str]]) -> dict[str, Any]:
        return summarize(
            [query_metrics(r, task.qrels[qid]) for r, (qid, _, _) in zip(rankings, task.queries, strict=True)], langs
        )

    return EvalReport(
        task=task.name,
        model=embedder.name,
        index_type=stats["index_type"],
        nprobe=nprobe or stats["nprobe"],
        queries=len(task.queries),
        documents=stats["documents"],
        chunks=stats["chunks"],
        ann=scores(ann),
        exact=scores(exact),
        index=str(path),
        reused=reused,
        corpus_sha256=task.corpus_sha256,
        build_seconds=round(build_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        skipped=report.skipped,
    )


def _embed_queries(embedder: Any, texts: list[str]) -> np.ndarray:
    """float32 ``(len(texts), dimension)``; a query the model cannot embed is all NaN."""
    parts = [embedder.embed_queries(texts[lo : lo + QUERY_BATCH]) for lo in range(0, len(texts), QUERY_BATCH)]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _exact_doc_ids(store: Any, dimension: int, queries: np.ndarray, n: int) -> list[list[str]]:
    """Document ids of the exact top-``n`` chunks by inner product over the vectors in SQLite."""
    from store.faiss_index import exact_search

    ids = exact_search(lambda: store.meta.iter_vectors(dimension), queries, n)
    rows = store.meta.hits(np.unique(ids[ids >= 0]))
    return [[rows[int(i)].doc_id for i in row if i >= 0] for row in ids]


def _rank(search: Callable[[np.ndarray, int], list[list[str]]], vectors: np.ndarray, total: int) -> list[list[str]]:
    """The first :data:`K` distinct documents per query, ranked by their best chunk.

    ``search(vectors, n)`` returns the document ids of the top-``n`` chunks per query. A
    query whose top chunks hold fewer than K documents is searched again with 4× as many,
    until it has K or every chunk has been seen.
    """
    out: list[list[str]] = [[] for _ in range(len(vectors))]
    valid = np.isfinite(vectors).all(axis=1)
    for lo in range(0, len(vectors), QUERY_BATCH):
        todo = [i for i in range(lo, min(lo + QUERY_BATCH, len(vectors))) if valid[i]]
        fetch = K
        while todo and total:
            n = min(fetch, total)
            again = []
            for i, docs in zip(todo, search(vectors[todo], n), strict=True):
                out[i] = list(dict.fromkeys(docs))[:K]
                if len(out[i]) < K and len(docs) == n < total:
                    again.append(i)
            todo, fetch = again, fetch * 4
    return out
