"""`indexer eval` and search.evaluate: BEIR tasks, metrics, ann next to exact search."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from search import evaluate as ev
from store.errors import InvalidInput, ModelMismatch
from tests.helpers import EVAL, eval_texts


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own eval cache (``$BABELINDEX_CACHE``)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BABELINDEX_CACHE", str(root))
    return root


def write_task(folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    for name, records in (("corpus", corpus), ("queries", queries)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def mixed_task(tmp_path_factory) -> Path:
    """60 German and 60 French Tatoeba queries against their 120 English translations.

    English sentences that occur twice are left out: equal vectors would tie, and a tie may
    break either way.
    """
    corpus, queries, qrels, seen = [], [], [], set()
    for task in ("deu", "fra"):
        pairs = zip(eval_texts(f"tatoeba-{task}", "corpus"), eval_texts(f"tatoeba-{task}", "queries"), strict=True)
        pairs = [(doc, query) for doc, query in pairs if doc["text"] not in seen and not seen.add(doc["text"])][:60]
        for doc, query in pairs:
            corpus.append({**doc, "_id": f"{task}/{doc['_id']}"})
            queries.append(query)
            qrels.append((query["_id"], f"{task}/{doc['_id']}", 1))
    return write_task(tmp_path_factory.mktemp("tasks") / "mixed", corpus, queries, qrels)


@pytest.fixture(scope="module")
def mixed_report(mixed_task, use_model, tmp_path_factory) -> tuple[dict[str, bytes], ev.EvalReport]:
    """The task folder's files before, and the report of a first evaluation (a new index)."""
    before = files_of(mixed_task)
    return before, ev.evaluate(mixed_task, model=use_model, index=tmp_path_factory.mktemp("eval") / "mixed.idx")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- metrics ------------------------------------------------------------------------------------
def test_query_metrics_one_relevant_document():
    ranked = ["a", "b", "c", "rel", "d"]
    m = ev.query_metrics(ranked, {"rel": 1})
    assert m == {"recall_at_1": 0.0, "recall_at_10": 1.0, "mrr_at_10": 0.25, "ndcg_at_10": 1 / math.log2(5)}
    assert ev.query_metrics(["rel"], {"rel": 1}) == {
        "recall_at_1": 1.0,
        "recall_at_10": 1.0,
        "mrr_at_10": 1.0,
        "ndcg_at_10": 1.0,
    }


def test_query_metrics_graded_and_several_relevant_documents():
    ranked = ["x", "b", "a"] + [f"n{i}" for i in range(7)] + ["c"]  # c is 11th: outside the top 10
    m = ev.query_metrics(ranked, {"a": 2, "b": 1, "c": 1})
    assert m["recall_at_1"] == 0.0
    assert m["recall_at_10"] == pytest.approx(2 / 3)
    assert m["mrr_at_10"] == 0.5
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg_at_10"] == pytest.approx(dcg / idcg)


def test_query_metrics_nothing_found():
    assert ev.query_metrics([], {"a": 1}) == {
        "recall_at_1": 0.0,
        "recall_at_10": 0.0,
        "mrr_at_10": 0.0,
        "ndcg_at_10": 0.0,
    }


def test_summarize_overall_and_per_language():
    rows = [ev.query_metrics(["a"], {"a": 1}), ev.query_metrics(["b", "a"], {"a": 1}), ev.query_metrics([], {"a": 1})]
    s = ev.summarize(rows, ["de", "de", "fr"])
    assert s["recall_at_1"] == round(1 / 3, 6) and s["mrr_at_10"] == 0.5
    assert s["per_language"]["de"] == {
        "recall_at_1": 0.5,
        "recall_at_10": 1.0,
        "mrr_at_10": 0.75,
        "ndcg_at_10": round((1 + 1 / math.log2(3)) / 2, 6),
        "queries": 2,
    }
    assert s["per_language"]["fr"]["queries"] == 1
    assert ev.summarize(rows, [None, None, None])["per_language"] == {}


def test_rank_keeps_distinct_documents_by_best_chunk_and_fetches_more_when_short():
    # 30 chunks: documents d0..d14, two chunks each, chunk order = best first.
    chunk_docs = [f"d{i // 2}" for i in range(30)]
    calls = []

    def search(vectors, n):
        calls.append(n)
        return [chunk_docs[:n] for _ in range(len(vectors))]

    ranked = ev._rank(search, np.zeros((3, 4), dtype=np.float32), total=30)
    assert ranked == [[f"d{i}" for i in range(10)]] * 3
    assert calls == [10, 30]  # 10 chunks held 5 documents: searched again with 4x (capped at 30)
    nan = np.full((1, 4), np.nan, dtype=np.float32)
    assert ev._rank(search, nan, total=30) == [[]]  # a query the model could not embed finds nothing


# -- reading tasks ------------------------------------------------------------------------------
def test_not_a_task_folder(tmp_path):
    with pytest.raises(InvalidInput, match=r"lacks corpus.jsonl, queries.jsonl, qrels/test.tsv: a BEIR task"):
        ev.load_task(tmp_path)


