"""A symbolic link never indexes a document twice, whatever it points to and however the
corpus is named (issue 14: "a symlink inside the corpus indexes a document twice")."""

from __future__ import annotations

import os

from indexer.build import build_index
from search import Index
from tests.helpers import write_files


def test_links_to_files_and_folders_of_the_corpus_give_each_document_once(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "c", {"docs/a.txt": "The lion sleeps.", ".hidden/h.txt": "Kept via its link."})
    os.symlink("docs/a.txt", corpus / "relative-link.txt")
    os.symlink(corpus / "docs" / "a.txt", corpus / "absolute-link.txt")
    os.symlink("docs", corpus / "folder-link")
    os.symlink(".hidden/h.txt", corpus / "h.txt")  # the only name its target is indexed under
    os.symlink(corpus, tmp_path / "corpus-by-link")
    first = build_index(corpus, tmp_path / "idx", model=tiny_model)
    again = build_index(tmp_path / "corpus-by-link", tmp_path / "idx", model=tiny_model)  # the same folder
    with Index.open(tmp_path / "idx") as index:
        ids = [d.doc_id for d in index.documents().documents]
    assert ids == ["docs/a.txt", "h.txt"]
    assert {s["source"] for s in first.skipped} == {"relative-link.txt", "absolute-link.txt", "folder-link"}
    assert again.documents_added == 0 and again.documents_removed == 0 and again.documents_unchanged == 2
