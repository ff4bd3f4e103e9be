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

Only queries with at least one relevant document in the qrels are evaluated. As BEIR's
``EvaluateRetrieval.evaluate(..., ignore_identical_ids=True)`` does, a retrieved document
whose id is the query's own id is left out of both rankings (the next one takes its place),
so that a task whose queries are also corpus documents does not find each query itself.
A corpus record's text is ``title + " " + text`` when its title is not empty (the BEIR
convention).

The index lives outside the task folder, which is only read, and holds exactly the task's
corpus. By default it is eval's cache, keyed by the corpus's content:
``$BABELINDEX_CACHE/eval/<task>-<model>/<first 16 hex digits of the corpus's sha256>``
(``~/.cache/babelindex`` without the variable); one corpus is kept per task name and model,
the others' indexes are removed once a build succeeds. An index given as ``index=`` that
holds documents the corpus does not hold is refused (eval never removes documents from an
index it is given). After the build the index's document count must be the corpus's record
count less the records the build skipped, or the evaluation fails.

``curve=True`` also measures the ``ann`` search at each setting of the index's knob
(:class:`CurvePoint`): nprobe 1, 2, 4, … up to nlist for IVF, efSearch
:data:`EF_SEARCH_VALUES` for HNSW; a flat index has nothing to tune.
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
CACHE_KEY_DIGITS = 16
"""Hex digits of the corpus's sha256 that name its index in eval's cache."""
EF_SEARCH_VALUES = (16, 32, 64, 128, 256, 512)
"""The efSearch values of an HNSW index's curve (with the index's own, if another)."""
CURVE_SAMPLE = 200
"""Queries timed one at a time per setting of a curve."""


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
    corpus_records: int
    """Records (lines) of ``corpus.jsonl``."""


@dataclass(frozen=True)
class CurvePoint:
    """The ``ann`` search at one setting of the index's speed/accuracy knob, beside exact search.

    ``parameter``: ``nprobe`` (IVF: inverted lists visited) or ``ef_search`` (HNSW: the
    candidate list's length); ``value`` its value; ``default``: whether it is the index's
    own (the nprobe tuned at build, the efSearch it was built with).
    ``recall_at_10``: the share of exact search's first 10 documents that ann's first 10
    hold, averaged over queries. ``mrr_at_10`` / ``exact_mrr_at_10``: MRR@10 of ann at this
    value and of exact search (the same on every row). ``latency_ms_p50``: the median time of
    one single-query search (10 chunks with their rows from SQLite, the query embedded
    beforehand, FAISS on one thread as ``indexer serve`` runs it) in milliseconds, over up
    to :data:`CURVE_SAMPLE` queries; ``queries_per_second``: the throughput of ranking every
    query in batches of :data:`QUERY_BATCH` (FAISS on all its threads).
    """

    parameter: str
    value: int
    default: bool
    recall_at_10: float
    mrr_at_10: float
    exact_mrr_at_10: float
    latency_ms_p50: float
    queries_per_second: float


