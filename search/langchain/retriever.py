"""``BabelIndexRetriever``: a LangChain retriever over a babelindex index.

::

    retriever = BabelIndexRetriever(index=Index.open("my.idx"), k=5)   # or index="my.idx"
    docs = retriever.invoke("¿Qué es la fotosíntesis?")                 # list[Document]
    docs = retriever.invoke("Vulkan", k=2, lang="de", where={"year": {">=": 2020}})

One ``Document`` per chunk (the layout is :mod:`search.langchain.documents`').
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator

from search.hit import Hit
from search.langchain.documents import to_document
from store.errors import InvalidInput

SEARCH_ARGUMENTS = ("k", "nprobe", "lang", "source", "where", "mode", "group_by")
"""What ``search_kwargs`` and ``invoke(query, **kwargs)`` may hold: ``Index.search``'s arguments."""
IGNORED = ("verbose",)
"""Keyword arguments of LangChain's own that ``invoke`` also hands to the retriever."""


class BabelIndexRetriever(BaseRetriever):
    """Retrieves the ``k`` chunks nearest to a query from a babelindex :class:`~search.Index`.

    Attributes:
        index: an open ``search.Index`` (a path to an index directory is opened for you).
        k: chunks per query (``invoke(query, k=...)`` overrides it for one call).
        search_kwargs: more keyword arguments for ``index.search``, for every call:
            ``nprobe``, ``lang``, ``source``, ``where``, ``mode``, ``group_by``.
            ``invoke(query, **kwargs)`` takes the same ones for one call, over these.
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

    @field_validator("search_kwargs")
    @classmethod
    def _known_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_arguments(value)
        return value

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        arguments = {"k": self.k, **self.search_kwargs}
        arguments.update({key: value for key, value in kwargs.items() if key not in IGNORED})
        check_arguments(arguments)
        hits: list[Hit] = self.index.search(query, **arguments)
        return [to_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        """The same search in a worker thread (LangChain's default one takes no ``k``)."""
        documents: list[Document] = await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs
        )
        return documents


def check_arguments(arguments: dict[str, Any]) -> None:
    """Raise ``InvalidInput`` naming any key of ``arguments`` not in :data:`SEARCH_ARGUMENTS`."""
    unknown = sorted(set(arguments) - set(SEARCH_ARGUMENTS))
    if unknown:
        raise InvalidInput(
            f"unknown search argument(s) {', '.join(map(repr, unknown))}; "
            f"the retriever takes {', '.join(SEARCH_ARGUMENTS)}."
        )
