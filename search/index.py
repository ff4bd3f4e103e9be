"""``Index``: open an index directory and search it."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from search.choices import GROUP_BY, MODES
from search.explain import Explainer
from search.filters import INT64_MAX, INT64_MIN, build_filter, check_text
from search.fusion import rrf
from search.hit import Hit
from store import faiss_index
from store.errors import DimensionMismatch, IndexNotReady, InvalidInput, ModelNotAvailable, NprobeIgnored
from store.filtering import Filter
from store.index_dir import IndexDir
from store.index_types import IVF_KINDS
from store.records import DocumentPage, ModelRecord
from store.worker_status import read_worker_status

if TYPE_CHECKING:
    from indexer.embedding import Embedder
    from indexer.writer import BuildReport

MAX_K = 10_000
MAX_QUERY_CHARS = 100_000
"""Characters of one query text (the HTTP server has its own, smaller limit)."""
BUDGET_SECONDS = 2.0
"""The most time a search may spend in the database on a filter or a lexical query; more is
refused with :class:`InvalidInput` (:meth:`store.database.MetaStore.budget`)."""
HYBRID_DEPTH = 4
"""Hybrid search fuses this many times ``k`` candidates from each ranking."""
EXACT_MAX = 2_000
EXACT_FRACTION = 0.05
"""Filters allowing fewer than EXACT_MAX chunks or this fraction of the index are searched
exactly (inner products over the stored vectors) rather than through FAISS."""


MAX_PAGE = 10_000
"""Documents one :meth:`Index.documents` call returns at most."""


class Index:
    """A read-only view of an index directory, serving its last published FAISS version.

    Open with :meth:`Index.open`. The embedding model is loaded on the first search (so
    ``Index.open`` is cheap and does not import torch). Safe to share between threads;
    search parameters are per call. Call :meth:`refresh` to pick up a newer version
    published by a writer since this one was loaded.
    """

    def __init__(
        self,
        store: IndexDir,
        model: Embedder | None = None,
        precision: str | None = None,
        *,
        mmap: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ):
        self._store = store
        self.budget_seconds = BUDGET_SECONDS
        """See :data:`BUDGET_SECONDS`; set per view."""
        self._explainer = Explainer(store)
        self._precision = precision
        self._prompts = (query_prompt, document_prompt)
        self._mmap = mmap
        self._model_lock = threading.Lock()  # one thread loads the model
        self._refresh_lock = threading.Lock()  # one refresh at a time
        record = store.model_record()
        faiss, info = store.load_faiss(mmap=mmap)
        if record is None or faiss is None or info is None:
            raise IndexNotReady(f"{store.path} has no published index yet; run `indexer build` to finish it.")
        self._model_record = record
        self._embedder = model
        # The loaded version, replaced as one tuple by refresh(): a search reads it once.
        self._loaded = (faiss, info)
        if model is not None:
            self._check_model(model)

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        model: str | Embedder | None = None,
        precision: str | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        index_type: str | None = None,
        exist_ok: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ) -> Index:
        """Make a new, empty index at ``path`` and open it: fill it with :meth:`upsert`.

        ``model``: a name from ``indexer models``, a Hub id, a local directory or a loaded
        ``Embedder`` (default ``distilmbert``); ``chunk_tokens`` / ``overlap_tokens`` /
        ``index_type`` as for ``indexer build`` (defaults 256 / 32 / ``auto``).
        ``query_prompt`` / ``document_prompt``: the text put before each query / document
        chunk instead of the model's own prompts (``""``: none; default: the model's, e.g.
        ``query: `` / ``passage: `` for multilingual-e5); they are recorded in the index. An
        existing index raises ``InvalidInput`` unless ``exist_ok``, which opens it instead (and
        raises ``ModelMismatch`` if it was built with another ``model`` or other prompts).
        """
        from indexer.update import create_index

        embedder = create_index(
            path,
            model=model,
            precision=precision,
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
            index_type=index_type,
            exist_ok=exist_ok,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
        )
        return cls.open(path, model=embedder, precision=precision)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: str | Embedder | None = None,
        precision: str | None = None,
        mmap: bool = False,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ) -> Index:
        """Open the index at ``path``.

        ``model`` is optional: a model name or path, or a loaded ``Embedder``; by default
        the model the index was built with. A different model raises ``ModelMismatch``.
        ``precision`` (``auto``, ``fp32``, ``bf16``, ``int8``; default ``$BABELINDEX_PRECISION``,
        else ``auto``) applies when the model is loaded here. ``query_prompt`` /
        ``document_prompt`` default to the prompts the index records; others raise
        ``ModelMismatch`` (``""`` for both opens an index built, before babelindex applied
        prompts, with a model that has them).

        ``mmap=True`` maps the FAISS file read-only instead of reading it into memory, so an
        index larger than RAM can be searched (pages come from disk on demand, cached by the
        kernel): for IVF kinds the inverted lists, for flat and HNSW the stored vectors. The
        file's sha256 is still verified first, by one sequential read in constant memory
        (about 1 s per GB when it is not in the page cache; see the README). Results are the
        same as with the index in memory. Later :meth:`refresh` calls map the new version too.
        """
        from indexer.embedding.precision import requested

        precision = requested(precision)
        store = IndexDir.open_for_reading(path)
        try:
            record = store.model_record()
            if record is not None and not record.imported:
                from indexer.embedding import require_recorded_prompts

                require_recorded_prompts(record, query_prompt, document_prompt, path)
            if model is not None:
                from indexer.embedding import prompts_for, to_embedder

                prompts = prompts_for(store.model_record(), model, query_prompt, document_prompt)
                model = to_embedder(model, precision=precision, **prompts)
            return cls(store, model, precision, mmap=mmap, query_prompt=query_prompt, document_prompt=document_prompt)
        except BaseException:
            store.close()
            raise

    # -- properties -------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def model_name(self) -> str:
        """The name of the model the index was built with."""
        return self._model_record.name

    @property
    def model_record(self) -> ModelRecord:
        """The model the index records (name, dimension, fingerprint, probe embedding)."""
        return self._model_record

    @property
    def dimension(self) -> int:
        return self._model_record.dimension

    def __len__(self) -> int:
        """Chunks in the loaded FAISS version."""
        return int(self._loaded[0].ntotal)

    # -- search -----------------------------------------------------------------------------
    @overload
    def search(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: str matches first
        self,
        query: str,
        k: int = 10,
        nprobe: int | None = None,
        *,
        lang: str | Sequence[str] | None = None,
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
        mode: str = "dense",
        group_by: str | None = None,
        query_vectors: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> list[Hit]: ...
    @overload
    def search(
        self,
        query: Sequence[str],
        k: int = 10,
        nprobe: int | None = None,
        *,
        lang: str | Sequence[str] | None = None,
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
        mode: str = "dense",
        group_by: str | None = None,
        query_vectors: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]: ...

    def search(
        self,
        query: str | Sequence[str],
        k: int = 10,
        nprobe: int | None = None,
        *,
        lang: str | Sequence[str] | None = None,
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
        mode: str = "dense",
        group_by: str | None = None,
        query_vectors: np.ndarray | None = None,
        min_score: float | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """The ``k`` chunks that best match ``query``, best first.

        ``query`` is a string (returns ``list[Hit]``) or a list of strings (returns one
        list per query). ``nprobe`` (IVF indexes only) overrides the recorded default for
        this call: higher is more exact and slower.

        Filters (applied inside the search, so ``k`` hits come back whenever ``k`` matching
        chunks exist): ``lang`` a language code or a list of them; ``source`` a glob
        (``docs/*.md``) or a prefix (``docs/``) of the source path; ``where`` conditions on
        the document metadata, e.g. ``{"year": {">=": 2020}, "tag": {"in": ["a", "b"]}}``
        (see :mod:`search.filters`). Languages may be named by any ISO 639 code or by name
        (``"deu"``, ``"German"``: :mod:`search.languages`). A filter that cannot be read, or that
        names a language, source or metadata key the index does not hold, raises
        :class:`~store.errors.InvalidFilter` saying what it holds (:mod:`search.explain`).

        ``mode``: ``dense`` (cosine of embeddings), ``lexical`` (full text, whole tokens; the
        syntax of ``"phrases"``, ``OR``, ``+term``, ``-term`` and ``E-2*`` is
        :mod:`store.lexical_query`'s) or ``hybrid`` (both fused by reciprocal rank fusion); see
        :class:`Hit` for the scores. Bad lexical syntax raises :class:`InvalidInput`.
        ``group_by="document"`` returns the best chunk of each of ``k`` documents.

        ``query_vectors``: the queries' embeddings if already computed with :meth:`embed`
        (float32 ``(q, dimension)``, one row per query), so that they are not embedded again.

        ``min_score``: leave out hits scoring below it (a threshold in the mode's own score:
        cosine for ``dense``; see :class:`Hit`), so fewer than ``k`` may come back.

        ``nprobe`` on an index that is not IVF (flat, HNSW) changes nothing: a
        :class:`NprobeIgnored` warning says so.
        """
        single = isinstance(query, str)
        queries: list[str] = [query] if isinstance(query, str) else list(query)
        if not all(isinstance(q, str) and q.strip() for q in queries):
            raise InvalidInput("every query must be a non-empty string.")
        for q in queries:
            check_text(q, "a query", MAX_QUERY_CHARS)
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be an integer from 1 to {MAX_K}, not {k!r}.")
        if nprobe is not None and (not isinstance(nprobe, int) or nprobe < 1):
            raise InvalidInput(f"nprobe must be a positive integer, not {nprobe!r}.")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
        if group_by is not None and group_by not in GROUP_BY:
            choices = " or ".join(map(repr, GROUP_BY))
            raise InvalidInput(f"group_by must be None or {choices}, not {group_by!r}.")
        if min_score is not None and (
            isinstance(min_score, bool) or not isinstance(min_score, int | float) or not math.isfinite(min_score)
        ):
            raise InvalidInput(f"min_score must be a finite number, not {min_score!r}.")
        if nprobe is not None and not self.uses_nprobe:
            warnings.warn(
                f"nprobe changes nothing on this index: it is {self._loaded[1].kind} (IVF indexes only); leave it out.",
                NprobeIgnored,
                stacklevel=2,
            )
            nprobe = None
        filt = build_filter(lang, source, where)
        if query_vectors is not None:
            query_vectors = self._checked_vectors(query_vectors)
            if len(query_vectors) != len(queries):
                raise InvalidInput(f"{len(queries)} queries but {len(query_vectors)} query vectors.")
        if mode == "dense" and filt is None and group_by is None:
            results = self._search_vectors(self.embed(queries) if query_vectors is None else query_vectors, k, nprobe)
        else:
            vectors: Sequence[np.ndarray | None]
            if mode == "lexical":
                vectors = [None] * len(queries)
            else:
                vectors = list(self.embed(queries) if query_vectors is None else query_vectors)
            allowed = None
            if filt is not None:
                with self._store.meta.budget(self.budget_seconds, "this filter"):
                    allowed = self._store.meta.live_chunk_ids(filt)
                self._explainer.check(filt, lang, empty=len(allowed) == 0, budget_seconds=self.budget_seconds)
            results = [
                self._search_one(q, v, k, nprobe, mode, filt, allowed, group_by)
                for q, v in zip(queries, vectors, strict=True)
            ]
        if min_score is not None:
            results = [[h for h in hits if h.score >= min_score] for hits in results]
        return results[0] if single else results

    @property
    def uses_nprobe(self) -> bool:
        """Whether searches of this index take ``nprobe`` (its FAISS index is IVF)."""
        return self._loaded[1].kind in IVF_KINDS

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None
    ) -> list[list[Hit]]:
        """Search with precomputed query vectors, float32 ``(q, dimension)`` L2-normalised.

        ``nprobe`` (IVF) and ``ef_search`` (HNSW: the candidate list's length, at least
        ``k``) override the index's defaults for this call; each changes nothing on another
        kind of index.
        """
        if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, int) or ef_search < 1):
            raise InvalidInput(f"ef_search must be a positive integer, not {ef_search!r}.")
        return self._search_vectors(self._checked_vectors(vectors), k, nprobe, ef_search)

    def _checked_vectors(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise DimensionMismatch(f"query vectors must have shape (q, {self.dimension}), not {vectors.shape}.")
        return vectors

    def _search_vectors(
        self, vectors: np.ndarray, k: int, nprobe: int | None, ef_search: int | None = None
    ) -> list[list[Hit]]:
        index, info = self._loaded
        nprobe = nprobe or info.nprobe
        fetch = k
        while True:
            scores, ids = faiss_index.search(
                index, vectors, fetch, nprobe, refine=self._exact_vectors, ef_search=ef_search
            )
            rows = self._store.meta.hits(np.unique(ids[ids >= 0]))
            results = [
                [
                    Hit.from_row(rows[int(i)], float(s))
                    for s, i in zip(srow, irow, strict=True)
                    if i >= 0 and int(i) in rows
                ][:k]
                for srow, irow in zip(scores, ids, strict=True)
            ]
            # Chunks deleted since this version was loaded are dropped; fetch more if needed.
            short = any(len(r) < k and (irow >= 0).sum() == fetch for r, irow in zip(results, ids, strict=True))
            if not short or fetch >= index.ntotal:
                return results
            fetch = min(fetch * 2, int(index.ntotal))

    def _exact_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored float32 vectors of chunk ids (NaN rows for deleted ones): lossy index
        types re-rank their candidates with them, so scores are exact cosines."""
        return self._store.meta.vectors_or_nan(ids, self.dimension)

    def _search_one(
        self,
        query: str,
        vector: np.ndarray | None,
        k: int,
        nprobe: int | None,
        mode: str,
        filt: Filter | None,
        allowed: np.ndarray | None,
        group_by: str | None,
    ) -> list[Hit]:
        """One query in any mode, filtered and grouped: fetch more until ``k`` hits or exhausted."""
        fetch = k
        while True:
            ranked, exhausted = self._rank(query, vector, fetch, nprobe, mode, filt, allowed)
            rows = self._store.meta.hits([i for i, _, _ in ranked])
            hits: list[Hit] = []
            seen: set[str] = set()
            for chunk_id, score, signals in ranked:
                row = rows.get(chunk_id)
                if row is None or (group_by and row.doc_id in seen):
                    continue
                seen.add(row.doc_id)
                hits.append(Hit.from_row(row, score, signals))
                if len(hits) == k:
                    return hits
            if exhausted:
                return hits
            fetch *= 2

    def _rank(
        self,
        query: str,
        vector: np.ndarray | None,
        fetch: int,
        nprobe: int | None,
        mode: str,
        filt: Filter | None,
        allowed: np.ndarray | None,
    ) -> tuple[list[tuple[int, float, tuple[str, ...]]], bool]:
        """``([(chunk id, score, signals)], exhausted)`` of up to ``fetch`` candidates."""
        if mode == "dense":
            assert vector is not None
            dense, done = self._dense(vector, fetch, nprobe, allowed)
            return [(i, s, ("dense",)) for i, s in dense], done
        depth = fetch if mode == "lexical" else HYBRID_DEPTH * fetch
        with self._store.meta.budget(self.budget_seconds, "this lexical query"):
            lexical = self._store.meta.lexical_search(query, depth, filt)
        if mode == "lexical":
            return [(i, s, ("lexical",)) for i, s in lexical], len(lexical) < depth
        assert vector is not None
        dense, done = self._dense(vector, depth, nprobe, allowed)
        found = {i for i, _ in dense}
        # Lexical matches the dense search did not reach are ranked by their cosine too (from
        # the stored vectors), below or among the dense candidates: a term match then always
        # outranks a chunk found by one signal only, whatever k (no ties decided by order).
        unseen = [i for i, _ in lexical if i not in found]
        if unseen:
            stored = self._store.meta.vectors(unseen, self.dimension)
            cosines = stored @ vector
            dense = sorted(dense + [(i, float(c)) for i, c in zip(unseen, cosines, strict=True)], key=lambda p: -p[1])
        fused = rrf({"dense": [i for i, _ in dense], "lexical": [i for i, _ in lexical]})
        fused = [(i, score, tuple(s for s in signals if s != "dense" or i in found)) for i, score, signals in fused]
        exhausted = done and len(lexical) < depth
        return (fused if exhausted else fused[:fetch]), exhausted

    def _dense(
        self, vector: np.ndarray, fetch: int, nprobe: int | None, allowed: np.ndarray | None
    ) -> tuple[list[tuple[int, float]], bool]:
        """Up to ``fetch`` ``(chunk id, cosine)`` nearest ``vector`` (float32 ``(d,)``) among
        ``allowed`` ids (all if ``None``), and whether that is all there is. Small allowed sets
        are searched exactly."""
        index, info = self._loaded
        size = int(index.ntotal)
        total = size if allowed is None else len(allowed)
        fetch = min(fetch, total)
        if fetch == 0:
            return [], True
        query = vector[None, :]
        exact = allowed is not None and (len(allowed) < EXACT_MAX or len(allowed) < EXACT_FRACTION * size)
        if not exact:
            # IVF visits only nprobe lists, which may hold fewer matching ids: then all lists.
            probes = [nprobe or info.nprobe]
            if allowed is not None and info.nlist and probes[0] and probes[0] < info.nlist:
                probes.append(info.nlist)
            for probe in probes:
                scores, ids = faiss_index.search(index, query, fetch, probe, ids=allowed, refine=self._exact_vectors)
                pairs = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
                if allowed is None or len(pairs) == fetch:
                    return pairs, fetch >= total
        assert allowed is not None
        stored = self._store.meta.vectors(allowed, self.dimension)
        scores, ids = faiss_index.exact_subset(stored, allowed, query, fetch)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True)], fetch >= total

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        """The query vectors of ``queries``: float32 ``(len(queries), dimension)``, L2-normalised,
        from the index's model (loaded on first use). Pass them to :meth:`search` as
        ``query_vectors`` to embed once and search several ways."""
        queries = list(queries)
        if self._embedder is None:
            with self._model_lock:
                if self._embedder is None:
                    from indexer.embedding import load_embedder, prompts_for

                    prompts = prompts_for(self._model_record, self.model_name, *self._prompts)
                    try:
                        embedder = load_embedder(self.model_name, precision=self._precision, **prompts)
                    except ModelNotAvailable as exc:
                        if not self._model_record.imported:
                            raise
                        raise ModelNotAvailable(
                            f"{exc} This index holds imported vectors: searching it by text needs the model "
                            f"{self.model_name!r} that made them, to embed the queries the same way. Without it, "
                            "search with query vectors from that model: Index.search_vectors(vectors)."
                        ) from None
                    self._check_model(embedder)
                    self._embedder = embedder
        vectors = self._embedder.embed_queries(queries)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise InvalidInput(
                f"the model gives no usable vector for the query {queries[int(np.flatnonzero(bad)[0])]!r} "
                "(NaN or zero); rephrase it with some words."
            )
        return vectors

    def _check_model(self, embedder: Embedder) -> None:
        from indexer.embedding import require_same_model

        require_same_model(
            self._model_record,
            embedder,
            self.path,
            "Search with the index's own model (omit the model), or rebuild the index with the new one.",
        )

    # -- lookups ----------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        """A live document and its chunks, or ``None``: ``{"doc_id", "source", "lang",
        "metadata", "n_chars", "updated_at", "chunks": [{"chunk_id", "ord", "text", "start",
        "end", "lang"}]}``; offsets are characters in the document's text."""
        row = self._store.meta.document(str(doc_id))
        return None if row is None else row.to_dict()

    def documents(
        self,
        *,
        lang: str | Sequence[str] | None = None,
        source: str | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> DocumentPage:
        """The live documents, ordered by id, a page at a time: ``limit`` (1 to
        :data:`MAX_PAGE`) from ``offset`` on, with the ``total`` that match. ``lang``,
        ``source`` and ``where`` are the filters of :meth:`search` (a document matches when
        one of its chunks does); a filter naming what the index does not hold raises
        :class:`~store.errors.InvalidFilter`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE}, not {limit!r}.")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= INT64_MAX:
            raise InvalidInput(f"offset must be an integer from 0, not {offset!r}.")
        filt = build_filter(lang, source, where)
        with self._store.meta.budget(self.budget_seconds, "this listing"):
            page = self._store.meta.list_documents(filt, limit, offset)
        if filt is not None and page.total == 0:
            self._explainer.check(filt, lang, empty=True, budget_seconds=self.budget_seconds)
        return page

    def get_chunk(self, chunk_id: int) -> Hit | None:
        """A live chunk as a :class:`Hit` (``score`` 0.0, no signals), or ``None``."""
        if not isinstance(chunk_id, int) or not INT64_MIN <= chunk_id <= INT64_MAX:
            return None  # no chunk has such an id
        row = self._store.meta.hits([chunk_id]).get(chunk_id)
        return None if row is None else Hit.from_row(row, 0.0, ())

    @property
    def version(self) -> int:
        """The FAISS version this view serves (grows by one with every publish)."""
        return int(self._loaded[1].version)

    @property
    def published_at(self) -> str:
        """When the version this view serves was published: ISO 8601 UTC, to the second
        (``2026-12-01T14:00:00Z``)."""
        return self._loaded[1].created_at

    # -- changes --------------------------------------------------------------------------
    def upsert(self, documents: Sequence[Any]) -> BuildReport:
        """Add or replace documents given as data: mappings with ``id``, ``text`` and optional
        ``metadata`` and ``source``. Takes the writer lock, publishes, and refreshes this
        view, so the next search sees them. Returns the ``BuildReport``."""
        from indexer.update import upsert_documents

        report = upsert_documents(self.path, documents, model=self._embedder or self.model_name)
        self.refresh()
        return report

    def delete(self, doc_ids: str | Sequence[str]) -> int:
        """Delete documents by id (takes the writer lock and publishes); returns how many
        existed. Once this returns, no search of any reader returns their chunks."""
        from indexer.update import delete_documents

        deleted = delete_documents(self.path, [doc_ids] if isinstance(doc_ids, str) else list(doc_ids))
        self.refresh()
        return deleted

    # -- upkeep -----------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Load the newest published FAISS version if there is one; True if it changed.

        Searches go on with the loaded version while the new file is read and verified."""
        with self._refresh_lock:
            info = self._store.faiss_info()
            if info is None or info == self._loaded[1]:
                return False
            loaded, info = self._store.load_faiss(mmap=self._mmap)
            if loaded is None or info is None:
                return False
            self._loaded = (loaded, info)
            return True

    def stats(self) -> dict[str, Any]:
        """Counts, model, index type and parameters, languages, sizes on disk (bytes), and what a
        vector costs (see :func:`store.vectors.memory_report`: ``code_bytes_per_vector``,
        ``file_bytes_per_vector``, ``memory_bytes``, ``memory_bytes_per_vector``, ``mmap``).
        ``watch``: the state of an ``indexer watch`` worker on this index (see
        :class:`store.worker_status.WorkerStatus`), None if none ever ran."""
        meta = self._store.meta
        index, info = self._loaded
        with meta.snapshot():  # the counts of one moment
            documents, chunks, languages = meta.count("documents"), meta.count("chunks"), meta.languages()
        return {
            "path": str(self.path),
            "documents": documents,
            "chunks": chunks,
            "model": self.model_name,
            "dimension": self.dimension,
            "index_type": info.factory,
            "index_kind": info.kind,
            "imported_vectors": self._model_record.imported,
            **faiss_index.memory_report(index, info, self._mmap),
            "nlist": info.nlist,
            "nprobe": info.nprobe,
            "tuned_recall": info.tuned_recall,
            "tuned_on": info.tuned_on,
            "faiss_version": info.version,
            "languages": languages,
            "build": meta.get_setting("build", {}),
            "size_bytes": self._store.disk_usage().to_dict(),
            "watch": watch.to_dict() if (watch := read_worker_status(self.path)) is not None else None,
        }

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, model={self.model_name!r}, chunks={len(self)}, type={self._loaded[1].factory!r})"
