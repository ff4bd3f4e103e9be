"""`indexer import`: chunks with precomputed vectors from Parquet and JSONL files."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from indexer.cli import cli
from indexer.importing import import_vectors
from search import Index
from store import DimensionMismatch, IndexDir, InvalidInput, ModelMismatch, ModelNotAvailable
from store.check import check_index
from tests.fakes import HashingEmbedder

DOCS = {
    "bees": [
        "Honeybees carry pollen from flower to flower.",
        "A bee brushes against the stamens while collecting nectar.",
    ],
    "volcano": ["A volcano erupts when magma rises from deep below.", "Lava, ash and rock are thrown from the crater."],
    "tides": ["Tides are caused mainly by the pull of the moon."],
    "chess": [
        "Chess is a board game for two players.",
        "Each player starts with sixteen pieces.",
        "The goal is to checkmate the opposing king.",
    ],
}


def chunk_rows(embedder, docs=DOCS, **extra):
    """One row per chunk: doc_id, text, vector (as the embedder gives it), ord, lang, year."""
    rows = []
    for n, (doc_id, chunks) in enumerate(docs.items()):
        vectors = embedder.embed_documents(chunks)
        for i, (text, vec) in enumerate(zip(chunks, vectors, strict=True)):
            rows.append(
                {
                    "doc_id": doc_id,
                    "text": text,
                    "vector": [float(x) for x in vec * 3.0],
                    "ord": i,
                    "lang": "en",
                    "year": 2020 + n,
                    **extra,
                }
            )
    return rows


def write_parquet(path, rows, vector_type=None):
    vector_type = vector_type or pa.float32()
    table = pa.Table.from_pylist(rows)
    table = table.set_column(
        table.schema.get_field_index("vector"),
        "vector",
        pa.array([r["vector"] for r in rows], type=pa.list_(vector_type)),
    )
    pq.write_table(table, path)
    return path


def write_jsonl(path, rows, raw_lines=()):
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        for line in raw_lines:
            fh.write(line + "\n")
    return path


@pytest.fixture
def hashing():
    return HashingEmbedder(dimension=64)


def test_parquet_chunks_are_imported_normalised_and_searchable(tmp_path, hashing):
    # shuffled rows: a document's rows need not be adjacent, ord puts them in order
    rows = chunk_rows(hashing)
    rows = rows[::2] + rows[1::2]
    path = write_parquet(tmp_path / "chunks.parquet", rows, pa.float64())
    report = import_vectors([path], tmp_path / "i.idx", model=hashing)
    assert (report.rows_read, report.rows_rejected, report.documents_added, report.chunks_imported) == (8, 0, 4, 8)
    assert report.model_loaded and report.model_check_cosine == pytest.approx(1.0, abs=1e-4)
    assert report.index_type == "IDMap2,SQfp16" and report.chunks_total == 8

    with Index.open(tmp_path / "i.idx", model=hashing) as index:
        hit = index.search("magma rises from below", k=1)[0]
        assert (hit.doc_id, hit.text, hit.lang, hit.metadata) == ("volcano", DOCS["volcano"][0], "en", {"year": 2021})
        assert hit.score == pytest.approx(
            float(
                hashing.embed_queries(["magma rises from below"])[0] @ hashing.embed_documents([DOCS["volcano"][0]])[0]
            ),
            abs=1e-3,  # stored as float16: this test double's sparse vectors move most (dense ones ~1e-5)
        )
        # offsets: the chunks laid end to end with one newline between them
        chess = index.get_document("chess")
        ends = np.cumsum([len(t) + 1 for t in DOCS["chess"]]) - 1
        assert [(c["start"], c["end"]) for c in chess["chunks"]] == [
            (0, ends[0]),
            (ends[0] + 1, ends[1]),
            (ends[1] + 1, ends[2]),
        ]
        stats = index.stats()
        assert stats["imported_vectors"] and stats["chunks"] == 8
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        vecs = idx.meta.vectors(idx.meta.chunk_ids(), 64)
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)  # unit vectors, as float16 holds them
        assert idx.model_record().imported is True
    assert check_index(tmp_path / "i.idx").ok


def test_reimport_is_idempotent_and_a_changed_row_replaces_its_document(tmp_path, hashing):
    rows = chunk_rows(hashing)
    path = write_parquet(tmp_path / "chunks.parquet", rows)
    import_vectors([path], tmp_path / "i.idx", model=hashing)
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        before, version = idx.meta.chunk_ids(), idx.faiss_info().version

    again = import_vectors([path], tmp_path / "i.idx")  # the recorded model by default
    assert (again.documents_unchanged, again.documents_added, again.documents_updated, again.chunks_imported) == (
        4,
        0,
        0,
        0,
    )
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert np.array_equal(idx.meta.chunk_ids(), before) and idx.faiss_info().version == version

    rows[4]["text"] = "Tides follow the moon and, less, the sun."
    rows[4]["vector"] = [float(x) for x in hashing.embed_documents([rows[4]["text"]])[0]]
    changed = import_vectors([write_parquet(tmp_path / "chunks.parquet", rows)], tmp_path / "i.idx")
    assert (changed.documents_updated, changed.documents_unchanged, changed.chunks_imported) == (1, 3, 1)
    with Index.open(tmp_path / "i.idx", model=hashing) as index:
        assert [c["text"] for c in index.get_document("tides")["chunks"]] == [rows[4]["text"]]
        assert len(index) == 8


def test_bad_rows_are_rejected_with_reasons_and_the_rest_imported(tmp_path, hashing):
    rows = chunk_rows(hashing)
    import_vectors([write_jsonl(tmp_path / "good.jsonl", rows)], tmp_path / "i.idx", model=hashing)
    bad = [dict(r) for r in rows]
    bad[0]["vector"] = [math.nan, *bad[0]["vector"][1:]]  # bees, row 1
    bad[2]["vector"] = [0.0] * 64  # volcano, row 3
    bad[5]["vector"] = bad[5]["vector"][:63]  # chess, row 6
    bad[6]["text"] = ""  # chess, row 7
    for r in bad:
        r["year"] = 1999  # every document changed
    lines = ['{"doc_id": "x", "text": "y", "vector": [Infinity, 1]}', "not json", json.dumps({"text": "no id"})]
    path = write_jsonl(tmp_path / "bad.jsonl", bad, lines)
    report = import_vectors([path], tmp_path / "i.idx")
    reasons = {r["source"]: r["reason"] for r in report.rejected}
    assert reasons == {
        f"{path}:1": "the vector has NaN or infinite values",
        f"{path}:3": "the vector is all zeros (it has no direction to compare)",
        f"{path}:6": "the vector has 63 values; the index's vectors have 64",
        f"{path}:7": "no text in 'text'; choose the text field with --text-field",
        f"{path}:9": "the vector has 2 values; the index's vectors have 64",
        f"{path}:10": "invalid JSON (Expecting value at column 1)",
        f"{path}:11": "no 'doc_id' (fields: text); choose the id field with --id-field",
    }
    assert (report.rows_read, report.rows_rejected) == (11, 7)
    # documents with a rejected row keep their indexed version; the others are updated
    assert (report.documents_updated, report.documents_skipped) == (1, 4)
    with Index.open(tmp_path / "i.idx", model=hashing) as index:
        years = {d: index.get_document(d)["metadata"]["year"] for d in DOCS}
        assert years == {"bees": 2020, "volcano": 2021, "tides": 1999, "chess": 2023}
    assert check_index(tmp_path / "i.idx").ok


def test_dimension_and_model_mismatches_are_errors_that_write_nothing(tmp_path, hashing):
    import_vectors([write_parquet(tmp_path / "a.parquet", chunk_rows(hashing))], tmp_path / "i.idx", model=hashing)
    narrow = write_parquet(tmp_path / "b.parquet", chunk_rows(HashingEmbedder(dimension=32)))
    with pytest.raises(DimensionMismatch, match=r"the vectors have 32 dimensions, but .* holds 64-dimensional vectors"):
        import_vectors([narrow], tmp_path / "i.idx")
    with pytest.raises(ModelMismatch, match="holds vectors of the model 'hashing-test', not 'distiluse'"):
        import_vectors([tmp_path / "a.parquet"], tmp_path / "i.idx", model="distiluse")
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert idx.faiss_info().version == 1 and idx.meta.count("chunks") == 8

    with pytest.raises(InvalidInput, match="name the model that made these vectors with --model"):
        import_vectors([tmp_path / "a.parquet"], tmp_path / "new.idx")
    assert not (tmp_path / "new.idx").exists()
    with pytest.raises(
        InvalidInput, match=r"nothing to import: 0 rows read, 0 rejected \(first: .*a.parquet: no column 'embedding'"
    ):
        import_vectors([tmp_path / "a.parquet"], tmp_path / "new.idx", model=hashing, vector_field="embedding")
    assert not (tmp_path / "new.idx").exists()


def test_a_model_that_cannot_be_loaded_is_recorded_and_vectors_still_searchable(tmp_path, hashing):
    path = write_parquet(tmp_path / "a.parquet", chunk_rows(hashing))
    report = import_vectors([path], tmp_path / "i.idx", model="acme/spark-embedder")
    assert not report.model_loaded and report.model_check_cosine is None and report.documents_added == 4
    with Index.open(tmp_path / "i.idx") as index:
        query = hashing.embed_queries(["checkmate the king"])
        assert index.search_vectors(query, k=1)[0][0].doc_id == "chess"
        with pytest.raises(ModelNotAvailable, match=r"imported vectors.*Index.search_vectors"):
            index.search("checkmate the king")
    checked = check_index(tmp_path / "i.idx")
    assert checked.ok and any("no probe embedding" in w for w in checked.warnings)


def test_a_loadable_model_checks_the_vectors_and_embeds_queries(tmp_path, use_model):
    rows = chunk_rows(use_model)
    report = import_vectors([write_parquet(tmp_path / "a.parquet", rows)], tmp_path / "i.idx", model="use-multilingual")
    assert report.model_loaded and report.model_check_cosine >= 0.99
    with Index.open(tmp_path / "i.idx") as index:  # the recorded model embeds the query
        assert index.search("Wie entsteht Ebbe und Flut?", k=1)[0].doc_id == "tides"

    other = chunk_rows(HashingEmbedder(dimension=512))
    with pytest.raises(ModelMismatch, match="the vectors do not come from the model 'use-multilingual'"):
        import_vectors([write_parquet(tmp_path / "b.parquet", other)], tmp_path / "j.idx", model="use-multilingual")
    assert not (tmp_path / "j.idx").exists()


def test_a_folder_of_part_files_is_read_like_spark_output(tmp_path, hashing):
    rows = chunk_rows(hashing)
    (tmp_path / "out").mkdir()
    write_parquet(tmp_path / "out" / "part-00000.parquet", rows[:4])
    write_parquet(tmp_path / "out" / "part-00001.parquet", rows[4:])
    (tmp_path / "out" / "_SUCCESS").write_text("")
    report = import_vectors([tmp_path / "out"], tmp_path / "i.idx", model=hashing)
    assert (report.files, report.documents_added, report.chunks_imported) == (2, 4, 8)  # volcano spans both files


def test_one_row_per_document_and_metadata_column(tmp_path, hashing):
    texts = {"d1": "Ein Vulkan bricht aus, wenn Magma aufsteigt.", "d2": "La photosynthèse transforme la lumière."}
    rows = [
        {
            "doc_id": k,
            "text": t,
            "vector": hashing.embed_documents([t])[0].tolist(),
            "source": f"crawl/{k}.html",
            "metadata": json.dumps({"tags": ["a", "b"]}),
        }
        for k, t in texts.items()
    ]
    import_vectors([write_jsonl(tmp_path / "docs.jsonl", rows)], tmp_path / "i.idx", model=hashing)
    with Index.open(tmp_path / "i.idx", model=hashing) as index:
        doc = index.get_document("d2")
        assert doc["source"] == "crawl/d2.html" and doc["metadata"] == {"tags": ["a", "b"]}
        assert doc["lang"] == "fr" and [(c["start"], c["end"]) for c in doc["chunks"]] == [(0, len(texts["d2"]))]


def test_cli_import_prints_a_summary_and_rejections(tmp_path, hashing):
    rows = chunk_rows(hashing)
    rows[1]["vector"] = [0.0] * 64
    path = write_parquet(tmp_path / "a.parquet", rows)
    result = CliRunner().invoke(
        cli,
        ["import", str(path), "--index", str(tmp_path / "i.idx"), "--model", "acme/spark-embedder"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "rows:      8 read, 1 rejected" in result.output
    assert "documents: 3 added, 0 updated, 0 unchanged, 1 skipped" in result.output
    assert f"{path}:2: the vector is all zeros" in result.output
    result = CliRunner().invoke(
        cli, ["import", str(path), "--index", str(tmp_path / "i.idx"), "--json"], catch_exceptions=False
    )
    data = json.loads(result.output)
    assert data["documents_unchanged"] == 3 and data["rows_rejected"] == 1 and data["dimension"] == 64
    result = CliRunner().invoke(cli, ["import", str(path), "--index", str(tmp_path / "i.idx"), "--model", "distiluse"])
    assert result.exit_code == 1 and "Error: " in result.output and "not 'distiluse'" in result.output
