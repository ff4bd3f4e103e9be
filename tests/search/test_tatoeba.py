"""The acceptance figure: German Tatoeba queries find their English translation first."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from indexer.cli import cli
from tests.helpers import EVAL, eval_texts


def test_german_queries_find_the_aligned_english_sentence_first(tmp_path, use_model):
    runner = CliRunner()
    index = tmp_path / "T"
    corpus = EVAL / "tatoeba-deu" / "corpus.jsonl"
    result = runner.invoke(
        cli,
        ["build", str(corpus), "--id-field", "_id", "--model", "use-multilingual", "--index", str(index), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["chunks_total"] == 1000
    again = runner.invoke(cli, ["build", str(corpus), "--id-field", "_id", "--index", str(index), "--json"])
    assert json.loads(again.stdout)["chunks_embedded"] == 0

    queries = eval_texts("tatoeba-deu", "queries")[:100]
    with open(EVAL / "tatoeba-deu" / "qrels" / "test.tsv", encoding="utf-8") as fh:
        relevant = dict(line.split("\t")[:2] for line in list(fh)[1:])
    top = []
    for q in queries[:5]:  # through the CLI, as a user would (each call loads the model)
        out = runner.invoke(cli, ["search", q["text"], "--index", str(index), "--json", "-k", "1"]).stdout
        top.append(json.loads(out)[0]["doc_id"])
    from search import Index

    with Index.open(index, model=use_model) as ix:
        top += [hits[0].doc_id for hits in ix.search([q["text"] for q in queries[5:]], k=1)]
    found = sum(doc == relevant[q["_id"]] for q, doc in zip(queries, top, strict=True))
    assert found >= 93

    # Exact brute force over the same model's vectors agrees with the index's top hits.
    docs = eval_texts("tatoeba-deu", "corpus")
    doc_vecs = use_model.embed_documents([d["text"] for d in docs])
    q_vecs = use_model.embed_queries([q["text"] for q in queries])
    brute = [docs[i]["_id"] for i in np.argmax(q_vecs @ doc_vecs.T, axis=1)]
    assert brute == top
