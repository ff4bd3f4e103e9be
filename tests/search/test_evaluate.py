"""`indexer eval` and search.evaluate: BEIR tasks, metrics, ann next to exact search."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.embedding.base import check_vectors
from search import evaluate as ev
from store.errors import InvalidInput, ModelMismatch
from store.lock import WriterLock
from tests.fakes import HashingEmbedder
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


def test_rank_leaves_out_the_document_whose_id_is_the_query_id_and_still_ranks_k():
    chunk_docs = [f"d{i}" for i in range(30)]

    def search(vectors, n):
        return [chunk_docs[:n] for _ in range(len(vectors))]

    ranked = ev._rank(search, np.zeros((2, 4), dtype=np.float32), total=30, query_ids=["d0", "q"])
    assert ranked == [[f"d{i}" for i in range(1, 11)], [f"d{i}" for i in range(10)]]


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


def test_default_index_path_is_keyed_by_the_corpus_content(cache, tmp_path):
    tiny_model_dir = tmp_path / "tiny-model"
    tiny_model_dir.mkdir()
    key = ev.load_task(EVAL / "tatoeba-deu").corpus_sha256[:16]
    assert (
        ev.default_index_path(EVAL / "tatoeba-deu", "use-multilingual")
        == cache / "eval" / "tatoeba-deu-use-multilingual" / key
    )
    assert ev.default_index_path("x/t", "org/model", "ab" * 32) == cache / "eval" / "t-org--model" / ("ab" * 8)
    local = ev.default_index_path("x/t", str(tiny_model_dir), "ab" * 32)
    assert local.parent.parent == cache / "eval" and local.parent.name.startswith(f"t-{tiny_model_dir.name}-")


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
        "IDMap2,SQfp16",
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
    assert Path(report.index) == cache / "eval" / "titled-use-multilingual" / ev.load_task(task).corpus_sha256[:16]


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


def sentence_task(folder: Path, source: str, first: int, n: int, id_prefix: str = "") -> Path:
    """``n`` English sentences of a Tatoeba task (from the ``first``) and their translations
    as queries, the documents' ids prefixed with ``id_prefix``."""
    pairs = list(zip(eval_texts(source, "corpus"), eval_texts(source, "queries"), strict=True))[first : first + n]
    corpus = [{**doc, "_id": id_prefix + doc["_id"]} for doc, _ in pairs]
    qrels = [(query["_id"], id_prefix + doc["_id"], 1) for doc, query in pairs]
    return write_task(folder, corpus, [query for _, query in pairs], qrels)


def test_two_tasks_in_folders_of_the_same_name_each_measure_their_own_corpus(tmp_path, use_model, cache):
    """Issue 13: the second of two tasks named alike reports exactly its own corpus, and the
    figures of a fresh index (its cache was keyed by the folder's name: it kept the first's
    documents, which a build of another source does not remove)."""
    first = sentence_task(tmp_path / "a" / "task", "tatoeba-fra", 0, 40, id_prefix="a-")
    second = sentence_task(tmp_path / "b" / "task", "tatoeba-deu", 0, 25)
    kept = Path(ev.evaluate(first, model=use_model).index)
    (kept.parent / "meta.db").write_bytes(b"")  # an index of the layout before the cache was keyed by content
    with WriterLock(kept):  # as if another eval were writing it: it stays
        report = ev.evaluate(second, model=use_model)
    fresh = ev.evaluate(second, model=use_model, index=tmp_path / "fresh.idx")
    assert (report.documents, report.corpus_records, report.reused) == (25, 25, False)
    assert (report.ann, report.exact) == (fresh.ann, fresh.exact)
    assert Path(report.index).parent == kept.parent
    assert sorted(p.name for p in kept.parent.iterdir()) == sorted([kept.name, Path(report.index).name])
    again = ev.evaluate(second, model=use_model)
    assert (again.index, again.reused, again.documents, again.exact) == (report.index, True, 25, fresh.exact)
    # One corpus is kept per task name and model: the first's index is gone now.
    assert [p.name for p in kept.parent.iterdir()] == [Path(report.index).name]


