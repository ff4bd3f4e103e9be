"""Distributed builds on Ray (``--engine ray``) against local builds, with workers and drivers killed.

A local Ray cluster of 2 CPUs for the module; the model is use-multilingual (offline, numpy),
which each actor loads by name as the local build does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.chunking import DEFAULT_OVERLAP_TOKENS
from indexer.cli import cli
from indexer.reading import read_corpus
from indexer.writer import Writer, content_hash
from store import IndexDir, MissingDependency
from store.check import check_index
from store.database import NEW_VECTOR_DTYPE, VECTOR_DTYPES
from store.records import IndexSettings
from store.staging import STAGING_DIR
from tests.helpers import MULTILINGUAL_DOCS, write_files

MODEL = "use-multilingual"
CHUNK_TOKENS = 64
LONG = {
    "en/long.txt": " ".join(
        f"Sentence number {i} talks about rivers, mountains and the weather in spring." for i in range(30)
    ),
    "de/lang.md": " ".join(
        f"Satz {i}: Die Stadt liegt am Fluss, und im Sommer ist es dort sehr warm." for i in range(20)
    ),
    "records.jsonl": "\n".join(
        json.dumps({"id": f"r{i}", "text": f"Record {i}: a short note on topic {i % 3}.", "year": 2000 + i})
        for i in range(6)
    )
    + "\nnot json\n",
    "empty.txt": "",
}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_files(tmp_path_factory.mktemp("ray") / "corpus", {**MULTILINGUAL_DOCS, **LONG})


@pytest.fixture(scope="module")
def local(corpus, tmp_path_factory):
    """The reference: the corpus built locally, as ``(report, chunks)``."""
    index = tmp_path_factory.mktemp("local") / "idx"
    report = build_index(corpus, index, model=MODEL, chunk_tokens=CHUNK_TOKENS)
    return report, chunk_set(index)


def chunk_set(index: Path) -> dict[tuple[str, int], tuple]:
    """``{(doc_id, ord): (text, start, end, lang, doc lang, content hash, vector)}`` of the live chunks."""
    with IndexDir.open_for_reading(index) as idx:
        rows = idx.meta.conn.execute(
            'SELECT d.doc_id, c.ord, c.text, c.start, c."end", c.lang, d.lang, d.content_hash, v.vector '
            "FROM chunks c JOIN documents d ON d.id = c.document JOIN vectors v ON v.chunk = c.id "
            "WHERE d.pending = 0"
        ).fetchall()
    layout = VECTOR_DTYPES[NEW_VECTOR_DTYPE]
    return {(r[0], r[1]): (*r[2:8], np.frombuffer(r[8], dtype=layout).astype(np.float32)) for r in rows}


def assert_same(ray_chunks: dict, local_chunks: dict) -> None:
    assert ray_chunks.keys() == local_chunks.keys()
    for key, (*fields, vector) in ray_chunks.items():
        *local_fields, local_vector = local_chunks[key]
        assert fields == local_fields, key
        assert float(vector @ local_vector) >= 0.9999, key


def staging_of(index: Path) -> Path:
    return index / STAGING_DIR


@pytest.mark.slow
def test_ray_build_equals_local_build_and_embeds_only_changes(ray_cluster, corpus, local, tmp_path, monkeypatch):
    local_report, local_chunks = local
    mine = shutil.copytree(corpus, tmp_path / "corpus")
    index = tmp_path / "idx"
    result = CliRunner().invoke(
        cli,
        [
            "build",
            str(mine),
            "--index",
            str(index),
            "--model",
            MODEL,
            "--chunk-tokens",
            str(CHUNK_TOKENS),
            "--engine",
            "ray",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["chunks_embedded"] == report["chunks_total"] == local_report.chunks_total
    assert report["documents_added"] == local_report.documents_added
    assert report["skipped"] == local_report.skipped  # the same reasons, in the same order
    assert_same(chunk_set(index), local_chunks)
    assert not staging_of(index).exists()
    assert check_index(index).ok

    # Only new or changed documents are embedded. A new one whose key the workers take for a
    # stored version's (a 64-bit collision, forced here) is embedded by the driver instead.
    (mine / "en" / "bees.txt").write_text("Bumblebees pollinate tomatoes by shaking the flowers.", encoding="utf-8")
    (mine / "ru" / "shakhmaty.txt").unlink()
    (mine / "fr" / "neuf.txt").write_text("Un document nouveau sur les abeilles.", encoding="utf-8")
    (new,) = [d for d in read_corpus(mine / "fr" / "neuf.txt")]
    stored_keys = Writer.stored_keys
    settings = IndexSettings(chunk_tokens=CHUNK_TOKENS, overlap_tokens=DEFAULT_OVERLAP_TOKENS)
    collision = ("fr/neuf.txt", content_hash(new, settings))  # the hash ignores ids
    monkeypatch.setattr(Writer, "stored_keys", lambda self: stored_keys(self) | {collision})
    again = build_index(mine, index, engine="ray")
    assert (again.documents_added, again.documents_updated, again.documents_removed) == (1, 1, 1)
    assert again.documents_unchanged == local_report.documents_added - 2
    assert again.chunks_embedded == 2
    assert not staging_of(index).exists()
    chunks = chunk_set(index)
    assert chunks[("en/bees.txt", 0)][0].startswith("Bumblebees")
    assert chunks[("fr/neuf.txt", 0)][0].startswith("Un document nouveau")
    assert ("ru/shakhmaty.txt", 0) not in chunks


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_build_is_complete(ray_cluster, corpus, local, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv("BABELINDEX_CRASH_AT", "ray-embed")
    monkeypatch.setenv("BABELINDEX_CRASH_ONCE", str(marker))
    index = tmp_path / "idx"
    report = build_index(corpus, index, model=MODEL, chunk_tokens=CHUNK_TOKENS, engine="ray")
    assert marker.exists()  # an actor did SIGKILL itself on its first batch
    assert report.chunks_total == local[0].chunks_total
    assert_same(chunk_set(index), local[1])
    assert not staging_of(index).exists()


DRIVER = textwrap.dedent("""
    import sys, ray
    import indexer.ray_engine as engine
    from indexer.build import build_index
    engine.SHARD_CHUNKS = 4  # many small shards
    ray.init(address=sys.argv[3], logging_level="ERROR")
    build_index(sys.argv[1], sys.argv[2], model="use-multilingual", chunk_tokens=int(sys.argv[4]), engine="ray")
