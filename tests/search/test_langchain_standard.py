"""LangChain's own standard tests (the ``langchain-tests`` package) of the adapters in
search.langchain: the retriever, the vector store and the embeddings.

The vector-store suite uses its own ``DeterministicFakeEmbedding`` (6 dimensions), as it
asks; the retriever runs over an index of the multilingual corpus built with the hashing test
embedder (its tests count documents, not meaning); the embeddings suites run the offline
``use-multilingual`` model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from search import Index, build_index
from search.langchain import BabelIndexEmbeddings, BabelIndexRetriever, BabelIndexVectorStore
from tests.fakes import HashingEmbedder
from tests.helpers import MULTILINGUAL_DOCS, write_files


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("langchain-standard")
    model = HashingEmbedder()
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "corpus.idx", model=model)
    with Index.open(root / "corpus.idx", model=model) as index:
        yield index


class TestRetrieverStandard(RetrieversIntegrationTests):
    index: Index

    @pytest.fixture(autouse=True)
    def _corpus(self, corpus_index: Index) -> None:
        self.index = corpus_index

    @property
    def retriever_constructor(self) -> type[BabelIndexRetriever]:
        return BabelIndexRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index}

    @property
    def retriever_query_example(self) -> str:
        return "Wie bricht ein Vulkan aus?"


class TestVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path) -> Iterator[BabelIndexVectorStore]:  # type: ignore[override]
        store = BabelIndexVectorStore(tmp_path / "store.idx", self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


class SharedModel:
    """The session's loaded use-multilingual as the ``model`` the suites construct with."""

    model: Any

    @pytest.fixture(autouse=True)
    def _model(self, use_model: Any) -> None:
        self.model = use_model

    @property
    def embeddings_class(self) -> type[BabelIndexEmbeddings]:
        return BabelIndexEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self.model}


class TestEmbeddingsUnitStandard(SharedModel, EmbeddingsUnitTests):
    pass


class TestEmbeddingsIntegrationStandard(SharedModel, EmbeddingsIntegrationTests):
    pass
