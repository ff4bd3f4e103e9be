"""`indexer compact`: what it prints, its --json report, and its errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.update import delete_documents, upsert_documents
from store.lock import WriterLock
from tests.fakes import HashingEmbedder
from tests.helpers import eval_texts


def _invoke(*args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def shrunk(tmp_path):
    """An index of 400 sentences of which 300 were deleted."""
    texts = [r["text"] for r in eval_texts("tatoeba-ita", "queries")]
    path = tmp_path / "c.idx"
    upsert_documents(path, [{"id": f"d{i}", "text": texts[i]} for i in range(400)], model=HashingEmbedder(512))
    delete_documents(path, [f"d{i}" for i in range(400) if i % 4])
    return path


def test_compact_prints_the_bytes_before_and_after_by_part(shrunk):
    out = _invoke("compact", "--index", shrunk).output
    lines = out.splitlines()
    assert lines[0].startswith(f"Compacted {shrunk}: ") and " MB given back, " in lines[0]
    assert lines[1].split()[0] == "meta.db" and "free pages of 16,384 B; VACUUM; full-text index merged" in lines[1]
    assert lines[2].split()[0] == "wal"
    assert lines[3].split()[0] == "faiss" and "(removed: v000002.faiss)" in lines[3]  # the version before the delete
    assert len(lines) == 4
    again = _invoke("compact", "--index", shrunk).output
    assert "(0.0 MB given back" in again and "removed: none superseded" in again


def test_compact_json_has_the_documented_keys(shrunk):
    report = json.loads(_invoke("compact", "--index", shrunk, "--json").stdout)
    assert set(report) == {
        "index",
        "before",
        "after",
        "free_pages",
        "page_size",
        "vacuum",
        "fts_merged",
        "checkpointed",
        "faiss_removed",
        "seconds",
        "reclaimed",
    }
    for part in ("before", "after"):
        assert set(report[part]) == {"meta_db", "wal", "faiss", "total"}
    assert report["reclaimed"] == report["before"]["total"] - report["after"]["total"] > 0
    assert report["after"]["total"] < 0.5 * report["before"]["total"]
    assert report["vacuum"] == "full" and report["checkpointed"] is True


def test_compact_fails_clearly_without_an_index_or_while_another_writer_holds_it(tmp_path, shrunk):
    out = _invoke("compact", "--index", tmp_path / "nothing.idx", code=1).output
    assert "no index at" in out and "indexer build" in out
    with WriterLock(shrunk):
        out = _invoke("compact", "--index", shrunk, code=1).output
        assert "is being written by" in out and "--wait" in out
