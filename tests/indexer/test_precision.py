"""Precision: fp32/bf16/ov-bf16/int8 agreement, ``auto``'s choice and its cache, token-budget batches."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.embedding import load_embedder
from indexer.embedding import precision as prec
from indexer.embedding.precision import Trial, agreement, choose
from indexer.embedding.transformer import TOKEN_BUDGET
from store import InvalidInput
from tests.helpers import eval_texts


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty ``$BABELINDEX_CACHE`` for the test."""
    monkeypatch.setenv("BABELINDEX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_precision_values_are_checked_and_default_from_the_environment(monkeypatch):
    assert prec.requested("bf16") == "bf16"
    monkeypatch.setenv("BABELINDEX_PRECISION", "int8")
    assert prec.requested(None) == "int8"
    monkeypatch.delenv("BABELINDEX_PRECISION")
    assert prec.requested(None) == "auto"
    with pytest.raises(InvalidInput, match="unknown precision 'fp16'; use one of auto, fp32, bf16, ov-bf16, int8"):
        prec.requested("fp16")
    with pytest.raises(InvalidInput, match="fp32 only"):
        load_embedder("use-multilingual", precision="int8")


def test_agreement_is_the_mean_and_minimum_cosine_per_text():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 64))
    assert agreement(ref, ref * 3).mean == pytest.approx(1.0) and agreement(ref, ref).passed
    noisy = ref + rng.normal(scale=0.02, size=ref.shape)
    a = agreement(ref, noisy)
    assert a.mean == pytest.approx(_cos(ref, noisy).mean()) and a.min == pytest.approx(_cos(ref, noisy).min())
    assert 0.99 < a.min < a.mean < 0.9999
    broken = ref.copy()
    broken[7] = -broken[7]  # one text way off: the mean may still be high, the minimum is not
    assert agreement(ref, broken).min < 0 and not agreement(ref, broken).passed
    assert not prec.Agreement(mean=0.9989, min=0.995).passed and not prec.Agreement(mean=0.9995, min=0.989).passed
    assert prec.Agreement(mean=0.999, min=0.99).passed


def test_auto_picks_the_fastest_precision_that_agrees_separately_for_documents_and_queries():
    trials = [
        Trial("fp32", docs_seconds=4.0, query_ms=9.0),
        Trial("bf16", docs_seconds=1.5, query_ms=12.0, cos_mean=0.99995, cos_min=0.9999),
        Trial("int8", docs_seconds=1.0, query_ms=4.0, cos_mean=0.988, cos_min=0.96),  # fastest, disagrees
    ]
    assert choose(trials) == {"documents": "bf16", "queries": "fp32"}
    trials[2] = Trial("int8", 1.0, 4.0, cos_mean=0.9995, cos_min=0.995)
    assert choose(trials) == {"documents": "int8", "queries": "int8"}
    trials[2] = Trial("int8", float("inf"), float("inf"), 0.0, 0.0, error="ImportError: no onnxruntime")
    assert choose(trials) == {"documents": "bf16", "queries": "fp32"}


