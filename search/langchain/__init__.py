"""LangChain adapters over babelindex (optional: needs ``langchain-core``).

::

    pip install langchain-core        # or, from a babelindex checkout: pip install '.[langchain]'

    from search.langchain import BabelIndexEmbeddings, BabelIndexRetriever, BabelIndexVectorStore

- :class:`BabelIndexRetriever` (:mod:`search.langchain.retriever`): a ``BaseRetriever`` over an
  index built from files; one ``Document`` per chunk, babelindex's fields in its metadata.
- :class:`BabelIndexVectorStore` (:mod:`search.langchain.vectorstore`): a ``VectorStore`` whose
  documents are LangChain's own (ids, text and metadata come back as they were added).
- :class:`BabelIndexEmbeddings` (:mod:`search.langchain.embeddings`): a babelindex model as a
  LangChain ``Embeddings``; :class:`LangChainEmbedder` the other way round.

The metadata layout is :mod:`search.langchain.documents`'. ``import search`` never imports
LangChain; importing this package does, and says how to install it when it is missing.
"""

from __future__ import annotations

from store.errors import MissingDependency


class LangChainNotInstalled(MissingDependency, ImportError):
    """langchain-core is needed for the LangChain adapters."""


try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # exercised by a test that hides langchain_core
    raise LangChainNotInstalled(
        "search.langchain needs langchain-core: pip install langchain-core "
        "(or, from a babelindex checkout, pip install '.[langchain]')."
    ) from exc

from search.langchain.documents import HIT_FIELDS, hit_metadata, to_document  # noqa: E402
from search.langchain.embeddings import BabelIndexEmbeddings, LangChainEmbedder  # noqa: E402
from search.langchain.retriever import BabelIndexRetriever  # noqa: E402
from search.langchain.vectorstore import BabelIndexVectorStore  # noqa: E402

__all__ = [
    "HIT_FIELDS",
    "BabelIndexEmbeddings",
    "BabelIndexRetriever",
    "BabelIndexVectorStore",
    "LangChainEmbedder",
    "LangChainNotInstalled",
    "hit_metadata",
    "to_document",
]