def test_a_query_that_is_also_a_corpus_document_does_not_find_itself(tmp_path, use_model):
    """BEIR's ignore_identical_ids: the German sentences are queries and documents (same
    ids); each must find its English translation, not itself."""
    pairs = list(zip(eval_texts("tatoeba-deu", "corpus"), eval_texts("tatoeba-deu", "queries"), strict=True))[:30]
    corpus = [doc for doc, _ in pairs] + [{**query, "title": ""} for _, query in pairs]
    task = write_task(tmp_path / "self", corpus, [q for _, q in pairs], [(q["_id"], d["_id"], 1) for d, q in pairs])
    report = ev.evaluate(task, model=use_model, index=tmp_path / "self.idx")
    assert report.documents == 60
    assert report.ann == report.exact and report.exact["recall_at_1"] > 0.9  # not 0: itself came first


def test_a_given_index_holding_other_documents_is_refused_and_left_alone(tmp_path, use_model):
    given = tmp_path / "given.idx"
    ev.evaluate(sentence_task(tmp_path / "a", "tatoeba-fra", 0, 12, id_prefix="a-"), model=use_model, index=given)
    other = sentence_task(tmp_path / "b", "tatoeba-deu", 0, 8)
    with pytest.raises(
        InvalidInput, match=r"holds 12 documents that .*corpus.jsonl does not \('a-eng-0', .*Pass a new"
    ):
        ev.evaluate(other, model=use_model, index=given)
    # The same corpus file with fewer records: the index holds the records gone.
    first = tmp_path / "a" / "corpus.jsonl"
    first.write_text("".join(first.read_text(encoding="utf-8").splitlines(keepends=True)[:10]), encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"holds 2 documents that"):
        ev.evaluate(tmp_path / "a", model=use_model, index=given)
    from search import Index

    with Index.open(given, model=use_model) as ix:
        assert ix.stats()["documents"] == 12  # nothing removed from the user's index


def test_an_index_whose_document_count_is_not_the_corpus_fails(tmp_path, use_model, monkeypatch):
    given = tmp_path / "given.idx"
    ev.evaluate(sentence_task(tmp_path / "a", "tatoeba-fra", 0, 6, id_prefix="a-"), model=use_model, index=given)
    monkeypatch.setattr(ev, "_refuse_foreign_documents", lambda path, task: None)  # as if it let them through
    with pytest.raises(InvalidInput, match=r"holds 10 documents, but the corpus gives 4 \(4 records, 0 skipped\)"):
        ev.evaluate(sentence_task(tmp_path / "b", "tatoeba-deu", 0, 4), model=use_model, index=given)


# -- the nprobe / efSearch curve ----------------------------------------------------------------
class TieFreeHashing(HashingEmbedder):
    """The hashing test double with a little noise seeded by each text, so that no two
    documents tie with a query (ties would make ann and exact differ by their order)."""

    def embed_documents(self, texts):
        noise = [np.random.default_rng(list(t.encode())).standard_normal(self.dimension) for t in texts]
        return check_vectors(super().embed_documents(texts) + 0.05 * np.array(noise, dtype=np.float32), texts)

    embed_queries = embed_documents


@pytest.fixture(scope="module")
def hashing_task(tmp_path_factory) -> tuple[Path, Path]:
    """800 distinct English sentences and 300 queries (a sentence less its first word), and a
    flat index of them built with the hashing test double (fast, no model)."""
    texts = list(dict.fromkeys(r["text"] for t in ("fra", "deu") for r in eval_texts(f"tatoeba-{t}", "corpus")))
    corpus = [{"_id": f"d{i}", "text": text} for i, text in enumerate(texts[:800])]
    queries = [{"_id": f"q{i}", "text": d["text"].split(" ", 1)[-1]} for i, d in enumerate(corpus[:300])]
    folder = tmp_path_factory.mktemp("curve")
    task = write_task(folder / "hashing", corpus, queries, [(f"q{i}", f"d{i}", 1) for i in range(300)])
    index = folder / "flat.idx"
    ev.evaluate(task, model=TieFreeHashing(), index=index)
    return task, index


