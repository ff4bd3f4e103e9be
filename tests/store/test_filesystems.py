"""Real filesystems the index may live on: a read-only mount (searchable, writes refused with
one clear message) and a full disk (one clear message, the last version served, a resume
that converges). Both need mount(8); without the right to mount, the tests are skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.cli import cli
from indexer.update import repair, upsert_documents
from search import DiskFull, Index, ReadOnlyIndex
from store.check import check_index
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder()


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode}): needs the right to mount")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only(tmp_path):
    """An index, and a read-only bind mount of its folder."""
    corpus = write_files(tmp_path / "c", {f"d{i}.txt": f"Vulkan number {i} erupts near the river." for i in range(8)})
    build_index(corpus, tmp_path / "src" / "idx", model=MODEL)
    mounted = tmp_path / "ro"
    mounted.mkdir()
    _mount("--bind", str(tmp_path / "src"), str(mounted))
    try:
        _mount("-o", "remount,ro,bind", str(mounted))
        yield mounted / "idx"
    finally:
        _umount(mounted)


def test_an_index_on_a_read_only_mount_is_searchable(read_only):
    with Index.open(read_only, model=MODEL) as index:
        assert len(index.search("Vulkan", k=3)) == 3
        assert index.search("Vulkan", k=3, mode="lexical")
        assert index.stats()["documents"] == 8
    report = check_index(read_only)
    assert report.ok, report.problems
    assert any("full-text table was not verified" in w for w in report.warnings)


def test_writes_to_a_read_only_index_say_so(read_only, tmp_path):
    runner = CliRunner()
    for args in (["repair"], ["remove", "d1.txt"], ["reindex", "--index-type", "flat"]):
        result = runner.invoke(cli, [*args, "--index", str(read_only)])
        assert result.exit_code == 1, (args, result.output)
        assert "read-only filesystem" in result.output and "Traceback" not in result.output, result.output
    with pytest.raises(ReadOnlyIndex):
        upsert_documents(read_only, [{"id": "x", "text": "Text"}], model=MODEL)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        _umount(disk)


def test_a_full_disk_is_one_clear_error_and_the_index_resumes(small_disk, tmp_path):
    small = write_files(tmp_path / "small", {f"s{i}.txt": f"Ein kurzer Text {i} über Flüsse." for i in range(5)})
    index = small_disk / "idx"
    build_index(small, index, model=MODEL)
    # Far more text than the disk holds: the write fails part way.
    big = tmp_path / "big"
    shutil.copytree(small, big)
    lines = "\n".join(json.dumps({"id": f"b{i}", "text": f"Langer Text {i} " + "Wort " * 400}) for i in range(600))
    (big / "many.jsonl").write_text(lines)
    with pytest.raises(DiskFull, match="is full: nothing was changed"):
        build_index(big, index, model=MODEL, id_field="id")
    with Index.open(index, model=MODEL) as opened:  # the last published version is served
        assert {h.doc_id for h in opened.search("Flüsse", k=10)} == {f"s{i}.txt" for i in range(5)}
    report = check_index(index)
    assert report.ok, report.problems
    result = CliRunner().invoke(cli, ["repair", "--index", str(index)])  # a write on the full disk, from the CLI
    assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
    if result.exit_code == 1:
        assert "is full" in result.output, result.output
    _mount("-o", "remount,size=64m", str(small_disk))  # space is freed
    resumed = build_index(big, index, model=MODEL, id_field="id")
    assert resumed.chunks_total > 600
    assert check_index(index).ok
    assert repair(index) is not None
