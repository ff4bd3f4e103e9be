"""``Index``: open an index directory and search it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from search.filters import build_filter
from search.fusion import rrf
from search.hit import Hit
from store import IndexDir, InvalidInput, ModelNotAvailable
from store import lexical as lexical_store
from store import vectors as faiss_store

MAX_K = 10_000
MODES = ("dense", "lexical", "hybrid")
HYBRID_DEPTH = 4
"""Hybrid search fuses this many times ``k`` candidates from each ranking."""
EXACT_MAX = 2_000
EXACT_FRACTION = 0.05
"""Filters allowing fewer than EXACT_MAX chunks or this fraction of the index are searched
exactly (inner products over the stored vectors) rather than through FAISS."""


class Index:
    """A read-only view of an index directory, serving its last published FAISS version.

    Open with :meth:`Index.open`. The embedding model is loaded on the first search (so
    ``Index.open`` is cheap and does not import torch). Safe to share between threads;
    search parameters are per call. Call :meth:`refresh` to pick up a newer version
    published by a writer since this one was loaded.
    """

    def __init__(self, store: IndexDir, model: Any = None, precision: str | None = None, *, mmap: bool = False):
        self._store = store
        self._precision = precision
        self._mmap = mmap
        self._lock = threading.Lock()  # guards the SQLite connection and the loaded version
        self._refresh_lock = threading.Lock()
        self._model_record = store.model_record()
        self._embedder = model
        self._faiss, self._info = store.load_faiss(mmap=mmap)
        if self._model_record is None or self._faiss is None:
            raise InvalidInput(f"{store.path} has no published index yet; run `indexer build` to finish it.")
        if model is not None and not isinstance(model, str):
            self._check_model(model)

    @classmethod
    def open(cls, path: str | Path, *, model: Any = None, precision: str | None = None, mmap: bool = False) -> Index:
        """Open the index at ``path``.

        ``model`` is optional: a model name or path, or a loaded ``Embedder``; by default
        the model the index was built with. A different model raises ``ModelMismatch``.
        ``precision`` (``auto``, ``fp32``, ``bf16``, ``int8``; default ``$BABELINDEX_PRECISION``,
        else ``auto``) applies when the model is loaded here.

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
            if isinstance(model, str):
                from indexer.embedding import load_embedder

                model = load_embedder(model, precision=precision)
            return cls(store, model, precision, mmap=mmap)
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
        return self._model_record["name"]

    @property
    def dimension(self) -> int:
        return int(self._model_record["dimension"])

    def __len__(self) -> int:
        """Chunks in the loaded FAISS version."""
        return int(self._faiss.ntotal)

    # -- search -----------------------------------------------------------------------------
    @overload
    def search(self, query: str, k: int = 10, nprobe: int | None = None, **options: Any) -> list[Hit]: ...
    @overload
    def search(self, query: Sequence[str], k: int = 10, nprobe: int | None = None, **options: Any) -> list[list[Hit]]: ...

    def search(self, query, k=10, nprobe=None, *, lang=None, source=None, where=None, mode="dense", group_by=None,
               query_vectors=None):
        """The ``k`` chunks that best match ``query``, best first.

        ``query`` is a string (returns ``list[Hit]``) or a list of strings (returns one
        list per query). ``nprobe`` (IVF indexes only) overrides the recorded default for
        this call: higher is more exact and slower.

        Filters (applied inside the search, so ``k`` hits come back whenever ``k`` matching
        chunks exist): ``lang`` a language code or a list of them; ``source`` a glob
        (``docs/*.md``) or a prefix (``docs/``) of the source path; ``where`` conditions on
        the document metadata, e.g. ``{"year": {">=": 2020}, "tag": {"in": ["a", "b"]}}``
        (see :mod:`search.filters`).

        ``mode``: ``dense`` (cosine of embeddings), ``lexical`` (full-text, bm25) or
        ``hybrid`` (both fused by reciprocal rank fusion); see :class:`Hit` for the scores.
        ``group_by="document"`` returns the best chunk of each of ``k`` documents.

        ``query_vectors``: the queries' embeddings if already computed with :meth:`embed`
        (float32 ``(q, dimension)``, one row per query), so that they are not embedded again.
        """
        single = isinstance(query, str)
        queries = [query] if single else list(query)
        if not all(isinstance(q, str) and q.strip() for q in queries):
            raise InvalidInput("every query must be a non-empty string.")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be an integer from 1 to {MAX_K}, not {k!r}.")
        if nprobe is not None and (not isinstance(nprobe, int) or nprobe < 1):
            raise InvalidInput(f"nprobe must be a positive integer, not {nprobe!r}.")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
        if group_by not in (None, "document"):
            raise InvalidInput(f"group_by must be None or 'document', not {group_by!r}.")
        filt = build_filter(lang, source, where)
        if query_vectors is not None:
            query_vectors = self._checked_vectors(query_vectors)
            if len(query_vectors) != len(queries):
                raise InvalidInput(f"{len(queries)} queries but {len(query_vectors)} query vectors.")
        if mode == "dense" and filt is None and group_by is None:
            results = self._search_vectors(self.embed(queries) if query_vectors is None else query_vectors, k, nprobe)
        else:
            if mode == "lexical":
                vectors = [None] * len(queries)
            else:
                vectors = self.embed(queries) if query_vectors is None else query_vectors
            allowed = None
            if filt is not None:
                with self._lock:
                    allowed = self._store.meta.live_chunk_ids_where(*filt.sql())
            results = [
                self._search_one(q, v, k, nprobe, mode, filt, allowed, group_by)
                for q, v in zip(queries, vectors, strict=True)
            ]
        return results[0] if single else results

    def search_vectors(self, vectors: np.ndarray, k: int = 10, nprobe: int | None = None) -> list[list[Hit]]:
        """Search with precomputed query vectors, float32 ``(q, dimension)`` L2-normalised."""
        return self._search_vectors(self._checked_vectors(vectors), k, nprobe)

    def _checked_vectors(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            from store import DimensionMismatch

            raise DimensionMismatch(f"query vectors must have shape (q, {self.dimension}), not {vectors.shape}.")
        return vectors

    def _search_vectors(self, vectors: np.ndarray, k: int, nprobe: int | None) -> list[list[Hit]]:
        nprobe = nprobe or self._info.nprobe
        fetch = k
        while True:
            scores, ids = faiss_store.search(self._faiss, vectors, fetch, nprobe)
            with self._lock:
                rows = self._store.meta.hits(np.unique(ids[ids >= 0]))
            results = [
                [Hit(score=float(s), **rows[int(i)]) for s, i in zip(srow, irow, strict=True) if i >= 0 and int(i) in rows][:k]
                for srow, irow in zip(scores, ids, strict=True)
            ]
            # Chunks deleted since this version was loaded are dropped; fetch more if needed.
            short = any(len(r) < k and (irow >= 0).sum() == fetch for r, irow in zip(results, ids, strict=True))
            if not short or fetch >= len(self):
                return results
            fetch = min(fetch * 2, len(self))

    def _search_one(self, query, vector, k, nprobe, mode, filt, allowed, group_by) -> list[Hit]:
        """One query in any mode, filtered and grouped: fetch more until ``k`` hits or exhausted."""
        fetch = k
        while True:
            ranked, exhausted = self._rank(query, vector, fetch, nprobe, mode, filt, allowed)
            with self._lock:
                rows = self._store.meta.hits([i for i, _, _ in ranked])
            hits, seen = [], set()
            for chunk_id, score, signals in ranked:
                row = rows.get(chunk_id)
                if row is None or (group_by and row["doc_id"] in seen):
                    continue
                seen.add(row["doc_id"])
                hits.append(Hit(score=score, signals=signals, **row))
                if len(hits) == k:
                    return hits
            if exhausted:
                return hits
            fetch *= 2

    def _rank(self, query, vector, fetch, nprobe, mode, filt, allowed) -> tuple[list, bool]:
        """``([(chunk id, score, signals)], exhausted)`` of up to ``fetch`` candidates."""
        if mode == "dense":
            dense, done = self._dense(vector, fetch, nprobe, allowed)
            return [(i, s, ("dense",)) for i, s in dense], done
        condition, params = filt.sql() if filt is not None else ("1", [])
        depth = fetch if mode == "lexical" else HYBRID_DEPTH * fetch
        with self._lock:
            lexical = lexical_store.search(self._store.meta.conn, query, depth, condition, params)
        if mode == "lexical":
            return [(i, s, ("lexical",)) for i, s in lexical], len(lexical) < depth
        dense, done = self._dense(vector, depth, nprobe, allowed)
        found = {i for i, _ in dense}
        # Lexical matches the dense search did not reach are ranked by their cosine too (from
        # the stored vectors), below or among the dense candidates: a term match then always
        # outranks a chunk found by one signal only, whatever k (no ties decided by order).
        unseen = [i for i, _ in lexical if i not in found]
        if unseen:
            with self._lock:
                stored = self._store.meta.vectors(unseen, self.dimension)
            cosines = stored @ vector
            dense = sorted(dense + [(i, float(c)) for i, c in zip(unseen, cosines, strict=True)], key=lambda p: -p[1])
        fused = rrf({"dense": [i for i, _ in dense], "lexical": [i for i, _ in lexical]})
        fused = [(i, score, tuple(s for s in signals if s != "dense" or i in found)) for i, score, signals in fused]
        exhausted = done and len(lexical) < depth
        return (fused if exhausted else fused[:fetch]), exhausted

    def _dense(self, vector, fetch, nprobe, allowed) -> tuple[list[tuple[int, float]], bool]:
        """Up to ``fetch`` ``(chunk id, cosine)`` nearest ``vector`` among ``allowed`` ids (all if
        ``None``), and whether that is all there is. Small allowed sets are searched exactly."""
        total = len(self) if allowed is None else len(allowed)
        fetch = min(fetch, total)
        if fetch == 0:
            return [], True
        query = vector[None, :]
        exact = allowed is not None and (len(allowed) < EXACT_MAX or len(allowed) < EXACT_FRACTION * len(self))
        if not exact:
            # IVF visits only nprobe lists, which may hold fewer matching ids: then all lists.
            probes = [nprobe or self._info.nprobe]
            if allowed is not None and self._info.nlist and probes[0] and probes[0] < self._info.nlist:
                probes.append(self._info.nlist)
            for probe in probes:
                scores, ids = faiss_store.search(self._faiss, query, fetch, probe, ids=allowed)
                pairs = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
                if allowed is None or len(pairs) == fetch:
                    return pairs, fetch >= total
        with self._lock:
            stored = self._store.meta.vectors(allowed, self.dimension)
        scores, ids = faiss_store.exact_subset(stored, allowed, query, fetch)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True)], fetch >= total

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        """The query vectors of ``queries``: float32 ``(len(queries), dimension)``, L2-normalised,
        from the index's model (loaded on first use). Pass them to :meth:`search` as
        ``query_vectors`` to embed once and search several ways."""
        queries = list(queries)
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from indexer.embedding import load_embedder

                    try:
                        embedder = load_embedder(self.model_name, precision=self._precision)
                    except ModelNotAvailable as exc:
                        if not self._model_record.get("imported"):
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

    def _check_model(self, embedder: Any) -> None:
        from indexer.embedding import require_same_model

        require_same_model(self._model_record, embedder, self.path, "Search with the index's own model (omit the "
                           "model), or rebuild the index with the new one.")

    # -- lookups ----------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        """A live document and its chunks (see :meth:`store.MetaStore.document`), or ``None``."""
        with self._lock:
            return self._store.meta.document(str(doc_id))

    def get_chunk(self, chunk_id: int) -> Hit | None:
        """A live chunk as a :class:`Hit` (``score`` 0.0, no signals), or ``None``."""
        with self._lock:
            row = self._store.meta.hits([int(chunk_id)]).get(int(chunk_id))
        return None if row is None else Hit(score=0.0, signals=(), **row)

    @property
    def version(self) -> int:
        """The FAISS version this view serves (grows by one with every publish)."""
        return int(self._info.version)

    # -- changes --------------------------------------------------------------------------
    def upsert(self, documents) -> Any:
        """Add or replace documents given as data: mappings with ``id``, ``text`` and optional
        ``metadata`` and ``source``. Takes the writer lock, publishes, and refreshes this
        view, so the next search sees them. Returns the ``BuildReport``."""
        from indexer.update import upsert_documents

        report = upsert_documents(self.path, documents, model=self._embedder or self.model_name)
        self.refresh()
        return report

    def delete(self, doc_ids) -> int:
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
            with self._lock:
                info = self._store.faiss_info()
            if info is None or info == self._info:
                return False
            loaded, info = self._store.load_faiss(mmap=self._mmap, lock=self._lock)
            with self._lock:
                self._faiss, self._info = loaded, info
            return True

    def stats(self) -> dict[str, Any]:
        """Counts, model, index type and parameters, languages, sizes on disk (bytes), and what a
        vector costs (see :func:`store.vectors.memory_report`: ``code_bytes_per_vector``,
        ``file_bytes_per_vector``, ``memory_bytes``, ``memory_bytes_per_vector``, ``mmap``)."""
        meta = self._store.meta
        with self._lock:
            info = self._info
            return {
                "path": str(self.path),
                "documents": meta.count("documents"),
                "chunks": meta.count("chunks"),
                "model": self.model_name,
                "dimension": self.dimension,
                "index_type": info.factory,
                "index_kind": info.kind,
                "imported_vectors": bool(self._model_record.get("imported")),
                **faiss_store.memory_report(self._faiss, info, self._mmap),
                "nlist": info.nlist,
                "nprobe": info.nprobe,
                "faiss_version": info.version,
                "languages": meta.languages(),
                "build": meta.get_setting("build", {}),
                "size_bytes": self._store.disk_usage(),
            }

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r}, model={self.model_name!r}, chunks={len(self)}, type={self._info.factory!r})"
