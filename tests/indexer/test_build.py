"""build_index: what lands in SQLite and FAISS, incremental builds, skips, model checks."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from indexer.build import build_index
from search import Index
from store import IndexDir, InvalidInput, ModelMismatch
from store.faiss_index import index_ids
from tests.helpers import write_files


def _live_chunks(index_path):
    with IndexDir.open_for_reading(index_path) as idx:
        return {
            row[0]: row[1:]
            for row in idx.meta.conn.execute(
                "SELECT c.id, d.doc_id, c.text FROM chunks c JOIN documents d ON d.id = c.document WHERE d.pending = 0"
            )
        }


def test_build_stores_documents_chunks_vectors_and_a_matching_faiss_index(tmp_path, multilingual_corpus, tiny_model):
    report = build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    assert (report.documents_added, report.documents_skipped, report.documents_removed) == (6, 0, 0)
    assert report.chunks_embedded == report.chunks_total >= 6
    assert report.index_type == "IDMap2,SQfp16"
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        ids = idx.meta.chunk_ids()
        index, _info = idx.load_faiss()
        assert sorted(index_ids(index).tolist()) == ids.tolist()
        vecs = idx.meta.vectors(ids, tiny_model.dimension)
        assert vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=5e-4)  # float16 unit vectors
        assert idx.meta.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        model = idx.model_record()
        assert model.dimension == 32 and model.pooling == "mean" and len(model.probe) == 32
        docs = dict(idx.meta.conn.execute("SELECT doc_id, lang FROM documents").fetchall())
    assert docs == {
        "en/bees.txt": "en",
        "de/vulkan.md": "de",
        "fr/photosynthese.txt": "fr",
        "es/cafe.html": "es",
        "ja/kaiyo.txt": "ja",
        "ru/shakhmaty.txt": "ru",
    }


def test_rebuild_without_changes_embeds_nothing_and_keeps_the_version(tmp_path, multilingual_corpus, tiny_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    before = _live_chunks(tmp_path / "i.idx")
    report = build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    assert report.chunks_embedded == 0
    assert (report.documents_added, report.documents_updated, report.documents_removed, report.documents_unchanged) == (
        0,
        0,
        0,
        6,
    )
    assert _live_chunks(tmp_path / "i.idx") == before
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert idx.faiss_info().version == 1


def test_incremental_add_change_delete(tmp_path, multilingual_corpus, tiny_model):
    index = tmp_path / "i.idx"
    build_index(multilingual_corpus, index, model=tiny_model)
    before = _live_chunks(index)
    (multilingual_corpus / "en/bees.txt").write_text(
        "Bumblebees are larger and hairier than honeybees.", encoding="utf-8"
    )
    (multilingual_corpus / "ru/shakhmaty.txt").unlink()
    write_files(multilingual_corpus, {"it/pasta.txt": "La pasta si cuoce in acqua bollente e salata."})
    report = build_index(multilingual_corpus, index, model=tiny_model)
    assert (report.documents_added, report.documents_updated, report.documents_removed, report.documents_unchanged) == (
        1,
        1,
        1,
        4,
    )
    assert report.chunks_embedded == 2
    after = _live_chunks(index)
    docs_after = {doc for doc, _ in after.values()}
    assert "ru/shakhmaty.txt" not in docs_after and "it/pasta.txt" in docs_after
    # Unchanged documents keep their chunk ids; new chunks get new, higher ids (never reused).
    kept = {cid for cid, (doc, _) in before.items() if doc not in ("en/bees.txt", "ru/shakhmaty.txt")}
    assert kept <= set(after)
    assert min(set(after) - kept) > max(before)
    with IndexDir.open_for_reading(index) as idx:
        faiss_index, info = idx.load_faiss()
        assert sorted(index_ids(faiss_index).tolist()) == sorted(after)
        assert info.version == 2
        assert sorted(p.name for p in (index / "faiss").iterdir()) == ["v000001.faiss", "v000002.faiss"]
    hits = Index.open(index, model=tiny_model).search("Bumblebees", k=10)
    assert all(h.doc_id != "ru/shakhmaty.txt" for h in hits)
    assert "Bumblebees are larger and hairier than honeybees." in [h.text for h in hits]


def test_documents_of_another_corpus_are_not_removed(tmp_path, multilingual_corpus, tiny_model):
    other = write_files(tmp_path / "other", {"notes.txt": "A note about something else entirely."})
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    report = build_index(other, tmp_path / "i.idx", model=tiny_model)
    assert (report.documents_added, report.documents_removed) == (1, 0)
    assert report.chunks_total == len(_live_chunks(tmp_path / "i.idx"))
    assert len({doc for doc, _ in _live_chunks(tmp_path / "i.idx").values()}) == 7


def test_a_file_that_becomes_binary_is_removed_with_a_report(tmp_path, multilingual_corpus, tiny_model):
    """As a clean build would have it (issue 17: an emptied file's old text stayed searchable)."""
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    (multilingual_corpus / "en/bees.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    report = build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    assert report.skipped == [
        {"source": "en/bees.txt", "reason": "binary file (PNG image) (its indexed version was removed from the index)"}
    ]
    assert report.documents_removed == 1
    assert "en/bees.txt" not in {doc for doc, _ in _live_chunks(tmp_path / "i.idx").values()}


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path, tiny_model):
    corpus = write_files(
        tmp_path / "c",
        {
            "good.txt": "A perfectly good document about rivers and lakes.",
            "image.txt": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            "empty.md": "",
            "data.bin": b"\x00\x01\x02",
            "records.jsonl": '{"text": "first record"}\nnot json\n{"body": "no text field"}\n',
            ".hidden/secret.txt": "must not be indexed",
        },
    )
    report = build_index(corpus, tmp_path / "i.idx", model=tiny_model)
    assert report.documents_added == 2
    assert report.documents_skipped == 5
    assert {(s["source"], s["reason"].split(";")[0]) for s in report.skipped} == {
        ("image.txt", "binary file (PNG image)"),
        ("empty.md", "empty file"),
        ("data.bin", "unsupported file type .bin"),
        ("records.jsonl:2", "invalid JSON (Expecting value at column 1)"),
        ("records.jsonl:3", "1 record has no field 'text' (fields: body)"),
    }
    assert {doc for doc, _ in _live_chunks(tmp_path / "i.idx").values()} == {"good.txt", "records.jsonl#1"}