def test_bad_qrels_line_is_named(tmp_path):
    task = write_task(tmp_path / "t", [{"_id": "d", "text": "x"}], [{"_id": "q", "text": "y"}], [("q", "d", 1)])
    with open(task / "qrels" / "test.tsv", "a") as fh:
        fh.write("q\tonly-two-columns\n")
    with pytest.raises(InvalidInput, match=r"test.tsv:3: expected query-id<TAB>corpus-id<TAB>score"):
        ev.load_task(task)


def test_queries_without_relevant_documents_are_not_evaluated(tmp_path):
    task = write_task(
        tmp_path / "t",
        [{"_id": "d", "text": "x"}],
        [{"_id": "q1", "text": "a", "lang": "de"}, {"_id": "q2", "text": "b"}, {"_id": "q3", "text": "c"}],
        [("q1", "d", 1), ("q2", "d", 0)],
    )
    loaded = ev.load_task(task)
    assert loaded.queries == [("q1", "a", "de")]
    assert loaded.qrels == {"q1": {"d": 1}}
    assert loaded.name == "t" and loaded.titled is False


def test_default_index_path(cache, tmp_path):
    tiny_model_dir = tmp_path / "tiny-model"
    tiny_model_dir.mkdir()
    assert (
        ev.default_index_path(EVAL / "tatoeba-deu", "use-multilingual")
        == cache / "eval" / "tatoeba-deu-use-multilingual"
    )
    assert ev.default_index_path("x/t", "org/model") == cache / "eval" / "t-org--model"
    local = ev.default_index_path("x/t", str(tiny_model_dir))
    assert local.parent == cache / "eval" and local.name.startswith(f"t-{tiny_model_dir.name}-")


