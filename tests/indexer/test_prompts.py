"""Model prompts: applied as sentence-transformers applies them in every precision, counted in
the chunk limit, recorded in the index and refused when they change.

The model is the tiny random DistilBERT saved as a sentence-transformers model whose
``config_sentence_transformers.json`` holds ``{"query": "query: ", "document": "passage: "}``.
The references are ``SentenceTransformer.encode_document`` / ``encode_query`` on a separately
loaded copy, run in the same arithmetic as babelindex's path: fp32 as it is, bf16 under
``torch.autocast`` (what babelindex's bf16 layers reproduce), int8 with the transformer body
replaced by babelindex's int8 ONNX export, ov-bf16 with it replaced by babelindex's OpenVINO
model (so that only the prompt handling, tokenization and pooling are compared). Activations are quantized per batch in int8, so both sides embed the
texts in one batch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.embedding import load_embedder, to_embedder
from indexer.embedding import precision as prec
from indexer.embedding.prompts import Prompts, model_prompts
from search import Index, InvalidInput, ModelMismatch
from store import IndexDir
from tests.helpers import eval_texts

PROMPTS = {"query": "query: ", "document": "passage: "}
MAX_SEQ = 64
"""The saved models read at most 64 tokens: chunks at the limit stay short and fast."""
MIN_COSINE = 0.9999
DOCS = [r["text"] for r in eval_texts("tatoeba-deu", "corpus")[:6]]
QUERIES = [r["text"] for r in eval_texts("tatoeba-deu", "queries")[:4]]


def _save(tiny_model_dir: Path, path: Path, prompts: dict[str, str] | None, *, include_prompt: bool = True) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    body = Transformer(str(tiny_model_dir), max_seq_length=MAX_SEQ)
    pooling = Pooling(body.get_embedding_dimension(), pooling_mode="mean", include_prompt=include_prompt)
    SentenceTransformer(modules=[body, pooling], prompts=prompts).save(str(path))
    return path


@pytest.fixture(scope="module")
def prompted_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return _save(tiny_model_dir, tmp_path_factory.mktemp("prompted"), PROMPTS)


@pytest.fixture(scope="module")
def excluding_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """Prompts left out of the mean (``include_prompt=False``, as INSTRUCTOR-like models do)."""
    prompts = {"query": "Represent the question: ", "document": "Represent the passage: "}
    return _save(tiny_model_dir, tmp_path_factory.mktemp("excluding"), prompts, include_prompt=False)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _reference(model_dir: Path, precision: str, cache: Path):
    """``(encode_document(DOCS), encode_query(QUERIES))`` of sentence-transformers itself."""
    import torch
    from sentence_transformers import SentenceTransformer

    from indexer.embedding.onnx_backend import OnnxBody
    from indexer.embedding.openvino_backend import OpenVinoBody

    model = SentenceTransformer(str(model_dir), device="cpu")
    if precision in ("int8", "ov-bf16"):
        # The export babelindex made and ran.
        if precision == "int8":
            (path,) = cache.glob("models/*/model.int8.onnx")
            body: Any = OnnxBody(path)
        else:
            (path,) = cache.glob("models/*/openvino/model.xml")
            body = OpenVinoBody(path)

        def forward(features, **kwargs):
            features["token_embeddings"] = body(features)
            return features

        model[0].forward = forward
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return model.encode_document(DOCS, batch_size=64), model.encode_query(QUERIES, batch_size=64)


def _stored(path: Path) -> tuple[list[str], np.ndarray]:
    """The chunk texts and their stored vectors, by chunk id."""
    with IndexDir.open_for_reading(path) as idx:
        ids = idx.meta.chunk_ids()
        hits = idx.meta.hits(ids)
        return [hits[int(i)].text for i in ids], idx.meta.vectors(ids, idx.model_record().dimension)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of its own, so that the int8 export of the test is the only one there."""
    monkeypatch.setenv("BABELINDEX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "ov-bf16", "int8"])
def test_stored_and_query_vectors_are_sentence_transformers_own(precision, prompted_dir, cache, tmp_path, monkeypatch):
    if precision == "ov-bf16" and prec.unsupported_reason("ov-bf16"):
        pytest.skip(prec.unsupported_reason("ov-bf16"))
    if precision == "bf16" and prec.unsupported_reason("bf16"):
        # Emulated where the CPU has no bf16 instructions: slower, the same arithmetic.
        monkeypatch.setattr("indexer.embedding.transformer.unsupported_reason", lambda p: None)
    with Index.create(tmp_path / "idx", model=str(prompted_dir), precision=precision) as index:
        index.upsert([{"id": f"d{i}", "text": text} for i, text in enumerate(DOCS)])
        queries = index.embed(QUERIES)
        assert index.model_record.document_prompt == "passage: " and index.model_record.query_prompt == "query: "
    texts, stored = _stored(tmp_path / "idx")
    assert texts == DOCS  # one chunk per document, the text itself (the prompt is not stored)
    ref_docs, ref_queries = _reference(prompted_dir, precision, cache)
    assert _cos(stored, ref_docs).min() >= MIN_COSINE
    assert _cos(queries, ref_queries).min() >= MIN_COSINE
    # The bar means something: the same texts without their prompts are far from these.
    plain = load_embedder(str(prompted_dir), precision="fp32", query_prompt="", document_prompt="")
    assert _cos(plain.embed_documents(DOCS), ref_docs).min() < 0.99


@pytest.mark.parametrize("precision", ["fp32", "ov-bf16", "int8"])
def test_prompt_tokens_are_left_out_of_the_mean_where_the_pooling_says_so(precision, excluding_dir, cache):
    if prec.unsupported_reason(precision):
        pytest.skip(prec.unsupported_reason(precision))
    from sentence_transformers import SentenceTransformer

    embedder = load_embedder(str(excluding_dir), precision=precision)
    got_docs, got_queries = embedder.embed_documents(DOCS), embedder.embed_queries(QUERIES)
    ref_docs, ref_queries = _reference(excluding_dir, precision, cache)
    assert _cos(got_docs, ref_docs).min() >= MIN_COSINE and _cos(got_queries, ref_queries).min() >= MIN_COSINE
    including = SentenceTransformer(str(excluding_dir), device="cpu")
    including.set_pooling_include_prompt(True)
    assert _cos(got_docs, including.encode_document(DOCS)).min() < 0.99  # the prompt really was left out


def test_a_changed_prompt_is_refused_as_another_model(prompted_dir, tmp_path, multilingual_corpus):
    from indexer.build import build_index

    index = tmp_path / "idx"
    build_index(multilingual_corpus, index, model=str(prompted_dir))
    with pytest.raises(ModelMismatch) as err:
        build_index(multilingual_corpus, index, model=str(prompted_dir), document_prompt="doc: ")
    message = str(err.value)
    assert "the document prompt 'passage: ', not 'doc: '" in message
    assert "Pass --document-prompt 'passage: '" in message and "rebuild" in message
    with pytest.raises(ModelMismatch, match="the query prompt 'query: ', not 'q: '"):
        Index.open(index, query_prompt="q: ")  # refused at once, before any model is loaded
    with pytest.raises(ModelMismatch, match="the query prompt 'query: ', not ''"):
        Index.open(index, model=load_embedder(str(prompted_dir), query_prompt=""))
    with pytest.raises(InvalidInput, match="whose document prompt is 'passage: '"):
        to_embedder(load_embedder(str(prompted_dir)), document_prompt="")  # a loaded model keeps its prompts
    # The recorded prompts are the default everywhere: the same prompts given again work.
    with Index.open(index, query_prompt="query: ") as opened:
        assert opened.search("Vulkan", k=1)
    assert build_index(multilingual_corpus, index, document_prompt="passage: ").documents_unchanged == 6

    result = CliRunner().invoke(cli, ["search", "Vulkan", "--index", str(index), "--query-prompt", "question: "])
    assert result.exit_code == 1 and "--query-prompt 'query: '" in result.output


def test_an_index_from_before_prompts_opens_as_built(prompted_dir, tiny_model_dir, tmp_path, multilingual_corpus):
    """Indexes made before prompts were recorded hold no prompt keys: with a model that has no
    prompts they open as before; with one that has some, babelindex says how they were built."""
    from indexer.build import build_index

    def forget_prompts(index: Path) -> None:
        with IndexDir.open_for_writing(index) as idx:
            record = idx.model_record()
            idx.record_model(dataclasses.replace(record, query_prompt=None, document_prompt=None))
            assert "query_prompt" not in idx.model_record().to_json()

    plain = tmp_path / "plain"
    build_index(multilingual_corpus, plain, model=str(tiny_model_dir))
    forget_prompts(plain)
    with Index.open(plain) as opened:
        assert opened.search("Vulkan", k=1)

    old = tmp_path / "old"
    build_index(multilingual_corpus, old, model=str(prompted_dir), query_prompt="", document_prompt="")
    forget_prompts(old)
    with Index.open(old) as opened, pytest.raises(ModelMismatch) as err:
        opened.search("Vulkan", k=1)
    assert "built without prompts" in str(err.value) and "--query-prompt '' --document-prompt ''" in str(err.value)
    with Index.open(old, query_prompt="", document_prompt="") as opened:
        assert opened.search("Vulkan", k=1)


def test_the_chunk_limit_leaves_room_for_the_document_prompt(prompted_dir, tmp_path):
    from indexer.build import build_index
    from indexer.writer import check_chunk_tokens

    embedder = load_embedder(str(prompted_dir))
    prompt_tokens = embedder.count_tokens(["passage: "])[0]
    assert prompt_tokens >= 2 and embedder.max_tokens == MAX_SEQ - 2 - prompt_tokens  # [CLS], [SEP], the prompt
    assert load_embedder(str(prompted_dir), document_prompt="").max_tokens == MAX_SEQ - 2
    with pytest.raises(InvalidInput, match=rf"reads after its document prompt 'passage: ' \({embedder.max_tokens} "):
        check_chunk_tokens(embedder.max_tokens + 1, embedder)

    long = " ".join(r["text"] for r in eval_texts("tatoeba-rus", "corpus")[:40])
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "long.txt").write_text(long, encoding="utf-8")
    build_index(tmp_path / "corpus", tmp_path / "idx", model=str(prompted_dir), chunk_tokens=embedder.max_tokens)
    texts, _ = _stored(tmp_path / "idx")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(prompted_dir))
    lengths = [len(tokenizer("passage: " + t)["input_ids"]) for t in texts]
    assert len(texts) > 5 and max(lengths) <= MAX_SEQ  # prompt + chunk: never cut by the model
    assert max(lengths) >= MAX_SEQ - 4  # and the chunks do use the room there is