""")


@pytest.mark.slow
def test_a_build_whose_driver_died_resumes_from_its_shards(ray_cluster, corpus, local, tmp_path):
    index = tmp_path / "idx"
    env = dict(os.environ, BABELINDEX_CRASH_AT="shard:2")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(corpus), str(index), ray_cluster, str(CHUNK_TOKENS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr  # SIGKILLed right after its second shard
    (build,) = staging_of(index).iterdir()
    shards = sorted(build.glob("shard-*.parquet"))
    assert len(shards) == 2
    import pyarrow.parquet as pq

    staged = sum(pq.read_table(s).num_rows for s in shards)
    assert staged >= 8
    (build / ".shard-000003.parquet.tmp").write_bytes(b"PAR1 half a shard")  # as a kill mid-write leaves it

    report = build_index(corpus, index, engine="ray")
    assert report.chunks_embedded == local[0].chunks_total - staged  # the staged chunks were not embedded again
    assert report.documents_added == local[0].documents_added
    assert_same(chunk_set(index), local[1])
    assert not staging_of(index).exists()
    assert check_index(index).ok


def test_ray_engine_without_ray_says_how_to_install_it(multilingual_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'babelindex\[ray\]'"):
        build_index(multilingual_corpus, tmp_path / "idx", engine="ray")
    assert not (tmp_path / "idx").exists()
    result = CliRunner().invoke(
        cli, ["build", str(multilingual_corpus), "--index", str(tmp_path / "idx"), "--engine", "ray"]
    )
    assert result.exit_code == 1
    assert "pip install 'babelindex[ray]'" in result.output