@dataclass
class EvalReport:
    """What :func:`evaluate` measured; ``ann`` and ``exact`` as described in the module doc.

    ``ann`` / ``exact``: ``{"recall_at_1": float, "recall_at_10": float, "mrr_at_10":
    float, "ndcg_at_10": float, "per_language": {lang: {the same four, "queries": int}}}``.
    ``seconds`` is the wall-clock time of the whole evaluation, ``build_seconds`` the part
    spent building or checking the index. ``reused``: the index held the corpus already
    (nothing was embedded, updated or removed); ``documents``: what the index holds, which
    is ``corpus_records`` less the records skipped (``skipped`` says why). ``curve``: one
    :class:`CurvePoint` per setting when asked for (empty for a flat index), else None.
    """

    task: str
    model: str
    index_type: str
    nprobe: int | None
    queries: int
    documents: int
    corpus_records: int
    chunks: int
    ann: dict[str, Any]
    exact: dict[str, Any]
    index: str
    reused: bool
    corpus_sha256: str
    build_seconds: float = 0.0
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    curve: list[CurvePoint] | None = None

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
    with open(files[0], "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    titled, records = False, 0
    for _line, record in _corpus(files[0]):
        titled = titled or bool(record.get("title"))
        records += 1
    if not records:
        raise InvalidInput(f"{files[0]} holds no document; nothing to evaluate.")
    return Task(folder.resolve().name, folder, queries, qrels, titled, digest.hexdigest(), records)


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


def _corpus(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of ``corpus.jsonl``, each a JSON object (else InvalidInput naming its line)."""
    for number, record in _jsonl(path):
        if not isinstance(record, dict):
            raise InvalidInput(f'{path}:{number}: a corpus record is a JSON object with "_id" and "text".')
        yield number, record


def corpus_ids(task: Task) -> set[str]:
    """The document ids the corpus's records give (as the build reads them)."""
    from indexer.cleaning import clean_text

    ids = (record.get("_id") for _, record in _corpus(task.folder / "corpus.jsonl"))
    return {clean_text(str(i))[0] for i in ids if i is not None and i != ""}


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


def default_index_path(task_dir: str | Path, model_name: str, corpus_sha256: str | None = None) -> Path:
    """``<cache>/eval/<task>-<model>/<key>``, ``key`` the first :data:`CACHE_KEY_DIGITS` hex
    digits of the sha256 of the task's ``corpus.jsonl`` (``corpus_sha256`` if known, else
    computed), so that two tasks named alike never share an index. A model given as a path
    is named by its last part and a short hash of the whole path (so two local models never
    share an index)."""
    task = Path(task_dir).resolve().name
    if "/" in model_name and (model_name.startswith((".", "/", "~")) or Path(model_name).exists()):
        full = str(Path(model_name).expanduser().resolve())
        slug = f"{Path(full).name}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"
    else:
        slug = model_name.replace("/", "--")
    if corpus_sha256 is None:
        digest = hashlib.sha256()
        with open(Path(task_dir) / "corpus.jsonl", "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        corpus_sha256 = digest.hexdigest()
    return cache_root() / "eval" / re.sub(r"[^\w.-]+", "_", f"{task}-{slug}") / corpus_sha256[:CACHE_KEY_DIGITS]


def _prune_cache(kept: Path) -> None:
    """Remove what eval's cache holds for the same task name and model besides ``kept``: the
    indexes of other corpora (and an index of the layout before the cache was keyed by
    content, whose files lie in the same folder). An index another process is writing stays."""
    from store.errors import IndexLocked
    from store.lock import WriterLock

    for other in kept.parent.iterdir():
        if other == kept:
            continue
        if not other.is_dir() or other.is_symlink():
            other.unlink(missing_ok=True)
            continue
        try:
            with WriterLock(other):
                shutil.rmtree(other, ignore_errors=True)
        except IndexLocked:
            continue


def _refuse_foreign_documents(path: Path, task: Task) -> None:
    """InvalidInput if the index at ``path`` holds a document the task's corpus does not."""
    from store import IndexDir
    from store.errors import IndexNotFound

    try:
        store = IndexDir.open_for_reading(path)
    except IndexNotFound:
        return  # a new index (or not an index at all: the build says so)
    with store:
        held = set(store.meta.document_states())
    foreign = sorted(held - corpus_ids(task))
    if foreign:
        shown = ", ".join(map(repr, foreign[:3])) + (", …" if len(foreign) > 3 else "")
        raise InvalidInput(
            f"the index {path} holds {len(foreign):,} documents that {task.folder / 'corpus.jsonl'} does not "
            f"({shown}): it was built from another corpus, or another version of this one, and the figures "
            "would count them. Pass a new --index (eval never removes documents from an index it is given), "
            "or leave --index out to use eval's cache, which keeps one index per corpus content."
        )


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
    curve: bool = False,
    progress: Any = None,
) -> EvalReport:
    """Build (or update) an index of a BEIR task's corpus and measure retrieval on its queries.

    Args:
        task_dir: the task folder (read only; nothing is written inside it).
        model: a model name, a local directory or a loaded ``Embedder``; default
            ``distilbert-base-multilingual-cased``.
        index_type: as for ``indexer build`` (``auto``, ``flat``, ``ivf``, …).
        index: the index directory; default :func:`default_index_path` (eval's cache).
        nprobe: IVF lists to visit for the ``ann`` search (default: the index's tuned value).
        curve: also measure ``ann`` at every nprobe (IVF) or efSearch (HNSW): ``report.curve``.
        progress: build progress callbacks (see ``indexer.build.Progress``).
    Raises:
        InvalidInput: a malformed task, an ``index`` inside the task folder, an ``index``
            holding documents the corpus does not, or an index whose document count is not
            the corpus's after the build.
        ModelMismatch: ``index`` was built with another model.
    """
    from indexer.build import BuildReport, build_index
    from indexer.embedding import DEFAULT_MODEL, load_embedder

    started = time.perf_counter()
    require_index_type(index_type)  # an unknown type fails before anything is built
    task = load_task(task_dir)
    embedder = load_embedder(model or DEFAULT_MODEL) if model is None or isinstance(model, str) else model
    default = index is None
    path = Path(index) if index is not None else default_index_path(task.folder, embedder.name, task.corpus_sha256)
    if _inside(path, task.folder):
        raise InvalidInput(
            f"the index {path} would be inside the task folder {task.folder}, which eval only reads; "
            "choose an --index elsewhere (or set BABELINDEX_CACHE)."
        )
    if not default:
        _refuse_foreign_documents(path, task)
    corpus = _prepared_corpus(task)

    def build() -> BuildReport:
        # An IVF index tunes nprobe on the task's own queries (as `indexer build --tune-queries`).
        return build_index(
            corpus,
            path,
            model=embedder,
            index_type=index_type,
            text_field="text",
            id_field="_id",
            progress=progress,
            tune_queries=[text for _, text, _ in task.queries],
        )

    try:
        report = build()
    except ModelMismatch:
        if not default:
            raise
        shutil.rmtree(path)  # our own cache, from another version of the model: start again
        report = build()
    if default:
        _prune_cache(path)
    reused = not (
        report.chunks_embedded or report.documents_added or report.documents_updated or report.documents_removed
    )
    build_seconds = time.perf_counter() - started

    from search.index import Index
    from store import IndexDir

    qids = [qid for qid, _, _ in task.queries]
    langs = [lang for _, _, lang in task.queries]

    def per_query(rankings: list[list[str]]) -> list[dict[str, float]]:
        return [query_metrics(r, task.qrels[qid]) for r, qid in zip(rankings, qids, strict=True)]

    with Index.open(path, model=embedder) as ix, IndexDir.open_for_reading(path) as store:
        stats = ix.stats()
        expected = task.corpus_records - report.documents_skipped
        if stats["documents"] != expected:
            raise InvalidInput(
                f"the index {path} holds {stats['documents']:,} documents, but the corpus gives {expected:,} "
                f"({task.corpus_records:,} records, {report.documents_skipped:,} skipped): the figures would not "
                f"measure {task.folder / 'corpus.jsonl'} alone. "
                + ("Pass a new --index." if not default else f"Delete {path} (eval's cache) and run again.")
            )
        total = len(ix)
        vectors = _embed_queries(embedder, [text for _, text, _ in task.queries])

        ann = _rank(
            lambda v, n: [[h.doc_id for h in hits] for hits in ix.search_vectors(v, k=n, nprobe=nprobe)],
            vectors,
            total,
            qids,
        )
        exact = _rank(lambda v, n: _exact_doc_ids(store, ix.dimension, v, n), vectors, total, qids)
        points = _curve(ix, stats, vectors, exact, per_query, qids) if curve else None

    return EvalReport(
        task=task.name,
        model=embedder.name,
        index_type=stats["index_type"],
        nprobe=nprobe or stats["nprobe"],
        queries=len(task.queries),
        documents=stats["documents"],
        corpus_records=task.corpus_records,
        chunks=stats["chunks"],
        ann=summarize(per_query(ann), langs),
        exact=summarize(per_query(exact), langs),
        index=str(path),
        reused=reused,
        corpus_sha256=task.corpus_sha256,
        build_seconds=round(build_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        skipped=report.skipped,
        curve=points,
    )


def _curve(
    ix: Any,
    stats: Mapping[str, Any],
    vectors: np.ndarray,
    exact: list[list[str]],
    per_query: Callable[[list[list[str]]], list[dict[str, float]]],
    qids: Sequence[str],
) -> list[CurvePoint]:
    """One :class:`CurvePoint` per value of the index's knob (none for a flat index).

    ``ix``: the open ``search.Index``; ``vectors``: the queries' float32 ``(q, d)``;
    ``exact``: exact search's ranking of each query; ``per_query``: a ranking's metrics.
    """
    knob = _knob(stats)
    if knob is None:
        return []
    parameter, values, own = knob
    exact_mrr = _mean(per_query(exact))["mrr_at_10"]
    points = []
    for value in values:
        setting = {parameter: value}

        def search(v: np.ndarray, n: int, setting: dict[str, int] = setting) -> list[list[str]]:
            return [[h.doc_id for h in hits] for hits in ix.search_vectors(v, k=n, **setting)]

        at = time.perf_counter()
        ranked = _rank(search, vectors, len(ix), qids)
        rate = len(vectors) / max(time.perf_counter() - at, 1e-9)
        points.append(
            CurvePoint(
                parameter=parameter,
                value=value,
                default=value == own,
                recall_at_10=_overlap(ranked, exact),
                mrr_at_10=_mean(per_query(ranked))["mrr_at_10"],
                exact_mrr_at_10=exact_mrr,
                latency_ms_p50=_latency_ms(lambda v: search(v, K), vectors),
                queries_per_second=round(rate, 1),
            )
        )
    return points


def _knob(stats: Mapping[str, Any]) -> tuple[str, list[int], int] | None:
    """``(parameter, values, the index's own value)`` of the index's speed/accuracy knob;
    None for a flat index (exact search: nothing to tune)."""
    from store.faiss_index import HNSW_EF_SEARCH
    from store.index_types import IVF_KINDS

    if stats["index_kind"] in IVF_KINDS:
        nlist, own = int(stats["nlist"]), int(stats["nprobe"])
        values = [1 << i for i in range(nlist.bit_length()) if 1 << i < nlist] + [nlist]
        return "nprobe", sorted({*values, own}), own
    if stats["index_kind"] == "hnsw":
        return "ef_search", sorted({*EF_SEARCH_VALUES, HNSW_EF_SEARCH}), HNSW_EF_SEARCH
    return None


def _overlap(ranked: Sequence[Sequence[str]], exact: Sequence[Sequence[str]]) -> float:
    """The share of each exact top-:data:`K` that ``ranked`` holds in its top-K, averaged over
    the queries exact search found something for."""
    shares = [len(set(r[:K]) & set(e[:K])) / len(e[:K]) for r, e in zip(ranked, exact, strict=True) if e]
    return round(sum(shares) / len(shares), 6) if shares else 0.0


def _latency_ms(search: Callable[[np.ndarray], object], vectors: np.ndarray) -> float:
    """The median wall-clock milliseconds of ``search`` on one query vector ``(1, d)``, over
    the first :data:`CURVE_SAMPLE` embeddable queries (after one search not timed), with
    FAISS on one thread as ``indexer serve`` runs it (a single query gains nothing from more,
    and waiting for a busy core's thread would be timed instead of the search)."""
    import faiss

    sample = vectors[np.isfinite(vectors).all(axis=1)][:CURVE_SAMPLE]
    if not len(sample):
        return 0.0
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        search(sample[:1])
        times = []
        for row in range(len(sample)):
            at = time.perf_counter()
            search(sample[row : row + 1])
            times.append(time.perf_counter() - at)
    finally:
        faiss.omp_set_num_threads(threads)
    return round(float(np.median(times)) * 1000, 3)


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


def _rank(
    search: Callable[[np.ndarray, int], list[list[str]]],
    vectors: np.ndarray,
    total: int,
    query_ids: Sequence[str] | None = None,
) -> list[list[str]]:
    """The first :data:`K` distinct documents per query, ranked by their best chunk.

    ``search(vectors, n)`` returns the document ids of the top-``n`` chunks per query. A
    document whose id is the query's (``query_ids``, one per row of ``vectors``) is left
    out, as BEIR's ``ignore_identical_ids`` does. A query whose top chunks hold fewer than K
    other documents is searched again with 4× as many, until it has K or every chunk has
    been seen.
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
                own = None if query_ids is None else query_ids[i]
                out[i] = [d for d in dict.fromkeys(docs) if d != own][:K]
                if len(out[i]) < K and len(docs) == n < total:
                    again.append(i)
            todo, fetch = again, fetch * 4
    return out
