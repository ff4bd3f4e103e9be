"""The LangChain adapters (search.langchain): the retriever's k and filters, the flat metadata
layout, the vector store, the embeddings both ways, and a loaded SentenceTransformer as model=.
LangChain's own standard suites are in test_langchain_standard.py."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from indexer.embedding import load_embedder, to_embedder
from search import Index, build_index
from search.langchain import (
    BabelIndexEmbeddings,
    BabelIndexRetriever,
    BabelIndexVectorStore,
    LangChainEmbedder,
    to_document,
)
from store.errors import BabelIndexError, InvalidFilter, InvalidInput, ModelMismatch, ModelNotAvailable
from tests.fakes import HashingEmbedder
from tests.helpers import MULTILINGUAL_DOCS, write_files

TEXTS = [MULTILINGUAL_DOCS[name] for name in ("de/vulkan.md", "fr/photosynthese.txt", "ru/shakhmaty.txt")]


@pytest.fixture(scope="module")
def index(tmp_path_factory, use_model):
    root = tmp_path_factory.mktemp("langchain")
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "corpus.idx", model=use_model)
    with Index.open(root / "corpus.idx", model=use_model) as ix:
        yield ix


@pytest.fixture
def store(tmp_path, use_model):
    with BabelIndexVectorStore(tmp_path / "store.idx", BabelIndexEmbeddings(model=use_model)) as s:
        yield s


# -- the retriever ------------------------------------------------------------------------------
def test_retriever_returns_one_document_per_hit_with_flat_metadata(index):
    retriever = BabelIndexRetriever(index=index, k=2)
    docs = retriever.invoke("¿Cómo se prepara el café?")
    hits = index.search("¿Cómo se prepara el café?", k=2)
    assert all(isinstance(d, Document) for d in docs)
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert [d.id for d in docs] == [str(h.chunk_id) for h in hits]
    # The document's own metadata at the top level (it was nested under "metadata"), beside babelindex's fields.
    assert docs[0].metadata == {
        "title": "El café",
        "score": hits[0].score,
        "doc_id": "es/cafe.html",
        "chunk_id": hits[0].chunk_id,
        "source": "es/cafe.html",
        "lang": "es",
        "start": hits[0].start,
        "end": hits[0].end,
        "signals": ["dense"],
    }
    assert asyncio.run(retriever.ainvoke("¿Cómo se prepara el café?")) == docs


def test_retriever_takes_k_and_filters_per_call(index):
    retriever = BabelIndexRetriever(index=index, k=5)
    assert len(retriever.invoke("Wie bricht ein Vulkan aus?")) == 5
    assert len(retriever.invoke("Wie bricht ein Vulkan aus?", k=1)) == 1  # k was ignored: 5 came back
    assert len(asyncio.run(retriever.ainvoke("Wie bricht ein Vulkan aus?", k=2))) == 2
    docs = retriever.invoke("Wie bricht ein Vulkan aus?", lang="ru")
    assert [d.metadata["doc_id"] for d in docs] == ["ru/shakhmaty.txt"]
    fixed = BabelIndexRetriever(index=index, k=3, search_kwargs={"source": "fr/*"})
    assert {d.metadata["source"] for d in fixed.invoke("plants")} == {"fr/photosynthese.txt"}
    assert fixed.invoke("plants", source="de/*")[0].metadata["source"] == "de/vulkan.md"  # per call wins
    with pytest.raises(InvalidInput, match=r"unknown search argument\(s\) 'top_k'; the retriever takes k, "):
        retriever.invoke("plants", top_k=2)
    with pytest.raises(InvalidFilter):
        retriever.invoke("plants", lang="xx")


def test_retriever_metadata_never_hides_the_documents_own_keys(store):
    store.add_texts(["Honeybees carry pollen."], [{"source": "my/own.txt", "score": 5, "year": 2024}], ids=["bees"])
    doc = BabelIndexRetriever(index=store.index, k=1).invoke("bees")[0]
    assert doc.metadata["source"] == "my/own.txt" and doc.metadata["score"] == 5 and doc.metadata["year"] == 2024
    assert isinstance(doc.metadata["babelindex_score"], float) and doc.metadata["babelindex_score"] > 0.3
    assert doc.metadata["babelindex_source"] == "my/own.txt"  # the store's source is metadata["source"]
    assert doc.metadata["doc_id"] == "bees" and "babelindex_doc_id" not in doc.metadata


def test_retriever_from_a_path_and_bad_arguments(index):
    from pydantic import ValidationError

    retriever = BabelIndexRetriever(index=str(index.path), k=1, search_kwargs={"mode": "hybrid"})
    try:
        assert [d.metadata["doc_id"] for d in retriever.invoke("шахматы")] == ["ru/shakhmaty.txt"]
    finally:
        retriever.index.close()
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        BabelIndexRetriever(index=index, k=0)
    with pytest.raises(ValidationError, match=r"index must be a search\.Index or the path"):
        BabelIndexRetriever(index=42)
    with pytest.raises(InvalidInput, match="unknown search argument"):
        BabelIndexRetriever(index=index, search_kwargs={"filter": {}})
    hit = index.search("шахматы", k=1)[0]
    assert to_document(hit).metadata["doc_id"] == hit.doc_id


# -- the vector store ---------------------------------------------------------------------------
def test_vector_store_finds_across_languages_and_gives_documents_back_as_added(store):
    ids = store.add_texts(TEXTS, [{"topic": "geo"}, {"topic": "bio"}, {"topic": "game"}], ids=["v", "p", "s"])
    assert ids == ["v", "p", "s"]
    found = store.similarity_search("How do volcanoes erupt?", k=2)
    assert found[0] == Document(id="v", page_content=TEXTS[0], metadata={"topic": "geo"})
    scored = store.similarity_search_with_score("How do volcanoes erupt?", k=3)
    assert scored[0][0].id == "v" and len(scored) == 3
    assert scored[0][1] == pytest.approx(store.index.search("How do volcanoes erupt?", k=1)[0].score)
    relevance = store.similarity_search_with_relevance_scores("How do volcanoes erupt?", k=1)
    assert relevance[0][1] == pytest.approx((scored[0][1] + 1) / 2)
    assert [d.id for d in store.similarity_search("game", k=3, filter={"topic": "bio"})] == ["p"]
    assert [d.id for d in store.similarity_search("game", k=3, where={"topic": {"in": ["geo"]}})] == ["v"]
    vector = store.embeddings.embed_query("Шахматы")
    assert store.similarity_search_by_vector(vector, k=1)[0].id == "s"
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 1}).invoke("photosynthèse")] == ["p"]
    threshold = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.7})
    assert [d.id for d in threshold.invoke("How do volcanoes erupt?")] == ["v"]
    assert [d.id for d in store.get_by_ids(["s", "missing", "v"])] == ["s", "v"]
    with pytest.raises(InvalidInput, match=r"unknown search argument\(s\) 'fetch'"):
        store.similarity_search("game", k=1, fetch=3)


def test_vector_store_long_texts_are_chunked_and_come_back_whole(store):
    long = "\n\n".join([MULTILINGUAL_DOCS["en/bees.txt"]] * 12)
    store.add_texts([long, "  padded text  "], ids=["long", "padded"])
    assert len(store.index.get_document("long")["chunks"]) > 1
    assert [d.page_content for d in store.get_by_ids(["long", "padded"])] == [long, "  padded text  "]
    assert store.similarity_search("pollen", k=2)[0] == Document(id="long", page_content=long)  # once, whole


def test_vector_store_writes_replace_delete_and_check(store):
    store.add_texts(TEXTS[:2], ids=["a", "b"])
    store.add_documents([Document(page_content=TEXTS[2], metadata={"v": 2}, id="a")])  # replaces a
    assert store.get_by_ids(["a"]) == [Document(id="a", page_content=TEXTS[2], metadata={"v": 2})]
    assert store.index.stats()["documents"] == 2
    assert store.delete(["a", "never-added"]) is True
    assert [d.id for d in store.similarity_search("anything", k=5)] == ["b"]
    with pytest.raises(InvalidInput, match="delete needs the ids"):
        store.delete()
    with pytest.raises(InvalidInput, match="given more than once: x"):
        store.add_texts(["one", "two"], ids=["x", "x"])
    with pytest.raises(InvalidInput, match="3 texts, 1 metadatas and 3 ids"):
        store.add_texts(["one", "two", "three"], [{}])
    with pytest.raises(InvalidInput, match="non-empty string 'text'"):
        store.add_texts([" "])
    assert store.add_texts([]) == []


def test_vector_store_with_a_temporary_path_and_from_texts(use_model):
    store = BabelIndexVectorStore.from_texts(TEXTS, BabelIndexEmbeddings(model=use_model), ids=["v", "p", "s"])
    folder = store.path.parent
    assert folder.is_dir() and store.similarity_search("volcano", k=1)[0].id == "v"
    store.close()
    assert not folder.exists()
    docs = [Document(page_content=t, id=i) for t, i in zip(TEXTS, "vps", strict=True)]
    with BabelIndexVectorStore.from_documents(docs, BabelIndexEmbeddings(model=use_model)) as again:
        assert again.get_by_ids(["s"])[0].page_content == TEXTS[2]
    with pytest.raises(InvalidInput, match="from_texts takes path and precision"):
        BabelIndexVectorStore.from_texts(TEXTS, BabelIndexEmbeddings(model=use_model), collection="x")


def test_a_store_reopens_with_its_model_and_refuses_another(tmp_path, use_model):
    path = tmp_path / "kept.idx"
    with BabelIndexVectorStore(path, use_model) as first:
        assert first.similarity_search("x", k=1) == [] and first.index is None  # nothing made by a search
        first.add_texts(TEXTS, ids=["v", "p", "s"])
    with BabelIndexVectorStore(path) as again:  # the index's own model
        assert again.similarity_search("volcano", k=1)[0].id == "v"
        assert again.embeddings.embed_query("x") == BabelIndexEmbeddings(model=use_model).embed_query("x")
    with pytest.raises(ModelMismatch):
        BabelIndexVectorStore(path, HashingEmbedder())


def test_a_langchain_embeddings_builds_an_index_it_alone_can_search(tmp_path):
    fake = DeterministicFakeEmbedding(size=8)
    embedder = LangChainEmbedder(fake)
    assert embedder.name == "langchain:langchain_core.embeddings.fake.DeterministicFakeEmbedding"
    assert embedder.dimension == 8 and embedder.count_tokens(["Hello, world", "海の潮"]) == [3, 3]
    vectors = embedder.embed_documents(["a", "b"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1)
    with BabelIndexVectorStore(tmp_path / "fake.idx", fake) as store:
        store.add_texts(["alpha", "beta"], ids=["a", "b"])
        assert store.embeddings is fake
    with (
        Index.open(tmp_path / "fake.idx") as index,
        pytest.raises(ModelNotAvailable, match="Pass the same embeddings again"),
    ):
        index.search("alpha", k=1)
    with Index.open(tmp_path / "fake.idx", model=LangChainEmbedder(fake)) as index:
        assert index.search("alpha", k=1)[0].doc_id == "a"
    with pytest.raises(ModelNotAvailable, match="LangChain Embeddings object"):
        load_embedder(embedder.name)
    with pytest.raises(InvalidInput, match="must be a LangChain Embeddings"):
        LangChainEmbedder(object())  # type: ignore[arg-type]


# -- embeddings and model= ----------------------------------------------------------------------
def test_babelindex_embeddings_are_the_models_vectors_as_lists(use_model):
    embeddings = BabelIndexEmbeddings(model=use_model)
    assert embeddings.embedder is use_model
    assert embeddings.embed_query("Vulkan") == pytest.approx(use_model.embed_queries(["Vulkan"])[0].tolist())
    rows = embeddings.embed_documents(TEXTS)
    assert len(rows) == 3 and all(len(r) == 512 and isinstance(r[0], float) for r in rows)
    assert embeddings.embed_documents([]) == []
    with pytest.raises(InvalidInput, match="model must be a model name or directory"):
        BabelIndexEmbeddings(model=42)


def test_a_loaded_sentence_transformer_is_a_model(tmp_path, minilm_dir):
    from sentence_transformers import SentenceTransformer

    loaded = SentenceTransformer(str(minilm_dir))
    by_name = load_embedder(str(minilm_dir))
    embedder = to_embedder(loaded)  # crashed with AttributeError wherever model= took it
    assert embedder.name == str(minilm_dir) and embedder.fingerprint() == by_name.fingerprint()
    assert np.allclose(embedder.embed_documents(TEXTS), by_name.embed_documents(TEXTS), atol=1e-5)
    embeddings = BabelIndexEmbeddings(model=loaded)
    assert embeddings.embed_query("volcano") == pytest.approx(by_name.embed_queries(["volcano"])[0].tolist(), abs=1e-5)
    with BabelIndexVectorStore(tmp_path / "st.idx", loaded) as store:
        store.add_texts(["Volcanoes erupt when magma rises.", "Plants turn light into sugar."], ids=["v", "p"])
        assert store.similarity_search("eruption", k=1)[0].id == "v"
    with Index.open(tmp_path / "st.idx") as index:  # recorded by name: loads it again by itself
        assert index.model_name == str(minilm_dir) and index.search("eruption", k=1)[0].doc_id == "v"
    with Index.open(tmp_path / "st.idx", model=to_embedder(loaded)) as index:
        assert index.search("eruption", k=1)[0].doc_id == "v"
    with Index.open(tmp_path / "st.idx", model=loaded) as opened:  # model= takes it everywhere
        assert opened.search("eruption", k=1)[0].doc_id == "v"
    with Index.create(tmp_path / "created.idx", model=loaded) as created:
        created.upsert([{"id": "v", "text": "Volcanoes erupt when magma rises."}])
        assert created.search("eruption", k=1)[0].doc_id == "v"


# -- packaging ----------------------------------------------------------------------------------
def test_missing_langchain_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # import langchain_core now fails
    for name in [n for n in sys.modules if n.startswith(("langchain_core.", "search.langchain"))]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(
        ImportError,
        match=r"pip install langchain-core \(or, from a babelindex checkout, pip install '\.\[langchain\]'\)",
    ) as info:
        importlib.import_module("search.langchain.vectorstore")
    assert isinstance(info.value, BabelIndexError)


def test_import_search_does_not_import_langchain():
    code = "import search, search.rag, sys; print('langchain_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
