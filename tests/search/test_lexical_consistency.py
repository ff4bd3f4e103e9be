"""Lexical search reads its candidates and their texts from one moment, even while a writer
publishes in between (a watch worker beside a server): it never fails on a chunk that a
publish removed meanwhile."""

from __future__ import annotations

import store.lexical
from indexer.build import build_index
from indexer.update import delete_documents
from store.index_dir import IndexDir
from store.lexical_match import QueryMatcher
from tests.helpers import write_files


def test_a_publish_between_two_batches_of_candidates_changes_nothing(tmp_path, tiny_model, monkeypatch):
    corpus = write_files(tmp_path / "c", {f"d{i:02d}.txt": f"common word number {i}" for i in range(12)})
    build_index(corpus, tmp_path / "idx", model=tiny_model)
    monkeypatch.setattr(store.lexical, "CHECK_BATCH", 3)  # several batches of candidates
    real = QueryMatcher.matched
    calls = {"n": 0}

    def matched_then_a_writer_deletes(self, text):
        calls["n"] += 1
        if calls["n"] == 1:  # while the search is between its batches, another writer publishes
            delete_documents(tmp_path / "idx", [f"d{i:02d}.txt" for i in range(12)])
        return real(self, text)

    monkeypatch.setattr(QueryMatcher, "matched", matched_then_a_writer_deletes)
    with IndexDir.open_for_reading(tmp_path / "idx") as idx:  # as a search's reader
        ranked = idx.meta.lexical_search("common", 20)
    assert len(ranked) == 12  # the moment the search began: every chunk, none missing