def test_record_files_with_id_field_and_duplicate_ids(tmp_path, tiny_model):
    corpus = write_files(
        tmp_path / "c",
        {
            "a.jsonl": '{"id": "x1", "text": "alpha text", "year": 2021}\n{"id": "x2", "text": "beta text"}\n',
            "b.csv": "id,text,tag\nx3,gamma text,g\nx1,duplicate id text,d\n",
        },
    )
    report = build_index(corpus, tmp_path / "i.idx", model=tiny_model, id_field="id")
    assert report.documents_added == 3
    assert report.skipped == [
        {"source": "b.csv", "reason": "duplicate document id 'x1'; ids must be unique (see --id-field)"}
    ]
    hits = {h.doc_id: h for h in Index.open(tmp_path / "i.idx", model=tiny_model).search("alpha", k=3)}
    assert hits["x1"].metadata == {"year": 2021}
    assert hits["x3"].metadata == {"tag": "g"}
    assert hits["x1"].source == "a.jsonl"


def test_changing_chunk_size_rechunks_everything(tmp_path, multilingual_corpus, tiny_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    report = build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model, chunk_tokens=16, overlap_tokens=4)
    assert report.documents_updated == 6
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert max(r[0] for r in idx.meta.conn.execute("SELECT n_tokens FROM chunks")) <= 16
        assert idx.meta.get_setting("build")["chunk_tokens"] == 16