@pytest.mark.parametrize(
    ("kind", "parameter", "values", "default"),
    [("ivf", "nprobe", [1, 2, 4, 8, 16, 20], None), ("hnsw", "ef_search", [16, 32, 64, 128, 256, 512], 128)],
)
def test_curve_measures_ann_at_each_setting_beside_exact(hashing_task, tmp_path, kind, parameter, values, default):
    task, flat = hashing_task
    index = tmp_path / f"{kind}.idx"
    shutil.copytree(flat, index)
    report = ev.evaluate(task, model=TieFreeHashing(), index_type=kind, index=index, curve=True)
    assert report.curve is not None and report.reused is True
    assert [(p.parameter, p.value) for p in report.curve] == [(parameter, v) for v in values]
    assert [p.value for p in report.curve if p.default] == [default or report.nprobe]
    assert {p.exact_mrr_at_10 for p in report.curve} == {report.exact["mrr_at_10"]}
    last = report.curve[-1]
    assert last.recall_at_10 >= 0.99 and last.mrr_at_10 == pytest.approx(report.exact["mrr_at_10"], abs=0.005)
    own = next(p for p in report.curve if p.default)
    assert own.mrr_at_10 == report.ann["mrr_at_10"]  # the same search as the report's ann
    assert all(p.latency_ms_p50 > 0 and p.queries_per_second > 0 for p in report.curve)
    if kind == "hnsw":
        from search import Index

        with Index.open(index, model=TieFreeHashing()) as ix, pytest.raises(InvalidInput, match="ef_search must be"):
            ix.search_vectors(np.zeros((1, ix.dimension), dtype=np.float32), ef_search=0)
    if kind == "ivf":  # one list of 20 misses much; all 20 miss nothing
        assert report.curve[0].recall_at_10 < 0.9 and report.curve[0].mrr_at_10 < report.exact["mrr_at_10"]
    assert ev.evaluate(task, model=TieFreeHashing(), index=index).curve is None  # only when asked


def test_cli_curve_table_and_json(hashing_task, tmp_path, monkeypatch):
    task, flat = hashing_task
    monkeypatch.setattr("indexer.embedding.load_embedder", lambda *a, **k: TieFreeHashing())
    index = tmp_path / "ivf.idx"
    shutil.copytree(flat, index)
    runner = CliRunner()
    args = ["eval", str(task), "--model", "hashing-test", "--index", str(index), "--index-type", "ivf", "-q"]
    table = runner.invoke(cli, [*args, "--nprobe-curve"], catch_exceptions=False).output.splitlines()
    at = table.index("nprobe curve: ann against exact search (* the default, tuned at build)")
    assert " ".join(table[at + 1].split()) == "nprobe recall@10 MRR@10 ann MRR@10 exact ms/query p50 queries/s"
    rows = [line.split() for line in table[at + 2 : at + 8]]
    assert [r[0].rstrip("*") for r in rows] == ["1", "2", "4", "8", "16", "20"]
    assert sum(r[0].endswith("*") for r in rows) == 1
    out = json.loads(runner.invoke(cli, [*args, "--nprobe-curve", "--json"], catch_exceptions=False).stdout)
    assert [p["value"] for p in out["curve"]] == [1, 2, 4, 8, 16, 20]
    assert set(out["curve"][0]) == {f.name for f in dataclasses.fields(ev.CurvePoint)}
    flat_run = runner.invoke(cli, ["eval", str(task), "--model", "x", "--index", str(flat), "--nprobe-curve", "-q"])
    assert "IDMap2,SQfp16 is exact search: there is no nprobe or efSearch to tune." in flat_run.output
    flat_json = runner.invoke(cli, ["eval", str(task), "--index", str(flat), "--nprobe-curve", "--json"]).stdout
    assert json.loads(flat_json)["curve"] == []


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
    assert table[0] == "mixed: 120 queries, 120 documents (120 chunks), use-multilingual, IDMap2,SQfp16"
    assert table[1] == f"index: {index} (reused; 120 documents from 120 records)"
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
    assert (out["queries"], out["index_type"]) == (1000, "IDMap2,SQfp16")
    assert (out["exact"]["recall_at_1"], out["exact"]["recall_at_10"]) == (0.979, 0.996)  # eval/README.md
    assert abs(out["ann"]["recall_at_10"] - out["exact"]["recall_at_10"]) <= 0.01
    assert out["seconds"] < 120