# -- the evaluation -----------------------------------------------------------------------------
def brute_force(task: Path, model) -> dict[str, dict[str, float]]:
    """Metrics computed independently: embed everything, rank by numpy dot products."""
    corpus = [json.loads(line) for line in (task / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(line) for line in (task / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    relevant = dict(line.split("\t")[:2] for line in (task / "qrels" / "test.tsv").read_text().splitlines()[1:])
    scores = model.embed_queries([q["text"] for q in queries]) @ model.embed_documents([d["text"] for d in corpus]).T
    order = np.argsort(-scores, axis=1, kind="stable")
    by_lang: dict[str, list[int | None]] = {}
    for q, row in zip(queries, order, strict=True):
        ids = [corpus[i]["_id"] for i in row[:10]]
        by_lang.setdefault(q["lang"], []).append(
            ids.index(relevant[q["_id"]]) + 1 if relevant[q["_id"]] in ids else None
        )
    by_lang["all"] = [r for ranks in by_lang.values() for r in ranks]
    return {
        lang: {
            "recall_at_1": sum(r == 1 for r in ranks) / len(ranks),
            "recall_at_10": sum(r is not None for r in ranks) / len(ranks),
            "mrr_at_10": sum(1 / r for r in ranks if r) / len(ranks),
            "ndcg_at_10": sum(1 / math.log2(r + 1) for r in ranks if r) / len(ranks),
        }
        for lang, ranks in by_lang.items()
    }


def test_exact_figures_match_an_independent_brute_force(mixed_task, mixed_report, use_model):
    before, report = mixed_report
    assert files_of(mixed_task) == before  # the task folder is only read
    assert (report.task, report.model, report.index_type, report.queries, report.documents) == (
        "mixed",
        "use-multilingual",
        "IDMap2,Flat",
        120,
        120,
    )
    assert report.reused is False and report.skipped == []
    truth = brute_force(mixed_task, use_model)
    for metric in ev.METRICS:
        assert report.exact[metric] == pytest.approx(truth["all"][metric], abs=1e-6)
        for lang in ("deu", "fra"):
            assert report.exact["per_language"][lang][metric] == pytest.approx(truth[lang][metric], abs=1e-6)
    assert report.exact["per_language"]["deu"]["queries"] == 60
    assert report.ann == report.exact  # a flat index is exact search
    assert truth["all"]["recall_at_1"] > 0.9

    again = ev.evaluate(mixed_task, model=use_model, index=report.index)
    assert again.reused is True and again.exact == report.exact


def test_ivf_differs_from_exact_but_stays_close(mixed_task, mixed_report, use_model, tmp_path):
    index = tmp_path / "ivf.idx"
    shutil.copytree(mixed_report[1].index, index)  # the same vectors, not embedded again
    tuned = ev.evaluate(mixed_task, model=use_model, index_type="ivf", index=index)
    assert tuned.index_type.startswith("IVF") and tuned.nprobe >= 1 and tuned.reused is True
    assert abs(tuned.ann["recall_at_10"] - tuned.exact["recall_at_10"]) <= 0.02
    one = ev.evaluate(mixed_task, model=use_model, index_type="ivf", index=index, nprobe=1)
    assert one.reused is True and one.nprobe == 1
    assert one.exact == tuned.exact  # exact search does not depend on the index
    assert one.ann["recall_at_10"] < one.exact["recall_at_10"]


def test_titles_are_joined_to_texts_outside_the_task_folder(tmp_path, use_model, cache):
    corpus = [
        {"_id": "d1", "title": "Volcanoes", "text": "Lava flows down the mountain."},
        {"_id": "d2", "title": "", "text": "Bees carry pollen from flower to flower."},
    ]
    task = write_task(tmp_path / "titled", corpus, [{"_id": "q", "text": "Vulkan", "lang": "de"}], [("q", "d1", 1)])
    before = files_of(task)
    report = ev.evaluate(task, model=use_model)
    assert files_of(task) == before
    from search import Index

    with Index.open(report.index, model=use_model) as ix:
        texts = {h.doc_id: h.text for h in ix.search("volcano", k=2)}
    assert texts == {"d1": "Volcanoes Lava flows down the mountain.", "d2": "Bees carry pollen from flower to flower."}
    assert report.ann["recall_at_1"] == 1.0
    assert Path(report.index) == cache / "eval" / "titled-use-multilingual"


def test_an_index_inside_the_task_folder_is_refused(mixed_task, use_model):
    with pytest.raises(InvalidInput, match="inside the task folder"):
        ev.evaluate(mixed_task, model=use_model, index=mixed_task / "idx")
    assert not (mixed_task / "idx").exists()


def test_unknown_index_type_fails_before_building(mixed_task, use_model, cache):
    with pytest.raises(InvalidInput, match="unknown index type 'bogus'"):
        ev.evaluate(mixed_task, model=use_model, index_type="bogus")
    assert not cache.exists()


def test_model_mismatch_rebuilds_the_cache_but_not_a_given_index(tmp_path, use_model, tiny_model, cache):
    corpus = [{"_id": "d1", "title": "", "text": "Lava flows down the mountain."}]
    task = write_task(tmp_path / "t", corpus, [{"_id": "q", "text": "Vulkan"}], [("q", "d1", 1)])
    given = tmp_path / "given.idx"
    ev.evaluate(task, model=tiny_model, index=given)
    with pytest.raises(ModelMismatch):
        ev.evaluate(task, model=use_model, index=given)
    # The cache of use-multilingual holding another model's index: it is ours, rebuilt.
    from indexer.build import build_index

    build_index(
        task / "corpus.jsonl", ev.default_index_path(task, "use-multilingual"), model=tiny_model, id_field="_id"
    )
    report = ev.evaluate(task, model=use_model)
    assert report.reused is False and report.ann["recall_at_1"] == 1.0


# -- the command --------------------------------------------------------------------------------
def test_cli_json_and_table(mixed_task, mixed_report):
    index = mixed_report[1].index
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["eval", str(mixed_task), "--model", "use-multilingual", "--index", index, "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"task", "model", "index_type", "queries", "seconds", "ann", "exact"} <= out.keys()
    assert set(out["ann"]) == {*ev.METRICS, "per_language"} and set(out["ann"]["per_language"]) == {"deu", "fra"}
    assert out["ann"] == mixed_report[1].ann and out["reused"] is True
    table = runner.invoke(
        cli, ["eval", str(mixed_task), "--model", "use-multilingual", "--index", index, "-q"]
    ).output.splitlines()
    assert table[0] == "mixed: 120 queries, 120 documents (120 chunks), use-multilingual, IDMap2,Flat"
    assert table[1] == f"index: {index} (reused)"
    assert table[2].split() == ["lang", "queries", "recall@1", "recall@10", "MRR@10", "nDCG@10"]
    assert [line.split()[:2] for line in table[4:7]] == [["all", "120"], ["deu", "60"], ["fra", "60"]]
    assert table[4].split()[2:] == [f"{out[s][m]:.3f}" for m in ev.METRICS for s in ("ann", "exact")]


def test_cli_errors_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(tmp_path), "--model", "use-multilingual"])
    assert result.exit_code == 1
    assert "lacks corpus.jsonl, queries.jsonl, qrels/test.tsv" in result.output


@pytest.mark.slow
def test_acceptance_tatoeba_deu_matches_the_reference_figures(cache):
    """`indexer eval ../shared/eval/tatoeba-deu --model use-multilingual --json` (README figures)."""
    result = CliRunner().invoke(
        cli, ["eval", str(EVAL / "tatoeba-deu"), "--model", "use-multilingual", "--json"], catch_exceptions=False
    )
    out = json.loads(result.stdout)
    assert (out["queries"], out["index_type"]) == (1000, "IDMap2,Flat")
    assert (out["exact"]["recall_at_1"], out["exact"]["recall_at_10"]) == (0.979, 0.996)  # eval/README.md
    assert abs(out["ann"]["recall_at_10"] - out["exact"]["recall_at_10"]) <= 0.01
    assert out["seconds"] < 120
