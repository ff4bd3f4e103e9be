"""The model registry: names, `indexer models`, Hub ids from the local cache, fingerprints, mismatches.

The Hub is faked with a local Hugging Face cache (``HF_HUB_CACHE``) holding saved tiny
models under the registry's Hub ids, laid out as a download would leave them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.embedding import REGISTRY, describe, display, is_available, load_embedder, resolve
from search import Index, ModelMismatch, ModelNotAvailable, build_index
from tests.helpers import fake_hub

COMMIT = "feedfacefeedfacefeedfacefeedfacefeedface"
NAMES = [
    "distilmbert",
    "mbert",
    "distilbert-en",
    "distiluse",
    "minilm-multi",
    "mpnet-multi",
    "labse",
    "me5-small",
    "me5-base",
    "me5-large",
    "bge-m3",
    "use-multilingual",
]


@pytest.fixture(scope="module")
def st_dense_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A sentence-transformers model with its own pooling and a dense layer (32 → 16 dims)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    torch.manual_seed(1)
    body = Transformer(str(tiny_model_dir))
    modules = [body, Pooling(32, pooling_mode="cls"), Dense(32, 16, activation_function=torch.nn.Tanh())]
    path = tmp_path_factory.mktemp("st-dense")
    SentenceTransformer(modules=modules).save(str(path))
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_model_dir, st_dense_dir) -> Path:
    """The Hub ids of ``distilmbert`` (a raw checkpoint) and ``distiluse`` (an ST model) cached locally."""
    cache = fake_hub(
        tmp_path / "hub",
        {REGISTRY["distilmbert"].source: tiny_model_dir, REGISTRY["distiluse"].source: st_dense_dir},
        commit=COMMIT,
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_indexer_models_lists_the_names_with_their_facts(hub):
    result = CliRunner().invoke(cli, ["models"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["name", "model", "languages"] and "prompts" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1 : 1 + len(NAMES)]}
    assert list(rows) == NAMES
    assert rows["distiluse"][1:5] == ["sentence-transformers/distiluse-base-multilingual-cased-v2", "50+", "512", "128"]
    assert rows["distilmbert"][-1] == "yes" and rows["distiluse"][-1] == "yes"  # in the (fake) local cache
    assert rows["mbert"][-1] == "no" and rows["use-multilingual"][-1] == "yes"
    # Today's multilingual retrievers: dimension, token limit, size and prompts.
    assert rows["me5-small"][1:5] == ["intfloat/multilingual-e5-small", "100", "384", "512"]
    assert rows["me5-base"][3] == "768" and rows["me5-large"][3] == "1024"
    assert "'query: ' / 'passage: '" in next(line for line in lines if line.startswith("me5-large"))
    assert rows["bge-m3"][1:5] == ["BAAI/bge-m3", "100+", "1024", "8192"] and rows["bge-m3"][7] == "-"
    assert rows["labse"][1:5] == ["sentence-transformers/LaBSE", "109", "768", "256"]
    assert rows["mpnet-multi"][1:5] == [
        "sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
        "50+",
        "768",
        "128",
    ]
    # Which to pick for cross-lingual retrieval, and the published figures it rests on.
    advice = result.output[result.output.index("For cross-lingual retrieval") :]
    assert [line.split()[0] for line in advice.splitlines()[1:6]] == [
        "me5-base",
        "me5-small",
        "bge-m3",
        "labse",
        "use-multilingual",
    ]
    assert "arXiv:2007.01852: 83.7% bitext retrieval accuracy on Tatoeba" in advice
    assert "arXiv:2402.03216" in advice and "arXiv:2402.05672" in advice

    listed = json.loads(CliRunner().invoke(cli, ["models", "--json"], catch_exceptions=False).output)
    assert [m["name"] for m in listed] == NAMES
    by_name = {m["name"]: m for m in listed}
    assert by_name["distilmbert"] == {
        "name": "distilmbert",
        "source": "distilbert-base-multilingual-cased",
        "languages": "104",
        "dimension": 768,
        "max_tokens": 512,
        "size_mb": 542,
        "params_m": 135,
        "why": by_name["distilmbert"]["why"],
        "query_prompt": "",
        "document_prompt": "",
        "evidence": by_name["distilmbert"]["evidence"],
        "backend": "sentence-transformers",
        "available": True,
    }
    assert by_name["minilm-multi"]["dimension"] == 384 and by_name["minilm-multi"]["available"] is False
    assert (by_name["me5-base"]["query_prompt"], by_name["me5-base"]["document_prompt"]) == ("query: ", "passage: ")


def test_a_registry_name_resolves_through_the_local_hub_cache(hub, tiny_model_dir):
    assert resolve("distilmbert") == "distilbert-base-multilingual-cased"
    assert resolve(str(tiny_model_dir)) == str(tiny_model_dir) and resolve("org/any-model") == "org/any-model"
    with pytest.raises(ModelNotAvailable, match="there is no model directory at /some/dir"):
        resolve("/some/dir")  # a path with nothing there, never asked of the Hub
    embedder = load_embedder("distilmbert")
    assert embedder.name == "distilmbert" and embedder.source == "distilbert-base-multilingual-cased"
    fp = embedder.fingerprint()
    assert fp["revision"] == COMMIT  # the snapshot's commit, not a guess
    assert fp["pooling"] == "mean"  # a raw checkpoint gets mean pooling
    direct = load_embedder(str(tiny_model_dir))
    text = ["Ein kurzer Satz über Vulkane."]
    np.testing.assert_allclose(embedder.embed_documents(text), direct.embed_documents(text), atol=1e-6)
    # The Hub id itself works too, and so does is_available for names and ids.
    assert load_embedder("distilbert-base-multilingual-cased").dimension == 32
    assert is_available("distilmbert") and is_available("distiluse")


def test_a_sentence_transformers_model_keeps_its_own_pooling_and_dense_layers(hub):
    embedder = load_embedder("distiluse")
    assert embedder.dimension == 16  # the dense layer's output, not the transformer's 32
    assert embedder.fingerprint()["pooling"] == "cls"
    vecs = embedder.embed_documents(["bees and pollen", "Bienen und Pollen"])
    assert vecs.shape == (2, 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_an_unavailable_registry_model_names_itself_and_its_hub_id(hub):
    with pytest.raises(ModelNotAvailable) as err:
        load_embedder("mbert")
    message = str(err.value)
    assert "'mbert' (bert-base-multilingual-cased) is not in the local Hugging Face cache" in message
    assert "--model use-multilingual" in message


def test_opening_an_index_with_another_model_names_both(hub, multilingual_corpus, tmp_path):
    index = tmp_path / "idx"
    report = build_index(multilingual_corpus, index, model="distilmbert")
    assert report.model == "distilmbert"
    with pytest.raises(ModelMismatch) as err:
        Index.open(index, model="distiluse")
    message = str(err.value)
    assert "built with the model 'distilmbert' (distilbert-base-multilingual-cased) (32 dimensions)" in message
    assert "'distiluse' (sentence-transformers/distiluse-base-multilingual-cased-v2) (16 dimensions)" in message
    assert "omit the model" in message

    result = CliRunner().invoke(cli, ["build", str(multilingual_corpus), "--index", str(index), "--model", "distiluse"])
    assert result.exit_code == 1
    assert "'distilmbert' (distilbert-base-multilingual-cased)" in result.output
    assert "'distiluse' (sentence-transformers/distiluse-base-multilingual-cased-v2)" in result.output
    assert "--model 'distilmbert'" in result.output

    # The same weights under the Hub id are the same model: searching works.
    with Index.open(index, model="distilbert-base-multilingual-cased") as opened:
        assert opened.search("Vulkan", k=1)


def test_the_recorded_fingerprint_names_the_source_and_revision(hub, multilingual_corpus, tmp_path):
    build_index(multilingual_corpus, tmp_path / "idx", model="distiluse")
    with Index.open(tmp_path / "idx") as index:
        record = index.model_record.to_json()
    assert {k: record[k] for k in ("name", "source", "backend", "revision", "pooling", "dimension")} == {
        "name": "distiluse",
        "source": "sentence-transformers/distiluse-base-multilingual-cased-v2",
        "backend": "sentence-transformers",
        "revision": COMMIT,
        "pooling": "cls",
        "dimension": 16,
    }
    assert len(record["probe"]) == 16
    assert display("distiluse") == "'distiluse' (sentence-transformers/distiluse-base-multilingual-cased-v2)"
    assert display("some/other-model") == "'some/other-model'"
    assert describe(load_embedder("distiluse")).probe == pytest.approx(record["probe"], abs=1e-5)
