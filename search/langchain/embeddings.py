"""babelindex models as LangChain ``Embeddings``, and LangChain ``Embeddings`` as babelindex models.

- :class:`BabelIndexEmbeddings` wraps a babelindex model (a registry name such as
  ``use-multilingual``, a Hub id, a directory, a loaded ``Embedder`` or a loaded
  ``sentence_transformers.SentenceTransformer``) for LangChain code.
- :class:`LangChainEmbedder` wraps any LangChain ``Embeddings`` (OpenAI, Ollama, a fake one in
  tests) as a babelindex :class:`~indexer.embedding.Embedder`, so that an index can be built
  and searched with it (what :class:`~search.langchain.BabelIndexVectorStore` does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, PrivateAttr

from indexer.embedding import FOREIGN_PREFIX, Embedder, to_embedder
from indexer.embedding.base import check_vectors
from store.errors import InvalidInput

LANGCHAIN_MAX_TOKENS = 512
"""The longest chunk, in :meth:`LangChainEmbedder.count_tokens` tokens, given to a LangChain
``Embeddings`` whose own limit babelindex cannot know (chunks are 256 by default anyway)."""
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+|[^\w\s]"
)


class BabelIndexEmbeddings(BaseModel, Embeddings):
    """A babelindex model as a LangChain ``Embeddings``.

    ::

        embeddings = BabelIndexEmbeddings(model="use-multilingual")
        embeddings.embed_query("¿Qué es la fotosíntesis?")        # list of 512 floats

    Attributes:
        model: what babelindex's ``model=`` takes (see :func:`indexer.embedding.to_embedder`):
            a registry name, Hub id or directory (``None``: the default model), a loaded
            ``Embedder``, or a loaded ``SentenceTransformer``. Loaded when this is made.
        precision: ``auto``, ``fp32``, ``bf16`` or ``int8`` for a model loaded here (default
            ``$BABELINDEX_PRECISION``, else ``auto``).

    Vectors are lists of ``dimension`` floats, L2-normalised (cosine = inner product); documents
    and queries are encoded with the model's own document and query encodings.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = None
    precision: str | None = None
    _embedder: Embedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._embedder = to_embedder(self.model, precision=self.precision)

    @property
    def embedder(self) -> Embedder:
        """The babelindex ``Embedder`` behind this object."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages: one list of ``dimension`` floats (unit length) per text."""
        return _usable(self._embedder.embed_documents(list(texts)) if texts else np.empty((0, 0)), texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query: ``dimension`` floats of unit length."""
        return _usable(self._embedder.embed_queries([text]), [text])[0]


def _usable(vectors: np.ndarray, texts: Sequence[str]) -> list[list[float]]:
    bad = ~np.isfinite(vectors).all(axis=1) if len(vectors) else np.zeros(0, dtype=bool)
    if bad.any():
        raise InvalidInput(
            f"the model gives no usable vector for the text {texts[int(np.flatnonzero(bad)[0])]!r} "
            "(NaN or zero); give it some words."
        )
    return [[float(x) for x in row] for row in vectors]


class LangChainEmbedder:
    """A LangChain ``Embeddings`` as a babelindex :class:`~indexer.embedding.Embedder`.

    Args:
        embeddings: any LangChain ``Embeddings``; it is called once here, to learn the dimension.
        max_tokens: the longest chunk in :meth:`count_tokens` tokens (default
            :data:`LANGCHAIN_MAX_TOKENS`): babelindex does not know the model's own limit.

    Attributes:
        name: ``langchain:<module>.<class>`` (``:<model>`` added where the object has a string
            ``model`` or ``model_name``), recorded in the index. babelindex cannot load such a
            model by name: open the index with the same embeddings again.

    Its vectors are the ``Embeddings``' own, as float32, L2-normalised. Tokens are counted
    without the model's tokenizer, which LangChain does not expose: a word, a punctuation
    character or a CJK character is one token.
    """

    def __init__(self, embeddings: Embeddings, *, max_tokens: int = LANGCHAIN_MAX_TOKENS):
        if isinstance(embeddings, BabelIndexEmbeddings):
            raise InvalidInput("BabelIndexEmbeddings is a babelindex model already: use its .embedder.")
        if not callable(getattr(embeddings, "embed_documents", None)) or not callable(
            getattr(embeddings, "embed_query", None)
        ):
            raise InvalidInput(
                f"embeddings must be a LangChain Embeddings (embed_documents, embed_query), "
                f"not {type(embeddings).__name__}."
            )
        self.embeddings = embeddings
        kind = type(embeddings)
        model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        self.name = f"{FOREIGN_PREFIX}{kind.__module__}.{kind.__qualname__}" + (
            f":{model}" if isinstance(model, str) and model else ""
        )
        self.max_tokens = max_tokens
        self.dimension = len(embeddings.embed_query("babelindex dimension probe"))
        if self.dimension < 1:
            raise InvalidInput(f"{self.name} gives empty vectors.")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dimension)``, each row L2-normalised (NaN where unusable)."""
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return check_vectors(np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32), texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dimension)``: ``embed_query`` of each text, L2-normalised."""
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        rows = [self.embeddings.embed_query(t) for t in texts]
        return check_vectors(np.asarray(rows, dtype=np.float32), texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Words, punctuation characters and CJK characters in each text."""
        return [len(_TOKEN.findall(t)) for t in texts]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "langchain",
            "max_tokens": self.max_tokens,
            "dimension": self.dimension,
        }
