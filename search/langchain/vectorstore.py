"""``BabelIndexVectorStore``: a LangChain ``VectorStore`` kept in a babelindex index.

::

    from search.langchain import BabelIndexEmbeddings, BabelIndexVectorStore

    store = BabelIndexVectorStore.from_texts(
        ["Ein Vulkan bricht aus, wenn Magma aufsteigt.", "La photosynthèse nourrit les plantes."],
        BabelIndexEmbeddings(model="use-multilingual"),
        metadatas=[{"topic": "geo"}, {"topic": "bio"}],
        path="my.idx",
    )
    store.similarity_search("How do volcanoes erupt?", k=1)   # [Document(id=..., page_content="Ein Vulkan …")]

Each LangChain ``Document`` is one babelindex document: ``id`` → ``doc_id`` (a UUID when it has
none), ``page_content`` → its text, ``metadata`` → its metadata (a JSON object), and a string
``metadata["source"]`` also becomes its ``source`` (the ``source=`` filter). Searches and
:meth:`~BabelIndexVectorStore.get_by_ids` give the documents back as they were added. A text
longer than a chunk (256 model tokens by default) is embedded in several chunks; it is ranked
by its best chunk and comes back whole. Writes take the index's writer lock and publish before
they return (``Index.upsert`` / ``Index.delete``), so the next search sees them.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from indexer.embedding import Embedder, to_embedder
from search.hit import Hit
from search.langchain.documents import stored_document
from search.langchain.embeddings import BabelIndexEmbeddings, LangChainEmbedder
from store.errors import IndexNotFound, InvalidInput

SEARCH_ARGUMENTS = ("filter", "where", "lang", "source", "nprobe")
"""Keyword arguments the searches take besides ``k``: ``filter`` (LangChain's name) and
``where`` are conditions on the metadata (``{"topic": "geo"}``, ``{"year": {">=": 2020}}``),
and the others are ``Index.search``'s own."""
VECTOR_QUERY = "(query vector)"
"""The query text given with a query vector (it is not embedded, only checked)."""


class BabelIndexVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over the babelindex index at ``path``.

    Args:
        path: the index directory; made at the first write if it does not exist. ``None``: a
            new temporary directory, removed by :meth:`close` (or when the store is collected).
        embedding: a LangChain ``Embeddings`` (used through
            :class:`~search.langchain.LangChainEmbedder`), a :class:`BabelIndexEmbeddings`, or
            anything babelindex's ``model=`` takes (a model name or directory, an ``Embedder``,
            a loaded ``SentenceTransformer``). ``None``: the model the index was built with (the
            default model for a new index). An existing index built with another model raises
            ``ModelMismatch``.
        precision: for a model loaded here by name (see ``Index.open``).
    """

    def __init__(self, path: str | Path | None = None, embedding: Any = None, *, precision: str | None = None) -> None:
        self._temporary: Path | None = None
        if path is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="babelindex-"))
            weakref.finalize(self, shutil.rmtree, self._temporary, True)
            path = self._temporary / "index.idx"
        self.path = Path(path)
        self._embeddings, self._embedder = _resolve(embedding, precision)
        self._precision = precision
        self._index: Any = None  # a search.Index, once the index exists
        self._open()

    # -- the index ------------------------------------------------------------------------
    def _open(self) -> Any:
        """The open ``Index``, or ``None`` while none exists at ``path``."""
        if self._index is None:
            from search.index import Index

            try:
                self._index = Index.open(self.path, model=self._embedder, precision=self._precision)
            except IndexNotFound:
                return None
        return self._index

    def _create(self) -> Any:
        """The open ``Index``, made empty at ``path`` first if there is none (``Index.create``)."""
        if self._open() is None:
            from search.index import Index

            self._index = Index.create(self.path, model=self._embedder, precision=self._precision, exist_ok=True)
        return self._index

    @property
    def index(self) -> Any:
        """The ``search.Index`` behind the store, or ``None`` before the first write."""
        return self._open()

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings of the store, as a LangChain ``Embeddings``."""
        if self._embeddings is None:
            index = self._open()
            model = self._embedder if self._embedder is not None else (index.model_name if index else None)
            self._embeddings = BabelIndexEmbeddings(model=model, precision=self._precision)
            self._embedder = self._embeddings.embedder
        return self._embeddings

    def close(self) -> None:
        """Close the index (and remove it, if it lives in a temporary directory of its own)."""
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def __enter__(self) -> BabelIndexVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add or replace texts; returns their ids (``ids``, or new UUIDs where one is ``None``).

        A text whose id exists replaces that document (its old chunks are deleted); an
        unchanged one is not embedded again. All are checked before any is written: an empty
        text, metadata that is not JSON, or an id given twice raises ``InvalidInput``."""
        if kwargs:
            raise InvalidInput(f"add_texts takes texts, metadatas and ids, not {', '.join(sorted(kwargs))}.")
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        given = list(ids) if ids is not None else [None] * len(texts)
        if not len(metadatas) == len(given) == len(texts):
            raise InvalidInput(f"{len(texts)} texts, {len(metadatas)} metadatas and {len(given)} ids: give one each.")
        doc_ids = [str(i) if i is not None and str(i) != "" else str(uuid.uuid4()) for i in given]
        repeated = sorted({i for i in doc_ids if doc_ids.count(i) > 1})
        if repeated:
            raise InvalidInput(f"each id may be added once per call; given more than once: {', '.join(repeated)}.")
        if not texts:
            return []
        records = [
            {"id": doc_id, "text": text, "metadata": metadata or {}, "source": _source(metadata, doc_id)}
            for doc_id, text, metadata in zip(doc_ids, texts, metadatas, strict=True)
        ]
        report = self._create().upsert(records)
        if report.skipped:
            reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in report.skipped)
            raise InvalidInput(f"{len(report.skipped)} text(s) could not be indexed ({reasons}).")
        return doc_ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add or replace documents; their ids are ``ids=`` if given, else each ``Document.id``,
        else a new UUID. The documents are not changed. Returns the ids."""
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [doc.id for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [doc.metadata for doc in documents], ids=ids, **kwargs
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id; ids that do not exist are passed over. Returns True.
        ``ids=None`` (LangChain's "delete all") raises ``InvalidInput``: give the ids, or
        remove the index directory."""
        if ids is None:
            raise InvalidInput("delete needs the ids to delete; to delete everything, remove the index directory.")
        if kwargs:
            raise InvalidInput(f"delete takes ids only, not {', '.join(sorted(kwargs))}.")
        index = self._open()
        if index is not None and ids:
            index.delete([str(i) for i in ids])
        return True

    # -- reads ----------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are left out."""
        index = self._open()
        if index is None:
            return []
        records = [index.get_document(str(i)) for i in ids]
        return [stored_document(r) for r in records if r is not None]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to ``query``, best first (each document once, ranked by
        its best chunk). ``kwargs``: :data:`SEARCH_ARGUMENTS`."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, cosine similarity in [-1, 1])`` of the ``k`` nearest, best first."""
        index = self._open()
        if index is None:
            return []
        return self._documents(index, index.search(query, k, group_by="document", **_search_arguments(kwargs)))

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to a query vector (``dimension`` floats; normalised here)."""
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """``(document, cosine similarity)`` of the ``k`` nearest to a query vector."""
        index = self._open()
        if index is None:
            return []
        vector = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(vector).all() or norm == 0.0:
            raise InvalidInput("the query vector must be finite and not all zero.")
        hits = index.search(
            VECTOR_QUERY, k, group_by="document", query_vectors=vector / norm, **_search_arguments(kwargs)
        )
        return self._documents(index, hits)

    def _documents(self, index: Any, hits: list[Hit]) -> list[tuple[Document, float]]:
        """Each hit's whole document (as added) and its score; documents deleted meanwhile are left out."""
        found = [(index.get_document(hit.doc_id), hit.score) for hit in hits]
        return [(stored_document(record), score) for record, score in found if record is not None]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] to LangChain's relevance in [0, 1]."""
        return lambda score: (score + 1.0) / 2.0

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | Path | None = None,
        precision: str | None = None,
        **kwargs: Any,
    ) -> BabelIndexVectorStore:
        """A store at ``path`` (default: a temporary one) holding ``texts``; see :meth:`add_texts`."""
        if kwargs:
            raise InvalidInput(
                f"from_texts takes path and precision besides the texts, not {', '.join(sorted(kwargs))}."
            )
        store = cls(path, embedding, precision=precision)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _resolve(embedding: Any, precision: str | None) -> tuple[Embeddings | None, Embedder | None]:
    """``(the LangChain Embeddings, the babelindex Embedder)`` of the store's ``embedding``
    argument; ``(None, None)`` to use the index's own model."""
    if embedding is None:
        return None, None
    if isinstance(embedding, BabelIndexEmbeddings):
        return embedding, embedding.embedder
    if isinstance(embedding, Embeddings):
        return embedding, LangChainEmbedder(embedding)
    embedder = to_embedder(embedding, precision=precision)
    return BabelIndexEmbeddings(model=embedder), embedder


def _source(metadata: dict[str, Any] | None, doc_id: str) -> str:
    """A document's ``source``: a non-empty string ``metadata["source"]`` (LangChain loaders set
    one), else its id."""
    source = (metadata or {}).get("source")
    return source if isinstance(source, str) and source.strip() else doc_id


def _search_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``Index.search`` arguments of a search's ``kwargs`` (``filter`` read as ``where``)."""
    unknown = sorted(set(kwargs) - set(SEARCH_ARGUMENTS))
    if unknown:
        raise InvalidInput(
            f"unknown search argument(s) {', '.join(map(repr, unknown))}; "
            f"the store's searches take k, {', '.join(SEARCH_ARGUMENTS)}."
        )
    arguments = dict(kwargs)
    condition = arguments.pop("filter", None)
    if condition is not None:
        if arguments.get("where") is not None:
            raise InvalidInput("give filter or where, not both (they are the same).")
        arguments["where"] = condition
    return arguments
