"""The `indexer` CLI: exit codes, messages, --json output, quiet output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from indexer.cli import cli
from search.hit import Hit

HIT_FIELDS = ["score", "text", "doc_id", "chunk_id", "source", "lang", "start", "end", "metadata", "signals"]


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


@pytest.fixture
def built(tmp_path, multilingual_corpus, tiny_model_dir, run):
    index = tmp_path / "i.idx"
    run("build", multilingual_corpus, "--index", index, "--model", tiny_model_dir, "--quiet")
    return index


def test_build_json_report_has_the_documented_keys(tmp_path, multilingual_corpus, tiny_model_dir, run):
    result = run("build", multilingual_corpus, "--index", tmp_path / "i.idx", "--model", tiny_model_dir, "--json")
    assert result.stderr == ""
    report = json.loads(result.stdout)
    for key in (
        "documents_added",
        "documents_updated",
        "documents_removed",
        "documents_skipped",
        "chunks_embedded",
        "chunks_total",
        "seconds",
        "skipped",
    ):
        assert key in report
    assert report["documents_added"] == 6 and report["skipped"] == []
    again = json.loads(run("build", multilingual_corpus, "--index", tmp_path / "i.idx", "--json").stdout)
    assert again["chunks_embedded"] == 0 and again["documents_unchanged"] == 6


def test_build_prints_a_readable_report_with_skipped_files(tmp_path, multilingual_corpus, tiny_model_dir, run):
    (multilingual_corpus / "logo.txt").write_bytes(b"\x7fELF" + bytes(300))
    out = run("build", multilingual_corpus, "--index", tmp_path / "i.idx", "--model", tiny_model_dir).output
    assert "documents: 6 added, 0 updated, 0 removed, 0 unchanged, 1 skipped" in out
    assert "Skipped:\n  logo.txt: binary file (ELF executable)" in out


def test_quiet_build_prints_nothing(tmp_path, multilingual_corpus, tiny_model_dir, run):
    assert (
        run("build", multilingual_corpus, "--index", tmp_path / "i.idx", "--model", tiny_model_dir, "-q").output == ""
    )


def test_search_json_is_an_array_of_hits_with_exactly_the_hit_fields(built, run):
    hits = json.loads(run("search", "Vulkan", "--index", built, "-k", "3", "--json").stdout)
    assert len(hits) == 3
    assert all(list(h) == HIT_FIELDS for h in hits)
    assert Hit(**hits[0]).doc_id == hits[0]["doc_id"]


def test_search_table(built, run):
    lines = run("search", "Vulkan", "--index", built, "-k", "2").output.splitlines()
    assert lines[0].split() == ["rank", "score", "lang", "source", "text"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]


def test_stats_json_and_text(built, run):
    stats = json.loads(run("stats", "--index", built, "--json").stdout)
    assert (stats["documents"], stats["dimension"], stats["index_type"]) == (6, 32, "IDMap2,SQfp16")
    assert stats["chunks"] >= 6 and stats["model"].endswith("tiny-distilbert0")
    assert stats["size_bytes"]["total"] == stats["size_bytes"]["meta_db"] + stats["size_bytes"]["faiss"] > 0
    text = run("stats", "--index", built).output
    assert "documents:  6" in text and "faiss:      IDMap2,SQfp16, version 1" in text


def test_errors_exit_1_with_the_library_message(tmp_path, multilingual_corpus, built, run):
    out = run("search", "x", "--index", tmp_path / "missing.idx", code=1).output
    assert (
        out
        == f"Error: no index at {tmp_path / 'missing.idx'}. Build one with `indexer build CORPUS --index {tmp_path / 'missing.idx'}`.\n"
    )
    out = run("build", multilingual_corpus, "--index", built, "--model", "use-multilingual", code=1).output
    error = out.splitlines()[-1]  # after the lines saying the model was loaded
    assert error.startswith("Error: ") and "was built with the model" in error and "'use-multilingual'" in error


def test_unavailable_model_exits_1_naming_the_ways_out(tmp_path, multilingual_corpus, run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    out = run("build", multilingual_corpus, "--index", tmp_path / "i.idx", code=1).output
    assert "not in the local Hugging Face cache" in out and "--model use-multilingual" in out


def test_usage_errors_exit_2(tmp_path, run):
    assert "Missing option '--index'" in run("search", "x", code=2).output
    assert "does not exist" in run("build", tmp_path / "nope", "--index", tmp_path / "i", code=2).output
    assert (
        "Invalid value for '--index-type'"
        in run("build", tmp_path, "--index", tmp_path / "i", "--index-type", "lsh", code=2).output
    )


def test_the_build_report_lists_the_warnings(tmp_path):
    """Text cleaned while reading (NUL characters removed) is reported in the readable report too."""
    from indexer.cli import cli as command

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("Ein langer Text. " * 600 + "\x00 mit NUL.", encoding="utf-8")
    result = CliRunner().invoke(
        command,
        ["build", str(tmp_path / "c"), "--index", str(tmp_path / "i"), "--model", "use-multilingual"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Warnings:\n  a.txt: 1 NUL character" in result.output, result.output
