"""A LangChain retriever over a babelindex index (optional extra ``langchain``).

::

    pip install 'babelindex[langchain]'

    from search import Index
    from search.langchain import BabelIndexRetriever

    retriever = BabelIndexRetriever(index=Index.open("my.idx"), k=5)
    docs = retriever.invoke("¿Qué es la fotosíntesis?")   # list[langchain_core.documents.Document]

Each ``Document`` has ``page_content`` = the chunk's text and ``metadata`` = the other
fields of its :class:`~search.Hit` (``score``, ``doc_id``, ``chunk_id``, ``source``,
``lang``, ``start``, ``end``, ``signals`` as a list, and the document's own ``metadata``
under that key); its ``id`` is the chunk id as a string. ``import search`` never imports
LangChain; importing this module does, and says how to install it when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store.errors import BabelIndexError

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict, Field, field_validator
except ImportError as exc:  # pragma: no cover - exercised by a test that hides langchain_core

    class LangChainNotInstalled(BabelIndexError, ImportError):
        """langchain-core is needed for the LangChain retriever."""

    raise LangChainNotInstalled(
        "search.langchain needs langchain-core: pip install 'babelindex[langchain]' (or pip install langchain-core)."
    ) from exc

from search.hit import Hit


class BabelIndexRetriever(BaseRetriever):
    """Retrieves the ``k`` chunks nearest to a query from a babelindex :class:`~search.Index`.

    Attributes:
        index: an open ``search.Index`` (a path to an index directory is opened for you).
        k: chunks per query.
        search_kwargs: more keyword arguments for ``index.search`` (e.g. ``{"nprobe": 32}``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = Field(default=5, ge=1)
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("index", mode="before")
    @classmethod
    def _open_path(cls, value: Any) -> Any:
        if isinstance(value, str | Path):
            from search.index import Index

            return Index.open(value)
        if not callable(getattr(value, "search", None)):
            raise ValueError(
                f"index must be a search.Index or the path of an index directory, not {type(value).__name__}"
            )
        return value

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, k=self.k, **self.search_kwargs)
        return [to_document(hit) for hit in hits]


def to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` of one hit: its text as ``page_content``, the rest as metadata."""
    metadata = hit.to_dict()
    text = metadata.pop("text")
    return Document(page_content=text, metadata=metadata, id=str(hit.chunk_id))


__all__ = ["BabelIndexRetriever", "to_document"]
