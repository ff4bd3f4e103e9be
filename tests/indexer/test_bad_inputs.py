"""Inputs that must never stop, stall or fool a build (issue 17): each is reported, the good
files beside it are indexed, and an incremental build equals a clean one."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import zlib
from pathlib import Path

import pytest

from indexer import extraction
from indexer.build import build_index
from indexer.cleaning import clean_text, path_bytes, path_text
from indexer.reading import Document, RecordFields, Skipped, read_corpus
from store import IndexDir
from tests.fakes import HashingEmbedder
from tests.helpers import write_files
from tests.indexer.test_reading import make_pdf

GOOD = "Lighthouses guide ships along dangerous coasts with bright, rotating beams of light."


def read(root, **fields) -> list[Document | Skipped]:
    return list(read_corpus(root, RecordFields(**fields)))


def flate_pdf(stream: bytes) -> bytes:
    """A one-page PDF whose content stream is ``stream``, Flate-compressed."""
    return make_pdf(zlib.compress(stream, 9), filters=b"/Filter /FlateDecode")


def build(corpus, index, **kw):
    return build_index(corpus, index, model=HashingEmbedder(), **kw)


def indexed(index) -> dict[str, tuple[str, str]]:
    """``{doc_id: (source, all chunk text)}`` of the live documents."""
    with IndexDir.open_for_reading(index) as idx:
        rows = idx.meta.conn.execute(
            "SELECT d.doc_id, d.source, group_concat(c.text, '|') FROM documents d JOIN chunks c ON c.document = d.id "
            "WHERE d.pending = 0 GROUP BY d.id ORDER BY d.doc_id"
        ).fetchall()
    return {d: (s, t) for d, s, t in rows}


# --- names and characters that UTF-8 cannot hold ----------------------------------------------


def test_path_text_is_readable_lossless_and_leaves_ordinary_names_alone():
    assert path_text("dossier/résumé.txt") == "dossier/résumé.txt"
    name = os.fsdecode(b"bad-\xff\xfe.txt")
    assert path_text(name) == "bad-\\xff\\xfe.txt"
    assert path_text("a\\xff.txt") == "a\\\\xff.txt"  # a literal backslash never reads as an escape
    for raw in (b"bad-\xff.txt", b"a\\xff.txt", b"\\\\", "ok-é".encode(), b"\xc3(\\x41"):
        assert path_bytes(path_text(os.fsdecode(raw))) == raw


def test_a_file_name_that_is_not_utf8_is_indexed_under_a_stable_escaped_name(tmp_path):
    corpus = write_files(tmp_path / "c", {"good.txt": GOOD})
    with open(os.path.join(os.fsencode(corpus), b"bad-\xff.txt"), "wb") as fh:
        fh.write(b"A file whose name is Latin-1, not UTF-8.")
    first = build(corpus, tmp_path / "i.idx")
    assert (first.documents_added, first.skipped) == (2, [])
    assert set(indexed(tmp_path / "i.idx")) == {"bad-\\xff.txt", "good.txt"}
    again = build(corpus, tmp_path / "i.idx")
    assert (again.documents_added, again.documents_unchanged, again.documents_removed) == (0, 2, 0)


def test_clean_text_removes_nuls_and_replaces_lone_surrogates():
    assert clean_text("plain") == ("plain", None)
    assert clean_text("a\x00b\x00") == ("ab", "2 NUL characters removed")
    assert clean_text("bad \ud800 x\udfff") == ("bad \ufffd x\ufffd", "2 lone surrogates replaced by U+FFFD")


def test_a_jsonl_record_with_a_lone_surrogate_is_indexed_cleaned_and_reported(tmp_path):
    records = '{"text": "bad \\ud800 record", "tag": "\\udc00"}\n' + json.dumps({"text": GOOD}) + "\n"
    corpus = write_files(tmp_path / "c", {"r.jsonl": records})
    report = build(corpus, tmp_path / "i.idx")
    assert report.documents_added == 2 and report.skipped == []
    assert report.warnings == [{"source": "r.jsonl", "warning": "line 1: 1 lone surrogate replaced by U+FFFD"}]
    assert indexed(tmp_path / "i.idx")["r.jsonl#1"][1] == "bad \ufffd record"


def test_a_nul_after_the_first_8_kb_is_removed_and_reported(tmp_path):
    text = "word " * 2000 + "\x00tail after the NUL"
    write_files(tmp_path, {"n.txt": text})
    [doc] = read(tmp_path)
    assert "\x00" not in doc.text and doc.text.endswith("tail after the NUL")
    assert doc.notes == ("1 NUL character removed",)


# --- any failure of one document is that document's skip --------------------------------------


def test_a_pdf_whose_stream_decompresses_past_pypdfs_limit_is_skipped(tmp_path):
    write_files(tmp_path, {"bomb.pdf": flate_pdf(b" " * 100_000_000), "good.txt": GOOD})
    items = read(tmp_path)
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.source == "bomb.pdf" and skip.reason.startswith("unreadable PDF (LimitReachedError: ")
    assert [i.doc_id for i in items if isinstance(i, Document)] == ["good.txt"]


def test_an_unexpected_exception_while_reading_one_file_is_its_skip(tmp_path, monkeypatch):
    from indexer import reading

    def boom(html):
        raise RuntimeError("a bug in an extraction library")

    monkeypatch.setattr(reading, "_html_text", boom)
    write_files(tmp_path, {"a.html": "<p>x</p>", "b.txt": GOOD})
    assert read(tmp_path) == [
        Skipped("a.html", "cannot read: RuntimeError: a bug in an extraction library"),
        Document("b.txt", "b.txt", GOOD, {}),
    ]


def test_an_exception_while_chunking_one_document_skips_it_and_the_build_goes_on(tmp_path, monkeypatch):
    from indexer import writer

    real = writer.chunk_text

    def chunk_text(text, *args, **kwargs):
        if "POISON" in text:
            raise ValueError("the chunker choked")
        return real(text, *args, **kwargs)

    corpus = write_files(tmp_path / "c", {"good.txt": GOOD, "poison.txt": "POISON " + GOOD})
    build(corpus, tmp_path / "i.idx")
    monkeypatch.setattr(writer, "chunk_text", chunk_text)
    (corpus / "poison.txt").write_text("POISON, changed " + GOOD)
    report = build(corpus, tmp_path / "i.idx")
    assert report.skipped == [
        {
            "source": "poison.txt",
            "reason": "cannot index document 'poison.txt': ValueError: the chunker choked "
            "(its indexed version was removed from the index)",
        }
    ]
    assert (report.documents_unchanged, report.documents_removed) == (1, 1)
    assert set(indexed(tmp_path / "i.idx")) == {"good.txt"}


# --- budgets --------------------------------------------------------------------------------


def test_a_pdf_that_takes_longer_than_its_budget_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(extraction, "EXTRACT_SECONDS", 2.0)
    ops = b"BT /F1 12 Tf 72 720 Td (Hello world) Tj ET\n" * 400_000  # 17 MB of text operators
    write_files(tmp_path, {"slow.pdf": flate_pdf(ops), "z.pdf": make_pdf(b"BT /F1 24 Tf 72 720 Td (Fine) Tj ET")})
    started = time.monotonic()
    items = read(tmp_path)
    assert time.monotonic() - started < 30
    assert items == [
        Skipped("slow.pdf", "PDF extraction took more than 2 s"),
        Document("z.pdf", "z.pdf", "Fine", {}),  # a new worker took over
    ]


def test_a_pdf_that_needs_more_memory_than_its_budget_is_skipped_with_the_reason(tmp_path):
    extractor = extraction.Extractor(memory_mb=300)
    path = tmp_path / "big.pdf"
    path.write_bytes(flate_pdf(b"BT /F1 12 Tf 72 720 Td (" + b"A" * 60_000_000 + b") Tj ET"))  # one 60 MB string
    try:
        with pytest.raises(extraction.ExtractionFailed, match=r"^PDF extraction needed more than 300 MB of memory$"):
            extractor.pdf(path)
        good = tmp_path / "good.pdf"
        good.write_bytes(make_pdf(b"BT /F1 24 Tf 72 720 Td (Fine) Tj ET"))
        assert extractor.pdf(good) == ("Fine", None)  # a new worker took over
    finally:
        extractor.close()


def test_a_text_longer_than_the_document_limit_is_skipped_quickly(tmp_path, monkeypatch):
    from indexer import reading

    monkeypatch.setattr(reading, "MAX_DOCUMENT_CHARS", 1_000_000)
    write_files(tmp_path, {"long.txt": "word" * 300_000, "r.jsonl": json.dumps({"text": "x" * 1_000_001}) + "\n"})
    assert read(tmp_path) == [
        Skipped("long.txt", "text too long (1,200,000 characters; the limit is 1,000,000): split the file"),
        Skipped(
            "r.jsonl",
            "text too long (1,000,001 characters; the limit is 1,000,000): split the record",
            1,
            doc_ids=("r.jsonl#1",),
        ),
    ]


# --- files that change: an incremental build equals a clean build -----------------------------


def test_an_emptied_or_binary_file_is_removed_from_the_index_with_a_report(tmp_path):
    corpus = write_files(tmp_path / "c", {"a.txt": "the secret " + GOOD, "b.txt": GOOD, "c.txt": "third " + GOOD})
    build(corpus, tmp_path / "i.idx")
    (corpus / "a.txt").write_bytes(b"")
    (corpus / "b.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)))
    report = build(corpus, tmp_path / "i.idx")
    assert report.skipped == [
        {"source": "a.txt", "reason": "empty file (its indexed version was removed from the index)"},
        {"source": "b.txt", "reason": "binary file (ELF executable) (its indexed version was removed from the index)"},
    ]
    assert report.documents_removed == 2
    assert set(indexed(tmp_path / "i.idx")) == {"c.txt"}


def _change(rng: random.Random, corpus: Path, rel: str, how: str) -> None:
    path = corpus / rel
    if path.is_dir():
        shutil.rmtree(path)
    if how == "delete":
        path.unlink(missing_ok=True)
    elif how == "folder":  # the file becomes a folder of the same name
        path.unlink(missing_ok=True)
        write_files(path, {"inner.txt": f"now a folder {rng.random()} " + GOOD})
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(300))
    elif how == "truncate":
        data = path.read_bytes() if path.is_file() else GOOD.encode()
        path.write_bytes(data[: max(1, len(data) // 3)])
    else:  # rewrite
        path.write_text(" ".join(rng.choices(GOOD.split(), k=rng.randint(5, 200))) + f" {rng.random()}.")


@pytest.mark.parametrize("seed", [0, 1])
def test_an_incremental_build_equals_a_clean_build_after_25_random_changes(tmp_path, seed):
    rng = random.Random(seed)
    files = {f"d{i % 3}/f{i:02d}.txt": " ".join(rng.choices(GOOD.split(), k=rng.randint(5, 400))) for i in range(30)}
    files["r.jsonl"] = "".join(json.dumps({"text": f"record {i} " + GOOD}) + "\n" for i in range(5))
    corpus = write_files(tmp_path / "c", files)
    build(corpus, tmp_path / "inc.idx")
    kinds = ["rewrite", "truncate", "empty", "binary", "delete", "folder"]
    for n, rel in enumerate(rng.sample(sorted(files), 25)):
        _change(rng, corpus, rel, kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds))
    incremental = build(corpus, tmp_path / "inc.idx")
    clean = build(corpus, tmp_path / "clean.idx")
    assert indexed(tmp_path / "inc.idx") == indexed(tmp_path / "clean.idx")
    assert incremental.documents_skipped == clean.documents_skipped
    assert incremental.chunks_total == clean.chunks_total


def test_a_build_resumed_after_a_kill_reports_the_removals_it_publishes(tmp_path):
    from indexer.writer import BuildReport, Writer, resolve_settings

    corpus = write_files(tmp_path / "c", {f"f{i:02d}.txt": f"document {i} " + GOOD for i in range(12)})
    build(corpus, tmp_path / "i.idx")
    for i in range(10):
        (corpus / f"f{i:02d}.txt").unlink()
    # A build that marked the removals and died before publishing them (as a SIGKILL would leave it).
    with IndexDir.open_for_writing(tmp_path / "i.idx") as idx:
        report = BuildReport(index="i.idx", model="hashing-test")
        writer = Writer(idx, HashingEmbedder(), resolve_settings(idx), report, corpus=str(corpus.resolve()))
        for item in read_corpus(corpus):
            writer.add(item)
        writer.finish()
        assert report.documents_removed == 10
    resumed = build(corpus, tmp_path / "i.idx")
    assert (resumed.documents_removed, resumed.documents_unchanged) == (10, 2)
    assert set(indexed(tmp_path / "i.idx")) == {"f10.txt", "f11.txt"}


# --- HTML -------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [300, 1500, 5000])
def test_html_nested_deeper_than_the_parsers_limit_keeps_its_text(tmp_path, depth):
    html = (
        "<html><head><title>Deep</title><script>var hidden = 1;</script></head><body>"
        + "<div>" * depth
        + "deep text"
        + "</div>" * depth
        + "<p>A paragraph after the nesting.</p></body></html>"
    )
    write_files(tmp_path, {"deep.html": html})
    [doc] = read(tmp_path)
    assert doc.text.split() == ["deep", "text", "A", "paragraph", "after", "the", "nesting."]
    assert doc.metadata == {"title": "Deep"}


# --- indexer import rows ---------------------------------------------------------------------


def test_import_rejects_a_boolean_vector_and_a_lang_that_is_not_a_language_code(tmp_path):
    from indexer.importing import import_vectors

    hashing = HashingEmbedder(dimension=8)
    good = [float(x) for x in hashing.embed_documents(["fine"])[0]]
    rows = [
        {"doc_id": "ok", "text": "fine", "vector": good, "lang": "pt-BR"},
        {"doc_id": "bools", "text": "true/false", "vector": [True, False] * 4},
        {"doc_id": "long-lang", "text": "x", "vector": good, "lang": "x" * 1000},
        {"doc_id": "num-lang", "text": "x", "vector": good, "lang": 7},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = import_vectors([path], tmp_path / "i.idx", model=hashing)
    assert {r["source"]: r["reason"] for r in report.rejected} == {
        f"{path}:2": "'vector' holds true/false values, not numbers",
        f"{path}:3": "'lang' must be a language code such as 'de' or 'pt-BR', not 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…",
        f"{path}:4": "'lang' must be a language code such as 'de' or 'pt-BR', not 7",
    }
    assert report.documents_added == 1
