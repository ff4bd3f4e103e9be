"""Tests for indexer.reading: formats, record files, walking folders, symlinks, skips and reasons."""

from __future__ import annotations

import json
import logging
import os

import pytest

from indexer.reading import SUPPORTED, Document, RecordFields, Skipped, read_corpus, walk
from tests.helpers import write_files

SUPPORTED_LIST = ".csv .htm .html .jsonl .markdown .md .ndjson .pdf .rst .text .txt .xhtml"


def read(root, **fields) -> list[Document | Skipped]:
    return list(read_corpus(root, RecordFields(**fields)))


def docs(items) -> list[Document]:
    return [i for i in items if isinstance(i, Document)]


def skips(items) -> list[Skipped]:
    return [i for i in items if isinstance(i, Skipped)]


def make_pdf(content: bytes | None, title: str | None = None, filters: bytes = b"") -> bytes:
    """A minimal valid one-page PDF; ``content`` is the page's content stream (None: no stream),
    encoded as ``filters`` says (e.g. ``b"/Filter /FlateDecode"``).

    Offsets in the xref table are computed from the bytes written, so pypdf reads it
    without repairing anything.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >>"
        + (b" /Contents 4 0 R" if content is not None else b"")
        + b" >>",
        b"<< /Length %d %s>>\nstream\n" % (len(content or b""), filters + b" " if filters else b"")
        + (content or b"")
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if title is not None:
        objects.append(b"<< /Title (" + title.encode("latin-1") + b") /Producer (babelindex tests) >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    info = b" /Info %d 0 R" % len(objects) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


HELLO_PDF_STREAM = b"BT /F1 24 Tf 72 720 Td (Hello PDF world) Tj ET"


# --- Plain text formats ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.txt", "a.text", "a.rst", "A.TXT"])
def test_text_formats(tmp_path, name):
    text = "# Title\n\nSome *text* with ``markup`` — kept as is.\n"
    write_files(tmp_path, {name: text})
    assert read(tmp_path) == [Document(doc_id=name, source=name, text=text, metadata={})]


@pytest.mark.parametrize("name", ["a.md", "a.markdown", "notes.Md"])
def test_markdown_is_read_without_its_markup(tmp_path, name):
    write_files(tmp_path, {name: "# Title\n\nSome *text* with ``markup`` — kept as is.\n"})
    text = "Title\n\nSome text with markup — kept as is."
    assert read(tmp_path) == [Document(doc_id=name, source=name, text=text, metadata={"title": "Title"})]


def test_text_in_a_legacy_encoding_is_decoded(tmp_path):
    text = "Die Bücher über Äpfel und Öl gehören dem Straßenverkäufer. Größe zählt nicht."
    write_files(tmp_path, {"de.txt": text.encode("latin-1")})
    assert read(tmp_path) == [Document("de.txt", "de.txt", text, {})]


def test_utf8_bom_is_not_part_of_the_text(tmp_path):
    write_files(tmp_path, {"bom.txt": b"\xef\xbb\xbfHello"})
    assert read(tmp_path) == [Document("bom.txt", "bom.txt", "Hello", {})]


def test_binary_content_with_a_text_extension(tmp_path):
    write_files(tmp_path, {"photo.txt": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4})
    assert read(tmp_path) == [Skipped("photo.txt", "binary file (PNG image)")]


# --- HTML ----------------------------------------------------------------------------------------

PAGE = (
    "<!DOCTYPE html><html><head><title> The Page Title </title>"
    "<meta charset='utf-8'><style>body { color: red; }</style>"
    "<script>var headScript = 'head secret';</script></head>"
    "<body><h1>Main heading</h1><p>First paragraph text.</p>"
    "<script>alert('body secret');</script><style>.x { display: none }</style>"
    "<p>Second <b>bold</b> paragraph.</p></body></html>"
)


@pytest.mark.parametrize("name", ["page.html", "page.htm", "page.xhtml"])
def test_html_visible_text_only(tmp_path, name):
    write_files(tmp_path, {name: PAGE})
    [doc] = read(tmp_path)
    assert doc.doc_id == doc.source == name
    assert doc.text == "Main heading\n\nFirst paragraph text.\n\nSecond bold paragraph."
    for hidden in ("head secret", "headScript", "body secret", "alert", "color: red", "display", "The Page Title"):
        assert hidden not in doc.text
    assert doc.metadata == {"title": "The Page Title"}


def test_html_without_title_has_no_title_metadata(tmp_path):
    write_files(tmp_path, {"frag.htm": "<p>Just a fragment &amp; an entity.</p>"})
    assert read(tmp_path) == [Document("frag.htm", "frag.htm", "Just a fragment & an entity.", {})]


def test_html_with_only_a_title_has_no_text(tmp_path):
    write_files(tmp_path, {"t.html": "<html><head><title>Only a title</title></head><body> </body></html>"})
    assert read(tmp_path) == [Skipped("t.html", "no text in file")]


def test_html_in_latin1(tmp_path):
    write_files(tmp_path, {"de.html": "<p>Größere Äpfel schmecken süßer als kleine Äpfel.</p>".encode("latin-1")})
    assert docs(read(tmp_path))[0].text == "Größere Äpfel schmecken süßer als kleine Äpfel."


# --- PDF -----------------------------------------------------------------------------------------


def test_pdf_text_layer(tmp_path, caplog):
    write_files(tmp_path, {"hello.pdf": make_pdf(HELLO_PDF_STREAM)})
    with caplog.at_level(logging.WARNING, logger="pypdf"):
        assert read(tmp_path) == [Document("hello.pdf", "hello.pdf", "Hello PDF world", {})]
    assert caplog.records == []  # the hand-written PDF is valid: pypdf repaired nothing


def test_pdf_title_metadata(tmp_path):
    write_files(tmp_path, {"t.pdf": make_pdf(HELLO_PDF_STREAM, title="A Title")})
    assert read(tmp_path) == [Document("t.pdf", "t.pdf", "Hello PDF world", {"title": "A Title"})]


@pytest.mark.parametrize("content", [b"0 0 1 rg 100 100 200 200 re f", b"", None])
def test_pdf_without_text_layer(tmp_path, content):
    write_files(tmp_path, {"scan.pdf": make_pdf(content)})
    assert read(tmp_path) == [Skipped("scan.pdf", "PDF has no text layer (scanned? run OCR first)")]


def test_not_a_pdf(tmp_path):
    write_files(tmp_path, {"fake.pdf": "this is not a PDF at all"})
    [skip] = read(tmp_path)
    assert skip.source == "fake.pdf"
    assert skip.reason.startswith("unreadable PDF (")


# --- JSON Lines --------------------------------------------------------------------------------


def _jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


@pytest.mark.parametrize("name", ["data.jsonl", "data.ndjson"])
def test_jsonl_default_fields(tmp_path, name):
    write_files(
        tmp_path,
        {name: _jsonl({"text": "Erster Text.", "lang": "de", "n": 1, "tags": ["a"]}, {"text": "Second text."})},
    )
    assert read(tmp_path) == [
        Document(f"{name}#1", name, "Erster Text.", {"lang": "de", "n": 1, "tags": ["a"]}),
        Document(f"{name}#2", name, "Second text.", {}),
    ]


def test_jsonl_ids_use_the_relative_path(tmp_path):
    write_files(tmp_path, {"sub/dir/r.jsonl": _jsonl({"text": "one"}, {"text": "two"})})
    assert [d.doc_id for d in docs(read(tmp_path))] == ["sub/dir/r.jsonl#1", "sub/dir/r.jsonl#2"]
    assert {d.source for d in docs(read(tmp_path))} == {"sub/dir/r.jsonl"}


def test_jsonl_id_field_and_text_field(tmp_path):
    write_files(
        tmp_path,
        {
            "r.jsonl": _jsonl(
                {"id": "a1", "body": "Alpha.", "year": 2020}, {"id": 7, "body": "Seven.", "text": "kept as metadata"}
            )
        },
    )
    assert read(tmp_path, text_field="body", id_field="id") == [
        Document("a1", "r.jsonl", "Alpha.", {"year": 2020}),
        Document("7", "r.jsonl", "Seven.", {"text": "kept as metadata"}),
    ]


def test_jsonl_skips_with_reasons_and_line_numbers(tmp_path):
    write_files(
        tmp_path,
        {
            "r.jsonl": _jsonl(
                {"text": "good one"},  # line 1, record 1
                "",  # line 2, blank: not a record
                "{not json",  # line 3, record 2
                {"body": "no text field", "id": 3},  # line 4, record 3
                "[1, 2, 3]",  # line 5, record 4
                '"just a string"',  # line 6, record 5
                {"text": ""},  # line 7, record 6
                {"text": 42},  # line 8, record 7
                {"text": "good two"},  # line 9, record 8
            )
        },
    )
    items = read(tmp_path)
    assert docs(items) == [
        Document("r.jsonl#1", "r.jsonl", "good one", {}),
        Document("r.jsonl#8", "r.jsonl", "good two", {}),
    ]
    got = skips(items)
    assert [(s.source, s.line) for s in got] == [
        ("r.jsonl", 3),
        ("r.jsonl", 5),
        ("r.jsonl", 6),
        ("r.jsonl", 7),
        ("r.jsonl", 8),
        ("r.jsonl", 4),  # the records without the text field: reported once, after the file
    ]
    assert got[0].reason.startswith("invalid JSON (")
    assert got[1].reason == got[2].reason == "not a JSON object"
    assert got[3].reason == got[4].reason == "field 'text' is empty or not a string"
    assert got[5] == Skipped(
        "r.jsonl",
        "1 record has no field 'text' (fields: body, id); choose the text field with --text-field, "
        "or for this file alone with --fields 'r.jsonl:text=FIELD'",
        4,
        kept=True,
        doc_ids=("r.jsonl#3",),
    )
    assert got[0].where == "r.jsonl:3"


def test_jsonl_missing_or_empty_id(tmp_path):
    write_files(
        tmp_path,
        {
            "r.jsonl": _jsonl(
                {"id": "", "text": "empty id"},
                {"text": "no id"},
                {"id": None, "text": "null id"},
                {"id": 0, "text": "zero id"},
            )
        },
    )
    items = read(tmp_path, id_field="id")
    reason = (
        "3 records have no id in field 'id' (lines 1 to 3; fields: id, text); choose the id field with "
        "--id-field, or for this file alone with --fields 'r.jsonl:id=FIELD'"
    )
    assert items == [Document("0", "r.jsonl", "zero id", {}), Skipped("r.jsonl", reason, 1, 3, kept=True)]
    assert items[1].where == "r.jsonl"


def test_jsonl_blank_lines_only(tmp_path):
    write_files(tmp_path, {"r.jsonl": "\n  \n\n"})
    assert read(tmp_path) == [Skipped("r.jsonl", "no records in file")]


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_default_fields(tmp_path):
    write_files(tmp_path, {"t.csv": 'text,lang,stars\nHello there.,en,5\n"Hallo, Welt.",de,\n'})
    assert read(tmp_path) == [
        Document("t.csv#1", "t.csv", "Hello there.", {"lang": "en", "stars": 5}),
        Document("t.csv#2", "t.csv", "Hallo, Welt.", {"lang": "de", "stars": ""}),
    ]


def test_csv_multiline_field_and_id_field(tmp_path):
    write_files(tmp_path, {"t.csv": 'key,text\nk1,"line one\nline two"\nk2,plain\n'})
    assert read(tmp_path, id_field="key") == [
        Document("k1", "t.csv", "line one\nline two", {}),
        Document("k2", "t.csv", "plain", {}),
    ]


def test_csv_without_text_column(tmp_path):
    write_files(tmp_path, {"t.csv": "title,body\nA,alpha\nB,beta\n"})
    reason = (
        "2 records have no field 'text' (lines 2 to 3; fields: title, body); choose the text field with "
        "--text-field, or for this file alone with --fields 't.csv:text=FIELD'"
    )
    assert read(tmp_path, text_field="text") == [
        Skipped("t.csv", reason, 2, 2, kept=True, doc_ids=("t.csv#1", "t.csv#2"))
    ]
    assert read(tmp_path, text_field="body") == [
        Document("t.csv#1", "t.csv", "alpha", {"title": "A"}),
        Document("t.csv#2", "t.csv", "beta", {"title": "B"}),
    ]
    detected = "text field 'body' detected (fields: title, body); choose another with --fields 't.csv:text=FIELD'"
    assert read(tmp_path) == [
        Document("t.csv#1", "t.csv", "alpha", {"title": "A"}, notes=(detected,)),
        Document("t.csv#2", "t.csv", "beta", {"title": "B"}),
    ]


def test_csv_bad_rows(tmp_path):
    write_files(tmp_path, {"t.csv": "id,text\n1,ok\n2,too,many\n,no id\n4,\n5,fine\n"})
    assert read(tmp_path, id_field="id") == [
        Document("1", "t.csv", "ok", {}),
        Skipped("t.csv", "more values than header columns", 3),
        Skipped("t.csv", "field 'text' is empty or not a string", 5, doc_ids=("4",)),
        Document("5", "t.csv", "fine", {}),
        Skipped(
            "t.csv",
            "1 record has no id in field 'id' (fields: id, text); choose the id field with --id-field, "
            "or for this file alone with --fields 't.csv:id=FIELD'",
            4,
            kept=True,
        ),
    ]


def test_csv_default_ids_count_records_not_lines(tmp_path):
    write_files(tmp_path, {"t.csv": 'text\n"a\nb"\nsecond\n'})
    assert [d.doc_id for d in docs(read(tmp_path))] == ["t.csv#1", "t.csv#2"]


def test_csv_header_only(tmp_path):
    write_files(tmp_path, {"t.csv": "text,lang\n"})
    assert read(tmp_path) == [Skipped("t.csv", "no records in file")]


# --- Walking ---------------------------------------------------------------------------------


def test_recursion_into_subfolders_in_a_stable_order(tmp_path):
    write_files(tmp_path, {"b.txt": "B", "a/x.txt": "X", "a/deeper/y.md": "Y", "c/z.rst": "Z", "A.txt": "A0"})
    assert [(d.doc_id, d.source, d.text) for d in read(tmp_path)] == [
        ("A.txt", "A.txt", "A0"),
        ("b.txt", "b.txt", "B"),
        ("a/x.txt", "a/x.txt", "X"),
        ("a/deeper/y.md", "a/deeper/y.md", "Y"),
        ("c/z.rst", "c/z.rst", "Z"),
    ]


def test_single_file_as_corpus(tmp_path):
    path = write_files(tmp_path, {"deep/folder/notes.md": "Some notes."}) / "deep" / "folder" / "notes.md"
    assert read(path) == [Document("notes.md", "notes.md", "Some notes.", {})]
    assert read(str(path)) == [Document("notes.md", "notes.md", "Some notes.", {})]


def test_single_record_file_as_corpus(tmp_path):
    path = write_files(tmp_path, {"sub/r.jsonl": _jsonl({"text": "one"})}) / "sub" / "r.jsonl"
    assert read(path) == [Document("r.jsonl#1", "r.jsonl", "one", {})]


def test_hidden_files_and_folders_are_not_yielded_at_all(tmp_path):
    write_files(
        tmp_path,
        {
            "visible.txt": "seen",
            ".hidden.txt": "secret",
            ".git/config.txt": "secret",
            ".cache/deep/x.md": "secret",
            "sub/.env.txt": "secret",
            "sub/ok.txt": "seen too",
            ".image.png": b"\x89PNG\r\n\x1a\n",
        },
    )
    assert read(tmp_path) == [
        Document("visible.txt", "visible.txt", "seen", {}),
        Document("sub/ok.txt", "sub/ok.txt", "seen too", {}),
    ]
    assert [item[1] for item in walk(tmp_path)] == ["visible.txt", "sub/ok.txt"]


def test_unsupported_file_types(tmp_path):
    write_files(tmp_path, {"image.png": b"\x89PNG\r\n\x1a\n\x00\x00", "Makefile": "all:\n", "doc.docx": b"PK\x03\x04"})
    assert " ".join(sorted(SUPPORTED)) == SUPPORTED_LIST
    assert read(tmp_path) == [
        Skipped("Makefile", f"unsupported file type (no extension); supported: {SUPPORTED_LIST}"),
        Skipped("doc.docx", f"unsupported file type .docx; supported: {SUPPORTED_LIST}"),
        Skipped("image.png", f"unsupported file type .png; supported: {SUPPORTED_LIST}"),
    ]


@pytest.mark.parametrize("name", ["empty.txt", "empty.html", "empty.pdf", "empty.jsonl", "empty.csv"])
def test_empty_file(tmp_path, name):
    write_files(tmp_path, {name: b""})
    assert read(tmp_path) == [Skipped(name, "empty file")]


@pytest.mark.parametrize("content", [" ", "\n\n\t  \r\n", "\u3000\u00a0 "])
def test_whitespace_only_file(tmp_path, content):
    write_files(tmp_path, {"blank.txt": content})
    assert read(tmp_path) == [Skipped("blank.txt", "no text in file")]


def test_fifo_is_not_a_regular_file(tmp_path):
    write_files(tmp_path, {"a.txt": "A"})
    os.mkfifo(tmp_path / "pipe.txt")
    assert read(tmp_path) == [Document("a.txt", "a.txt", "A", {}), Skipped("pipe.txt", "not a regular file")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = write_files(tmp_path, {"locked.txt": "secret", "open.txt": "fine"}) / "locked.txt"
    path.chmod(0)
    try:
        items = read(tmp_path)
    finally:
        path.chmod(0o644)
    assert items[0].source == "locked.txt"
    assert isinstance(items[0], Skipped)
    assert items[0].reason.startswith("cannot read")
    assert items[1] == Document("open.txt", "open.txt", "fine", {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read folders whatever their permissions")
def test_unreadable_folder(tmp_path):
    folder = write_files(tmp_path, {"locked/a.txt": "secret", "open.txt": "fine"}) / "locked"
    folder.chmod(0)
    try:
        items = read(tmp_path)
    finally:
        folder.chmod(0o755)
    assert items[0] == Document("open.txt", "open.txt", "fine", {})
    assert items[1].source == "locked"
    assert items[1].reason.startswith("cannot read folder")


# --- Symbolic links ---------------------------------------------------------------------------


def _link_reason(target: str) -> str:
    return f"symbolic link to {target} inside the corpus (indexed under that name, not twice)"


def test_a_symlink_to_a_file_of_the_corpus_is_reported_not_indexed_twice(tmp_path):
    root = write_files(tmp_path / "corpus", {"real.txt": "Real text.", "sub/other.md": "Other."})
    (root / "link.txt").symlink_to("real.txt")
    (root / "sub" / "up.txt").symlink_to("../real.txt")
    assert read(root) == [
        Skipped("link.txt", _link_reason("real.txt")),
        Document("real.txt", "real.txt", "Real text.", {}),
        Document("sub/other.md", "sub/other.md", "Other.", {}),
        Skipped("sub/up.txt", _link_reason("real.txt")),
    ]


def test_a_symlink_to_a_hidden_file_inside_the_root_is_read(tmp_path):
    root = write_files(tmp_path / "corpus", {".drafts/real.txt": "Real text."})
    (root / "link.txt").symlink_to(".drafts/real.txt")
    assert read(root) == [Document("link.txt", "link.txt", "Real text.", {})]


def test_a_symlinked_folder_of_the_corpus_is_reported_and_its_files_indexed_once(tmp_path):
    root = write_files(tmp_path / "corpus", {"data/a.txt": "A"})
    (root / "alias").symlink_to("data", target_is_directory=True)
    assert read(root) == [Skipped("alias", _link_reason("data")), Document("data/a.txt", "data/a.txt", "A", {})]


def test_symlinks_pointing_outside_the_root(tmp_path):
    outside = write_files(tmp_path / "outside", {"secret.txt": "Secret.", "dir/s.txt": "Secret too."})
    root = write_files(tmp_path / "corpus", {"in.txt": "Inside."})
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "relescape.txt").symlink_to("../outside/secret.txt")
    (root / "escdir").symlink_to(outside / "dir", target_is_directory=True)
    reason = "symbolic link points outside the corpus root"
    assert read(root) == [
        Skipped("escape.txt", reason),
        Skipped("escdir", reason),
        Document("in.txt", "in.txt", "Inside.", {}),
        Skipped("relescape.txt", reason),
    ]


def test_symlink_loop_terminates_without_duplicates(tmp_path):
    root = write_files(tmp_path / "corpus", {"a.txt": "A", "sub/b.txt": "B"})
    (root / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (root / "sub" / "self").symlink_to(".", target_is_directory=True)
    items = read(root)
    assert items == [
        Document("a.txt", "a.txt", "A", {}),
        Document("sub/b.txt", "sub/b.txt", "B", {}),
        Skipped("sub/loop", _link_reason("the corpus root")),
        Skipped("sub/self", _link_reason("sub")),
    ]


def test_symlink_to_itself_and_broken_symlink(tmp_path):
    root = write_files(tmp_path / "corpus", {"a.txt": "A"})
    (root / "dangling.txt").symlink_to("missing.txt")
    (root / "me.txt").symlink_to("me.txt")
    reason = "broken symbolic link or symlink loop"
    assert read(root) == [
        Document("a.txt", "a.txt", "A", {}),
        Skipped("dangling.txt", reason),
        Skipped("me.txt", reason),
    ]


def test_corpus_root_reached_through_a_symlink(tmp_path):
    real = write_files(tmp_path / "real", {"a.txt": "A", "sub/b.txt": "B"})
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    assert [d.doc_id for d in read(tmp_path / "alias")] == ["a.txt", "sub/b.txt"]


def test_skipped_where():
    assert Skipped("a.csv", "r").where == "a.csv"
    assert Skipped("a.csv", "r", 7).where == "a.csv:7"
