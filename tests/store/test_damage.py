"""Index files damaged or changed by hand: each gives one clear message, and `repair` either
works or says it cannot (issue 17, items 10 and 11)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.cli import cli
from indexer.update import repair
from search import CorruptIndex, Index
from store.check import check_index
from store.database import NEW_VECTOR_DTYPE, VECTOR_DTYPES
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder()


@pytest.fixture
def index(tmp_path):
    corpus = write_files(tmp_path / "c", {f"d{i}.txt": f"Vulkan number {i} erupts near the river." for i in range(30)})
    build_index(corpus, tmp_path / "idx", model=MODEL)
    return tmp_path / "idx"


def _sql(index, statement, *params):
    with sqlite3.connect(index / "meta.db") as conn:
        conn.execute(statement, params)


def test_a_vector_blob_of_the_wrong_size_is_a_clear_problem_not_a_value_error(index):
    _sql(index, "UPDATE vectors SET vector = x'00' WHERE chunk = (SELECT min(chunk) FROM vectors)")
    report = check_index(index)
    assert any("a stored vector has 1 bytes" in p for p in report.problems), report.problems
    result = CliRunner().invoke(cli, ["repair", "--index", str(index)])
    assert result.exit_code == 1 and "a stored vector has 1 bytes" in result.output and "Traceback" not in result.output


def test_a_zeroed_vector_names_its_document_and_the_way_to_embed_it_again(index):
    zero = np.zeros(MODEL.dimension, dtype=VECTOR_DTYPES[NEW_VECTOR_DTYPE]).tobytes()  # the right size, all zero
    _sql(index, "UPDATE vectors SET vector = ? WHERE chunk = (SELECT min(chunk) FROM vectors)", zero)
    report = check_index(index)
    problem = next(p for p in report.problems if "not finite unit vectors" in p)
    assert "'d0.txt'" in problem and "`indexer remove ID…`, then `indexer build CORPUS`" in problem


def test_tampered_settings_are_a_clear_corrupt_index(index):
    _sql(index, "UPDATE settings SET value = '{not json' WHERE key = 'model'")
    with pytest.raises(CorruptIndex, match=r"the setting 'model' .* is not valid JSON"):
        Index.open(index, model=MODEL)
    result = CliRunner().invoke(cli, ["check", "--index", str(index)])
    assert result.exit_code == 1 and "is not valid JSON" in result.output and "Traceback" not in result.output
    _sql(index, "UPDATE settings SET value = ? WHERE key = 'model'", json.dumps({"dimension": 64}))
    with pytest.raises(CorruptIndex, match=r"the setting 'model' .* has wrong fields"):
        Index.open(index, model=MODEL)


def test_repair_refuses_a_damaged_database_instead_of_saying_repaired(index):
    data = bytearray((index / "meta.db").read_bytes())
    page = 4096
    for at in range(3 * page, min(len(data), 6 * page)):  # scribble over a few pages of the tables
        data[at] = 0x5A
    (index / "meta.db").write_bytes(bytes(data))
    for name in ("meta.db-wal", "meta.db-shm"):
        (index / name).unlink(missing_ok=True)
    assert not check_index(index).ok
    result = CliRunner().invoke(cli, ["repair", "--index", str(index)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Repaired" not in result.output
    assert "indexer build" in result.output


def test_hnsw_returns_every_chunk_when_k_is_the_collection(tmp_path):
    corpus = write_files(tmp_path / "c", {f"d{i}.txt": f"Text number {i} about rivers." for i in range(300)})
    build_index(corpus, tmp_path / "idx", model=MODEL, index_type="hnsw")
    with Index.open(tmp_path / "idx", model=MODEL) as opened:
        hits = opened.search("rivers", k=len(opened))
        assert len(hits) == len(opened) == 300


def test_repair_rebuilds_a_stale_full_text_table(index):
    _sql(index, "UPDATE chunks SET text = 'changed' WHERE id = (SELECT min(id) FROM chunks)")
    assert not check_index(index).ok
    assert repair(index) is not None
    assert check_index(index).ok