def test_long_document_is_covered_entirely_within_the_token_limit(tmp_path, tiny_model):
    sentences = [f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(600)]
    text = " ".join(sentences)
    corpus = write_files(tmp_path / "c", {"long.txt": text})
    build_index(corpus, tmp_path / "i.idx", model=tiny_model, chunk_tokens=64, overlap_tokens=8)
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        rows = idx.meta.conn.execute('SELECT text, start, "end", n_tokens FROM chunks ORDER BY ord').fetchall()
    covered = np.zeros(len(text), dtype=bool)
    for chunk, start, end, n_tokens in rows:
        assert chunk == text[start:end]
        assert n_tokens == tiny_model.count_tokens([chunk])[0] <= 64
        covered[start:end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    assert rows[-1][0].endswith("Sentence number 599 talks about topic 4 in some detail.")


def test_ivf_index_type_is_recorded(tmp_path, tiny_model):
    corpus = write_files(
        tmp_path / "c", {f"d{i}.txt": f"Document {i} mentions item {i * 7919 % 1000}." for i in range(120)}
    )
    report = build_index(corpus, tmp_path / "i.idx", model=tiny_model, index_type="ivf")
    assert report.index_type == "IVF3,Flat"
    stats = Index.open(tmp_path / "i.idx", model=tiny_model).stats()
    assert (stats["index_type"], stats["nlist"]) == ("IVF3,Flat", 3)
    assert 1 <= stats["nprobe"] <= 3
    # The recorded type is kept by later builds that do not name one.
    write_files(corpus, {"new.txt": "One more document."})
    assert build_index(corpus, tmp_path / "i.idx", model=tiny_model).index_type == "IVF3,Flat"


def test_another_model_on_an_existing_index_is_refused(tmp_path, multilingual_corpus, tiny_model, use_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    with pytest.raises(ModelMismatch) as err:
        build_index(multilingual_corpus, tmp_path / "i.idx", model=use_model)
    message = str(err.value)
    assert str(tiny_model.name) in message and "'use-multilingual'" in message and "new --index" in message
    with pytest.raises(ModelMismatch, match="use-multilingual"):
        Index.open(tmp_path / "i.idx", model=use_model)


def test_bad_options_are_refused_before_anything_is_written(tmp_path, multilingual_corpus, tiny_model):
    with pytest.raises(InvalidInput, match="does not exist"):
        build_index(tmp_path / "nope", tmp_path / "i.idx", model=tiny_model)
    with pytest.raises(InvalidInput, match="--overlap-tokens must be"):
        build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model, chunk_tokens=32, overlap_tokens=32)
    (tmp_path / "notanindex").mkdir()
    (tmp_path / "notanindex" / "file.txt").write_text("x")
    with pytest.raises(InvalidInput, match="not a babelindex index"):
        build_index(multilingual_corpus, tmp_path / "notanindex", model=tiny_model)


def test_vectors_in_sqlite_match_a_fresh_embedding(tmp_path, multilingual_corpus, tiny_model):
    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    conn = sqlite3.connect(tmp_path / "i.idx" / "meta.db")
    rows = conn.execute("SELECT c.text, v.vector FROM chunks c JOIN vectors v ON v.chunk = c.id").fetchall()
    stored = np.stack([np.frombuffer(blob, dtype="<f2") for _, blob in rows])  # float16 (NEW_VECTOR_DTYPE)
    fresh = tiny_model.embed_documents([text for text, _ in rows])
    np.testing.assert_allclose(stored.astype(np.float32), fresh, atol=5e-4)  # within float16's rounding


def test_a_model_that_fails_to_load_leaves_no_empty_index_behind(tmp_path, multilingual_corpus, monkeypatch):
    from store import ModelNotAvailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotAvailable):
        build_index(multilingual_corpus, tmp_path / "new.idx")
    assert not (tmp_path / "new.idx").exists()


def test_an_interrupted_rechunk_resumes_with_the_documents_still_to_do(
    tmp_path, multilingual_corpus, tiny_model, monkeypatch
):
    from indexer import writer as build_module

    build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    before = _live_chunks(tmp_path / "i.idx")
    monkeypatch.setattr(build_module, "FLUSH_CHUNKS", 10)
    monkeypatch.setattr(build_module, "PENDING_CHUNKS", 10)
    calls = {"n": 0}
    real = tiny_model.embed_documents

    def failing(texts):
        calls["n"] += 1
        if calls["n"] == 3:  # call 1 is the model probe, call 2 the first batch
            raise KeyboardInterrupt
        return real(texts)

    monkeypatch.setattr(tiny_model, "embed_documents", failing)
    with pytest.raises(KeyboardInterrupt):
        build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model, chunk_tokens=16, overlap_tokens=4)
    monkeypatch.setattr(tiny_model, "embed_documents", real)
    # Readers still see exactly the last published state.
    assert _live_chunks(tmp_path / "i.idx") == before
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        done = idx.meta.conn.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document WHERE d.pending = 1 AND d.complete = 1"
        ).fetchone()[0]
    assert done >= 1
    report = build_index(multilingual_corpus, tmp_path / "i.idx", model=tiny_model)
    assert (report.documents_updated, report.documents_unchanged) == (6, 0)
    assert report.chunks_embedded == report.chunks_total - done  # stored chunks are not embedded again
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert max(r[0] for r in idx.meta.conn.execute("SELECT n_tokens FROM chunks")) <= 16
        assert idx.meta.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 6


def test_an_index_inside_its_own_corpus_is_not_read_as_documents(tmp_path, multilingual_corpus, tiny_model):
    index = multilingual_corpus / "my.idx"
    build_index(multilingual_corpus, index, model=tiny_model)
    report = build_index(multilingual_corpus, index, model=tiny_model)
    assert report.skipped == [] and report.documents_unchanged == 6 and report.chunks_embedded == 0
