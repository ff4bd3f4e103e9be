"""Embedders: mean pooling of raw checkpoints, normalisation, token counts, errors, fingerprints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from indexer.embedding import describe, is_available, load_embedder, same_model
from indexer.embedding.base import check_vectors
from store import ModelNotAvailable


def test_a_raw_checkpoint_gets_mean_pooling_over_the_attention_mask(tiny_model_dir, tiny_model):
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["Ein kurzer Satz.", "A somewhat longer sentence with more tokens in it than the first."]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = tiny_model.embed_documents(texts)
    assert got.dtype == np.float32 and got.shape == (2, 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert tiny_model.fingerprint()["pooling"] == "mean"


def test_token_limits_and_counts_use_the_models_own_tokenizer(tiny_model_dir, tiny_model, use_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Tokenisierung zählt Wortstücke, nicht Wörter."
    assert tiny_model.count_tokens([text]) == [len(tok(text, add_special_tokens=False)["input_ids"])]
    assert tiny_model.max_tokens == 510  # 512 positions minus [CLS] and [SEP]
    assert use_model.max_tokens == 256 and use_model.dimension == 512
    assert use_model.count_tokens(["", "hello world"])[0] == 0


def test_use_multilingual_vectors_are_unit_float32(use_model):
    vecs = use_model.embed_queries(["Hallo Welt", "你好，世界", "مرحبا بالعالم"])
    assert vecs.dtype == np.float32 and vecs.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_a_model_neither_cached_nor_reachable_names_the_three_ways_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotAvailable) as err:
        load_embedder("distilbert-base-multilingual-cased")
    message = str(err.value)
    assert "'distilbert-base-multilingual-cased' is not in the local Hugging Face cache" in message
    assert "network" in message and "--model /path/to/model" in message and "--model use-multilingual" in message
    assert is_available("distilbert-base-multilingual-cased") is False
    assert is_available("use-multilingual") is True


def test_fingerprint_tells_models_apart(tiny_model, use_model, minilm_dir):
    record = describe(tiny_model)
    assert same_model(record, tiny_model)
    assert not same_model(record, use_model)
    minilm = load_embedder(str(minilm_dir))
    assert not same_model(describe(minilm), tiny_model)
    forged = dataclasses.replace(record, probe=tuple(-x for x in record.probe))  # same name and shape, other weights
    assert not same_model(forged, tiny_model)


def test_unusable_model_output_is_marked_not_normalised():
    good = np.array([[3.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(check_vectors(good, ["a"]), [[0.6, 0.8]])
    out = check_vectors(
        np.array([[np.nan, 1.0], [np.inf, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=np.float32), list("abcd")
    )
    assert np.isnan(out[:3]).all()
    np.testing.assert_allclose(out[3], [0.0, 1.0])


def test_token_budget_batches_cover_every_text_once_and_stay_within_the_budget():
    from indexer.embedding.base import token_budget_batches

    rng = np.random.default_rng(0)
    counts = [*rng.integers(1, 300, size=1000).tolist(), 5000]
    batches = token_budget_batches(counts, budget=4096, max_batch=64)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(counts)))
    for batch in batches:
        longest = max(counts[i] for i in batch)
        assert len(batch) <= 64
        assert len(batch) * longest <= 4096 or len(batch) == 1
    lengths = [counts[i] for i in seen]
    assert lengths == sorted(lengths, reverse=True)  # longest first, so padding stays low


def test_batched_embedding_equals_one_text_at_a_time(tiny_model):
    texts = ["short", "a much longer text " * 30, "中文的句子。" * 10, "mittel lang, aber nicht sehr"] * 5
    together = tiny_model.embed_documents(texts)
    alone = np.stack([tiny_model.embed_documents([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