def test_the_e5_convention_and_what_counts_as_a_models_own_prompts(tiny_model_dir, tmp_path):
    class Loaded:
        def __init__(self, prompts, default=None):
            self.prompts, self.default_prompt_name = prompts, default

    # sentence-transformers fills in an empty "document" placeholder; a "passage" prompt counts.
    assert model_prompts(Loaded({"query": "q: ", "document": "", "passage": "p: "}), "x", "x") == Prompts(
        "q: ", "p: ", "model"
    )
    assert model_prompts(Loaded({"query": "", "document": "", "sts": "s: "}, "sts"), "x", "x") == Prompts(
        "s: ", "s: ", "model"
    )
    assert model_prompts(Loaded({"query": "", "document": ""}), "me5-base", "intfloat/multilingual-e5-base") == Prompts(
        "query: ", "passage: ", "registry"
    )
    assert model_prompts(Loaded({}), "org/multilingual-e5-large", "org/multilingual-e5-large").origin == "e5 convention"
    assert model_prompts(Loaded({}), "intfloat/multilingual-e5-large-instruct", "x") == Prompts()
    e5 = _save(tiny_model_dir, tmp_path / "multilingual-e5-small", None)  # a local copy without prompts
    embedder = load_embedder(str(e5))
    assert (embedder.prompts.query, embedder.prompts.document) == ("query: ", "passage: ")
    assert embedder.fingerprint()["document_prompt"] == "passage: "
    with pytest.raises(InvalidInput, match="use-multilingual takes no prompts"):
        load_embedder("use-multilingual", query_prompt="query: ")


def test_the_cli_records_the_prompts_given(prompted_dir, tmp_path, multilingual_corpus):
    index = tmp_path / "idx"
    args = ["build", str(multilingual_corpus), "--index", str(index), "--model", str(prompted_dir)]
    result = CliRunner().invoke(cli, [*args, "--document-prompt", "", "--query-prompt", "search: ", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["chunks_embedded"] >= 6
    with IndexDir.open_for_reading(index) as idx:
        record = idx.model_record()
    assert (record.query_prompt, record.document_prompt) == ("search: ", "")
    result = CliRunner().invoke(cli, ["search", "Vulkan", "--index", str(index), "--json", "-k", "1"])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 1