def test_auto_measures_once_then_reads_the_cache(cache, tiny_model_dir, monkeypatch):
    calls = []
    real_measure = prec.measure

    def counting(make_runner, candidates, **kwargs):
        calls.append(list(candidates))
        return real_measure(make_runner, candidates, **kwargs)

    monkeypatch.setattr("indexer.embedding.transformer.measure", counting)
    first = load_embedder(str(tiny_model_dir), precision="auto")
    assert len(calls) == 1 and "fp32" not in calls[0]
    records = list(cache.glob("models/*/precision.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["choice"] == first.precision == choose([Trial(**t) for t in _finite(record["trials"])])
    assert next(t["precision"] for t in record["trials"]) == "fp32"
    assert record["cpu"] == prec.cpu_flags()
    for trial in record["trials"]:
        if trial["precision"] in first.precision.values():
            assert trial["cos_mean"] >= prec.AGREEMENT_MEAN and trial["cos_min"] >= prec.AGREEMENT_MIN

    second = load_embedder(str(tiny_model_dir), precision="auto")
    assert len(calls) == 1 and second.precision == first.precision  # read, not measured again
    text = ["Der Zug nach Mailand fährt um halb neun."]
    np.testing.assert_allclose(first.embed_documents(text), second.embed_documents(text), atol=1e-6)


def _finite(rows):
    return [
        {k: (float("inf") if v is None and k in ("docs_seconds", "query_ms") else v) for k, v in r.items()}
        for r in rows
    ]


def test_the_cache_key_follows_the_models_files_and_the_cpu(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    key = prec.model_cache_key(folder, {"pooling": "mean"})
    assert prec.model_cache_key(folder, {"pooling": "mean"}) == key
    assert prec.model_cache_key(folder, {"pooling": "cls"}) != key
    os.utime(folder / "config.json", ns=(1, 1))  # rewritten weights: same name, new time
    assert prec.model_cache_key(folder, {"pooling": "mean"}) != key
    key = prec.model_cache_key(folder, {"pooling": "mean"})
    monkeypatch.setattr(prec, "cpu_flags", lambda: ["avx2"])
    assert prec.model_cache_key(folder, {"pooling": "mean"}) != key


def test_a_cached_decision_is_used_as_recorded(cache, tiny_model_dir, monkeypatch):
    fp32 = load_embedder(str(tiny_model_dir), precision="fp32")
    key = fp32._cache_key()
    trials = [Trial("fp32", 3.0, 20.0), Trial("bf16", 1.0, 30.0, 0.99999, 0.9999)]
    prec.save_decision(key, trials, {"model": "test"})
    monkeypatch.setattr("indexer.embedding.transformer.measure", lambda *a: pytest.fail("measured again"))
    auto = load_embedder(str(tiny_model_dir), precision="auto")
    assert auto.precision == {"documents": "bf16", "queries": "fp32"}
    assert auto.calibration["trials"][1]["precision"] == "bf16"


def test_precisions_the_cpu_cannot_run_are_refused_or_skipped(cache, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(prec, "cpu_flags", lambda: ["avx2"])
    with pytest.raises(InvalidInput, match="bf16 needs a CPU with AVX512-BF16 or AMX"):
        load_embedder(str(tiny_model_dir), precision="bf16")
    seen = []
    monkeypatch.setattr(
        "indexer.embedding.transformer.measure",
        lambda make, candidates, **kwargs: seen.append(candidates) or [Trial("fp32", 1.0, 1.0)],
    )
    assert load_embedder(str(tiny_model_dir), precision="auto").precision == {"documents": "fp32", "queries": "fp32"}
    assert "bf16" not in seen[0]


def test_no_forward_pass_exceeds_the_token_budget(tiny_model, monkeypatch):
    shapes = []
    real = tiny_model._forward

    def spy(features, precision):
        shapes.append(tuple(features["input_ids"].shape))
        return real(features, precision)

    monkeypatch.setattr(tiny_model, "_forward", spy)
    rng = np.random.default_rng(1)
    words = ["Vulkan", "bricht", "aus", "Magma", "steigt", "火山", "噴火", "лава", "пепел"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 300, size=150)]
    vecs = tiny_model.embed_documents(texts)
    assert vecs.shape == (150, 32)
    assert sum(b for b, _ in shapes) == 150 and len(shapes) > 1
    assert all(b * s <= TOKEN_BUDGET or b == 1 for b, s in shapes)
    assert max(s for _, s in shapes) <= 512


def test_bf16_agrees_with_fp32_on_a_real_model(minilm_dir):
    if prec.unsupported_reason("bf16"):
        pytest.skip(prec.unsupported_reason("bf16"))
    texts = [r["text"] for r in eval_texts("tatoeba-fra", "corpus")[:100]]
    texts += [" ".join(texts[i : i + 10]) for i in range(0, 100, 10)]  # long ones too
    fp32 = load_embedder(str(minilm_dir), precision="fp32").embed_documents(texts)
    bf16 = load_embedder(str(minilm_dir), precision="bf16")
    assert bf16.precision == {"documents": "bf16", "queries": "bf16"}
    a = agreement(fp32, bf16.embed_documents(texts))
    assert a.mean >= prec.AGREEMENT_MEAN and a.min >= prec.AGREEMENT_MIN, a
    b = agreement(fp32[:20], bf16.embed_queries(texts[:20]))  # the query path too
    assert b.passed, b


def test_int8_runs_through_onnx_runtime_and_is_exported_once(cache, tiny_model_dir, monkeypatch):
    int8 = load_embedder(str(tiny_model_dir), precision="int8")
    assert int8.precision == {"documents": "int8", "queries": "int8"}
    exported = list(cache.glob("models/*/model.int8.onnx"))
    assert len(exported) == 1
    texts = ["Der Zug fährt ab.", "火山の噴火", "Шахматы — настольная игра для двух игроков. " * 20]
    vecs = int8.embed_documents(texts)
    assert vecs.dtype == np.float32 and vecs.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    fp32 = load_embedder(str(tiny_model_dir), precision="fp32").embed_documents(texts)
    assert agreement(fp32, vecs).min > 0.95  # quantized, so close but not equal
    assert not np.allclose(fp32, vecs, atol=1e-6)

    mtime = exported[0].stat().st_mtime_ns
    monkeypatch.setattr("indexer.embedding.onnx_backend.export_int8", lambda *a: pytest.fail("exported again"))
    again = load_embedder(str(tiny_model_dir), precision="int8")
    # Activations are quantized per batch, so compare like with like: the same batch.
    np.testing.assert_allclose(again.embed_documents(texts), vecs, atol=1e-6)
    assert exported[0].stat().st_mtime_ns == mtime


def test_ov_bf16_runs_the_models_own_pooling_on_openvinos_body_and_converts_once(cache, tiny_model_dir, monkeypatch):
    if prec.unsupported_reason("ov-bf16"):
        pytest.skip(prec.unsupported_reason("ov-bf16"))
    import sys

    sent: list = []
    telemetry = sys.modules.get("openvino_telemetry")
    if telemetry is not None:  # imported before babelindex could block it: converting swaps in the stub
        for method in ("send_event", "start_session", "send_error"):
            monkeypatch.setattr(telemetry.Telemetry, method, lambda *a, **k: sent.append(a))
    ov = load_embedder(str(tiny_model_dir), precision="ov-bf16")
    assert sent == [] and (telemetry is not None or sys.modules["openvino_telemetry"] is None)
    assert ov.precision == {"documents": "ov-bf16", "queries": "ov-bf16"}
    assert len(list(cache.glob("models/*/openvino/model.xml"))) == 1
    texts = ["Der Zug fährt ab.", "火山の噴火", "Шахматы — настольная игра для двух игроков. " * 20]
    vecs = ov.embed_documents(texts)
    assert vecs.dtype == np.float32 and vecs.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    fp32 = load_embedder(str(tiny_model_dir), precision="fp32")
    assert agreement(fp32.embed_documents(texts), vecs).min >= 0.9999
    assert agreement(fp32.embed_queries(texts[:2]), ov.embed_queries(texts[:2])).min >= 0.9999

    monkeypatch.setattr("indexer.embedding.openvino_backend.convert", lambda *a: pytest.fail("converted again"))
    again = load_embedder(str(tiny_model_dir), precision="ov-bf16")
    np.testing.assert_allclose(again.embed_documents(texts), vecs, atol=1e-6)
    assert list(cache.glob("models/*/openvino/compiled/*"))  # the compiled blob is cached too


def test_ov_bf16_keeps_batches_in_flight_on_its_streams_and_tokenizes_in_the_callers_thread(
    cache, tiny_model_dir, monkeypatch
):
    """Several batches run at once (one per OpenVINO stream), each padded to a multiple of 16
    tokens; the vectors are those of one batch at a time and of each text alone."""
    if prec.unsupported_reason("ov-bf16"):
        pytest.skip(prec.unsupported_reason("ov-bf16"))
    import threading

    from indexer.embedding import openvino_backend

    ov = load_embedder(str(tiny_model_dir), precision="ov-bf16")
    body = ov._bodies["ov-bf16"]
    rng = np.random.default_rng(3)
    words = ["Vulkan", "bricht", "aus", "Magma", "火山", "噴火", "лава", "пепел", "lava"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 120, size=90)]

    threads, runners, shapes, in_flight, most = set(), set(), [], [0], [0]
    preprocess, call, lock = ov._model.preprocess, type(body).__call__, threading.Lock()

    def spy_preprocess(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return preprocess(*args, **kwargs)

    def spy_call(self, features):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            shapes.append(tuple(features["input_ids"].shape))
            runners.add(threading.current_thread().name.split("_")[0])
        try:
            return call(self, features)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(ov._model, "preprocess", spy_preprocess)
    monkeypatch.setattr(type(body), "__call__", spy_call)
    monkeypatch.setattr(body, "parallel", 2)
    together = ov.embed_documents(texts)
    assert threads == {threading.current_thread().name}  # the tokenizer stays in the caller's thread
    assert len(shapes) > 2 and sum(b for b, _ in shapes) == 90
    assert all(b * s <= openvino_backend.TOKEN_BUDGET or b == 1 for b, s in shapes)
    assert runners == {"babelindex-embed"} and most[0] <= 2  # the batches ran on the pool's threads
    monkeypatch.setattr(body, "parallel", 1)
    np.testing.assert_allclose(ov.embed_documents(texts), together, atol=1e-6)
    alone = np.vstack([ov.embed_documents([t]) for t in texts[::9]])  # no padding at all
    assert agreement(alone, together[::9]).min >= 0.9999


def test_padding_to_a_multiple_of_16_tokens_stops_at_the_models_limit():
    from indexer.embedding.openvino_backend import padded_length

    assert [padded_length(n, 512) for n in (1, 16, 17, 100, 500, 512)] == [16, 16, 32, 112, 512, 512]
    assert padded_length(120, 128) == 128 and padded_length(125, 126) == 126 and padded_length(130, 128) == 130


def test_without_openvino_ov_bf16_is_refused_with_the_install_hint_and_auto_skips_it(
    cache, tiny_model_dir, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    monkeypatch.setattr(prec, "cpu_flags", lambda: ["avx512_bf16"])
    with pytest.raises(InvalidInput, match="ov-bf16 needs OpenVINO: pip install openvino"):
        load_embedder(str(tiny_model_dir), precision="ov-bf16")
    seen = []
    monkeypatch.setattr(
        "indexer.embedding.transformer.measure",
        lambda make, candidates, **kwargs: seen.append(candidates) or [Trial("fp32", 1.0, 1.0)],
    )
    load_embedder(str(tiny_model_dir), precision="auto")
    assert "ov-bf16" not in seen[0]
    monkeypatch.setattr(prec, "cpu_flags", lambda: ["avx2"])
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert "AVX512-BF16 or AMX" in prec.unsupported_reason("ov-bf16")


def _fake_runner(seconds: dict[str, float], disagreeing: tuple[str, ...] = ()):
    """``make_runner`` for :func:`prec.measure`: each precision sleeps ``seconds`` per text and
    returns fixed vectors (those of ``disagreeing`` precisions far from fp32's)."""
    import time

    calls: list[str] = []
    base = np.random.default_rng(0).normal(size=(len(prec.calibration_texts()), 8))

    def make(precision):
        calls.append(precision)

        def run(texts):
            time.sleep(seconds[precision] * len(texts))
            out = np.resize(base, (len(texts), base.shape[1]))  # the calibration set, repeated
            if precision in disagreeing:
                out[:, 0] = -out[:, 0]
            return out

        return run

    return make, calls


def test_the_first_auto_measurement_says_what_it_does_and_how_long_first(caplog):
    make, _ = _fake_runner({"fp32": 0.002, "bf16": 0.001, "int8": 0.0015})
    with caplog.at_level("INFO", logger="babelindex.models"):
        trials = prec.measure(make, ["bf16", "int8"], "'distilmbert'")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("measuring precisions for 'distilmbert' on this CPU: fp32, bf16, int8 (about ")
    assert "once per machine and model" in lines[0]
    assert [t.precision for t in trials] == ["fp32", "bf16", "int8"]
    assert any(line.lstrip().startswith("bf16: ") for line in lines[1:])


def test_a_small_models_calibration_documents_are_timed_repeated_to_fill_the_streams(monkeypatch):
    """20 texts are a few batches: a fast model times them repeated, a slow one once."""
    seen: list[int] = []
    make, _ = _fake_runner({"fp32": 0.0002, "bf16": 0.0001})

    def counting(precision):
        run = make(precision)
        return lambda texts: (seen.append(len(texts)), run(texts))[1]

    n = len(prec.calibration_texts())
    monkeypatch.setattr(prec, "PASS_SECONDS", 1e-9)  # as if a pass took far longer than the target
    prec.measure(counting, ["bf16"])
    assert max(seen) == n
    seen.clear()
    monkeypatch.setattr(prec, "PASS_SECONDS", 1e3)  # a pass far shorter than the target
    trials = {t.precision: t for t in prec.measure(counting, ["bf16"])}
    assert max(seen) == n * prec.MAX_REPEAT and trials["bf16"].usable


def test_a_clear_winner_skips_the_costly_candidates_and_a_disagreeing_one_is_timed_once(caplog):
    make, calls = _fake_runner({"fp32": 0.003, "bf16": 0.001, "ov-bf16": 0.0012, "int8": 0.0005}, ("ov-bf16",))
    trials = {t.precision: t for t in prec.measure(make, ["bf16", "ov-bf16", "int8"])}
    assert trials["int8"].error.startswith("skipped: bf16 is ") and calls == ["fp32", "bf16", "ov-bf16"]
    assert not trials["ov-bf16"].usable and trials["ov-bf16"].query_ms == float("inf")
    assert choose(list(trials.values())) == {"documents": "bf16", "queries": "bf16"}
    make, calls = _fake_runner({"fp32": 0.002, "bf16": 0.0015, "int8": 0.0005})  # no clear winner: int8 measured
    trials = {t.precision: t for t in prec.measure(make, ["bf16", "int8"])}
    assert trials["int8"].error is None and choose(list(trials.values()))["documents"] == "int8"


def test_old_cache_entries_are_pruned(cache, monkeypatch):
    import time

    now = time.time()
    for i in range(5):
        prec.save_decision(f"key{i}", [Trial("fp32", 1.0, 1.0)], {})
        os.utime(cache / "models" / f"key{i}", (now - i * 86400, now - i * 86400))
        os.utime(cache / "models" / f"key{i}" / "precision.json", (now - i * 86400, now - i * 86400))
    (cache / "models" / "export-only").mkdir()  # an int8 export without a decision: its folder's time
    os.utime(cache / "models" / "export-only", (now - 40 * 86400, now - 40 * 86400))
    os.utime(cache / "models" / "key4" / "precision.json", (now - 31 * 86400, now - 31 * 86400))
    os.utime(cache / "models" / "key4", (now - 31 * 86400, now - 31 * 86400))
    assert prec.prune(now=now) == ["key4", "export-only"]
    monkeypatch.setattr(prec, "PRUNE_KEEP", 2)
    assert sorted(prec.prune(keep="key3", now=now)) == ["key2"]  # the newest two, and the one in use
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["key0", "key1", "key3"]
    assert prec.cached_decision("key3") is not None  # reading a decision renews its time
    assert (cache / "models" / "key3" / "precision.json").stat().st_mtime >= now


def test_a_damaged_export_is_replaced(cache, tiny_model_dir):
    load_embedder(str(tiny_model_dir), precision="int8")
    (path,) = cache.glob("models/*/model.int8.onnx")
    path.write_bytes(b"not an onnx model")
    again = load_embedder(str(tiny_model_dir), precision="int8")
    assert again.embed_documents(["hallo"]).shape == (1, 32)
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_auto_only_ever_picks_precisions_that_agree_on_real_weights_and_keep_the_top_10(cache, minilm_dir):
    """all-MiniLM-L6-v2, Tatoeba (English corpus, French queries): whatever ``auto`` picks here,
    and bf16 where the CPU has it, agree with fp32 and keep fp32's top-10 lists (overlap >= 98%)."""
    corpus = [r["text"] for r in eval_texts("tatoeba-fra", "corpus")[:500]]
    queries = [r["text"] for r in eval_texts("tatoeba-fra", "queries")[:100]]
    fp32 = load_embedder(str(minilm_dir), precision="fp32")
    ref_docs, ref_q = fp32.embed_documents(corpus), fp32.embed_queries(queries)
    top_ref = np.argsort(-(ref_q @ ref_docs.T), axis=1)[:, :10]
    auto = load_embedder(str(minilm_dir), precision="auto")
    for role in ("documents", "queries"):
        trial = next(t for t in auto.calibration["trials"] if t["precision"] == auto.precision[role])
        assert trial["cos_mean"] >= prec.AGREEMENT_MEAN and trial["cos_min"] >= prec.AGREEMENT_MIN
    embedders = [auto]
    if not prec.unsupported_reason("bf16") and set(auto.precision.values()) != {"bf16"}:
        embedders.append(load_embedder(str(minilm_dir), precision="bf16"))
    for embedder in embedders:
        docs, q = embedder.embed_documents(corpus), embedder.embed_queries(queries)
        assert agreement(ref_docs, docs).passed and agreement(ref_q, q).passed, embedder.precision
        top = np.argsort(-(q @ docs.T), axis=1)[:, :10]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_ref, top, strict=True)])
        assert overlap >= 0.98, (embedder.precision, overlap)


def test_cli_precision_option(tmp_path, tiny_model_dir, multilingual_corpus):
    from indexer.cli import cli

    index = str(tmp_path / "idx")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "build",
            str(multilingual_corpus),
            "--index",
            index,
            "--model",
            str(tiny_model_dir),
            "--precision",
            "bf16" if not prec.unsupported_reason("bf16") else "fp32",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["chunks_embedded"] == 6
    result = runner.invoke(
        cli, ["search", "Vulkan", "--index", index, "--precision", "fp32", "--json", "-k", "2"], catch_exceptions=False
    )
    assert result.exit_code == 0 and len(json.loads(result.output)) == 2
    result = runner.invoke(cli, ["search", "Vulkan", "--index", index, "--precision", "fp16"])
    assert result.exit_code == 2 and "'fp16' is not one of" in result.output


@pytest.mark.slow
def test_bf16_ov_bf16_and_int8_agree_with_fp32_at_distilmberts_exact_shape(cache, tmp_path):
    """Random weights with DistilmBERT's exact shape: the precisions' arithmetic at full size."""
    from indexer.embedding.synthetic import DISTILMBERT_SHAPE, make_distilbert

    sentences = [r["text"] for task in ("tatoeba-deu", "tatoeba-jpn") for r in eval_texts(task, "queries")]
    model = make_distilbert(tmp_path / "distilmbert-shape", sentences, shape=DISTILMBERT_SHAPE, tokenizer_vocab=5000)
    texts = sentences[::100] + [" ".join(sentences[i : i + 12]) for i in range(0, 120, 12)]
    fp32 = load_embedder(str(model), precision="fp32").embed_documents(texts)
    for precision in ("bf16", "ov-bf16", "int8"):
        if prec.unsupported_reason(precision):
            continue
        got = load_embedder(str(model), precision=precision).embed_documents(texts)
        assert agreement(fp32, got).passed, (precision, agreement(fp32, got))


def test_serve_logs_the_first_auto_measurement_on_stderr(cache, tiny_model_dir, tmp_path, monkeypatch):
    import search.server
    from indexer.cli import cli

    def fake_measure(make, candidates, **kwargs):
        prec.log.info("measuring precisions for %s on this CPU: fp32 (about 1 s, once per machine and model)", "m")
        return [Trial("fp32", 1.0, 1.0)]

    monkeypatch.setattr("indexer.embedding.transformer.measure", fake_measure)
    monkeypatch.setattr(search.server, "serve", lambda index, **kwargs: None)
    args = ["serve", "--index", str(tmp_path / "new.idx"), "--model", str(tiny_model_dir), "--precision", "auto"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "measuring precisions for m on this CPU: fp32 (about 1 s" in result.stderr
    cached = CliRunner().invoke(cli, args, catch_exceptions=False)  # decided: nothing measured again
    assert cached.exit_code == 0 and "measuring precisions" not in cached.stderr
    import shutil

    shutil.rmtree(cache / "models")  # an existing index on a machine that has not measured yet
    fresh = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert fresh.exit_code == 0 and "measuring precisions for m on this CPU" in fresh.stderr


def test_search_shows_a_first_auto_measurement_but_not_the_models_loading(cache, tiny_model_dir, tmp_path, monkeypatch):
    from indexer.cli import cli
    from search import Index

    with Index.create(tmp_path / "idx", model=str(tiny_model_dir), precision="fp32") as index:
        index.upsert([{"id": "a", "text": "Der Vulkan bricht aus."}])

    def fake_measure(make, candidates, **kwargs):
        prec.log.info("measuring precisions for %s on this CPU: fp32 (about 1 s, once per machine and model)", "m")
        return [Trial("fp32", 1.0, 1.0)]

    monkeypatch.setattr("indexer.embedding.transformer.measure", fake_measure)
    args = ["search", "Vulkan", "--index", str(tmp_path / "idx"), "--precision", "auto", "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 1
    assert "measuring precisions for m on this CPU" in result.stderr and "loading the model" not in result.stderr
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0 and again.stderr == ""
