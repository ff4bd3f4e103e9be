"""Long work speaks: model loading says so, bars have totals, Ctrl-C says what was kept."""

from __future__ import annotations

import logging

from click.testing import CliRunner

import indexer.writer
from indexer.build import build_index
from indexer.cli import cli
from indexer.cli_common import Bars
from indexer.progress import Progress
from tests.helpers import write_files


class Counting(Progress):
    def __init__(self) -> None:
        self.total: int | None = None
        self.files = 0
        self.docs = 0

    def files_total(self, n: int) -> None:
        self.total = n

    def file_read(self) -> None:
        self.files += 1

    def document_read(self) -> None:
        self.docs += 1


def test_a_build_counts_its_files_first_then_reports_each(tmp_path, tiny_model):
    corpus = write_files(
        tmp_path / "c",
        {"a.txt": "one", "b/c.md": "two", "rec.jsonl": '{"text": "x"}\n{"text": "y"}\n{"text": "z"}', "empty.txt": ""},
    )
    progress = Counting()
    build_index(corpus, tmp_path / "idx", model=tiny_model, progress=progress)
    assert progress.total == 4  # files, counted before reading
    assert progress.files == 4  # each reported once, the record file with its three records
    assert progress.docs == 6  # three files, three records... and the empty file's skip


def test_the_reading_bar_has_a_total_and_an_eta_and_appears_only_when_counting_starts(capsys):
    bars = Bars()
    assert bars.read is None and bars.embed is None  # nothing sits at zero while a model loads
    bars.files_total(10)
    for _ in range(4):
        bars.file_read()
        bars.document_read()  # documents do not move a bar that counts files
    assert (bars.read.n, bars.read.total) == (4, 10)
    assert "4/10" in str(bars.read) and "<" in str(bars.read)  # elapsed<remaining: the ETA
    bars.chunks_embedded(7)
    assert bars.embed.n == 7
    bars.close()
    assert capsys.readouterr().err.endswith("\r")  # the next line starts at the left edge


def test_model_loading_is_logged_with_its_time(tmp_path, tiny_model_dir, caplog):
    from indexer.embedding import load_embedder

    with caplog.at_level(logging.INFO, logger="babelindex.models"):
        load_embedder(str(tiny_model_dir), precision="fp32")
    messages = [r.getMessage() for r in caplog.records if r.name == "babelindex.models"]
    assert messages[0].startswith("loading the model") and messages[1].startswith("loaded the model")
    assert " s" in messages[1]


def test_the_cli_prints_model_lines_on_stderr(tmp_path, tiny_model_dir):
    corpus = write_files(tmp_path / "c", {"a.txt": "Hello there."})
    result = CliRunner().invoke(
        cli,
        ["build", str(corpus), "--index", str(tmp_path / "idx"), "--model", str(tiny_model_dir), "--precision", "fp32"],
    )
    assert result.exit_code == 0, result.output
    assert "loading the model" in result.stderr and "loaded the model" in result.stderr
    assert "loading the model" not in result.stdout  # the report stays clean for pipes
    quiet = CliRunner().invoke(
        cli, ["build", str(corpus), "--index", str(tmp_path / "idx2"), "--model", str(tiny_model_dir), "--quiet"]
    )
    assert quiet.exit_code == 0 and "loading" not in quiet.output


def test_ctrl_c_says_what_was_kept_exits_130_and_the_rerun_resumes(tmp_path, tiny_model, tiny_model_dir, monkeypatch):
    corpus = write_files(tmp_path / "c", {f"d{i}.txt": f"Document number {i} talks about thing {i}." for i in range(6)})
    index = tmp_path / "idx"
    monkeypatch.setattr(indexer.writer, "PENDING_CHUNKS", 1)  # each document is written as soon as it is embedded
    calls = {"n": 0}

    def interrupt_at_the_third_file(self) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "file_read", interrupt_at_the_third_file)
    args = ["build", str(corpus), "--index", str(index), "--model", str(tiny_model_dir), "--precision", "fp32", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 130, result.output
    assert "Interrupted: 3 documents written so far are kept" in result.stderr
    assert "Run the same command again to resume" in result.stderr
    assert "Aborted!" not in result.output
    monkeypatch.undo()
    again = build_index(corpus, index, model=tiny_model)
    assert again.documents_added == 6
    assert again.chunks_embedded == 3  # only what was left
