"""Record files (issue 14, gaps 2 and 4): typed CSV metadata and typed comparisons, the CSV
delimiter, record fields per file and remembered by the index, one message per file, and
skipped records that keep their indexed versions."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from indexer.build import build_index
from indexer.reading import Document, RecordFields, Skipped, read_corpus
from indexer.record_files import detect_delimiter, parse_field_rule
from indexer.watch import Watcher, WatchOptions
from search import Index
from search.filters import build_filter, parse_where
from store.errors import InvalidInput
from store.filtering import sql_of
from store.index_dir import IndexDir
from store.records import FieldRule, FieldSettings, IndexSettings
from store.typed_values import typed_value
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

YEARS_CSV = "text,year,code\n" + "".join(
    f"A report about rivers and lakes from {y}.,{y},00{i}\n" for i, y in enumerate((2023, 2024, 2025, 2026), 1)
)


def build(corpus, index, **kw):
    return build_index(corpus, index, model=HashingEmbedder(), **kw)


def ids(index, **where) -> list[str]:
    """The documents a search with these metadata conditions finds (every one it may)."""
    with Index.open(index, model=HashingEmbedder()) as idx:
        return sorted({h.doc_id for h in idx.search("rivers and lakes", k=50, where=where)})


def indexed(index) -> dict[str, str]:
    """``{doc_id: metadata JSON}`` of the live documents."""
    with IndexDir.open_for_reading(index) as idx:
        rows = idx.meta.conn.execute("SELECT doc_id, metadata FROM documents WHERE pending = 0").fetchall()
    return dict(sorted(rows))


# --- gap 2: typed metadata ---------------------------------------------------------------------


def test_csv_numbers_compare_as_numbers_through_index_search(tmp_path):
    corpus = write_files(tmp_path / "c", {"years.csv": YEARS_CSV})
    build(corpus, tmp_path / "i.idx")
    assert ids(tmp_path / "i.idx", **parse_where(["year>=2025"])) == ["years.csv#3", "years.csv#4"]
    assert ids(tmp_path / "i.idx", **parse_where(["year<2025"])) == ["years.csv#1", "years.csv#2"]
    assert ids(tmp_path / "i.idx", **parse_where(["year=2025"])) == ["years.csv#3"]
    assert ids(tmp_path / "i.idx", year={">": 2023.5, "<=": 2025}) == ["years.csv#2", "years.csv#3"]
    # codes with a leading zero stay text, and the CLI reads 002 as the same text
    assert ids(tmp_path / "i.idx", **parse_where(["code=002"])) == ["years.csv#2"]
    assert json.loads(indexed(tmp_path / "i.idx")["years.csv#1"]) == {"year": 2023, "code": "001"}


def test_a_key_with_numbers_and_strings_compares_each_kind_apart(tmp_path):
    corpus = write_files(
        tmp_path / "c",
        {
            "a.csv": "text,year\nRivers and lakes one.,2024\nRivers and lakes two.,2026\n",
            "b.jsonl": "".join(
                json.dumps({"text": f"Rivers and lakes {t}.", "year": y}) + "\n"
                for t, y in (("three", "2026"), ("four", "unknown"), ("five", 2025.0), ("six", True))
            ),
        },
    )
    build(corpus, tmp_path / "i.idx")
    index = tmp_path / "i.idx"
    # a number never orders against a string ("2026" as text is not >= 2025), nor the reverse
    assert ids(index, year={">=": 2025}) == ["a.csv#2", "b.jsonl#3"]
    assert ids(index, year={"<": 2025}) == ["a.csv#1", "b.jsonl#4"]  # true counts as 1
    assert ids(index, year={">=": "2025"}) == ["b.jsonl#1", "b.jsonl#2"]  # strings only, by code point
    # equality needs the same kind: 2025 equals 2025.0, not "2026"-like text
    assert ids(index, year=2025) == ["b.jsonl#3"]
    assert ids(index, year="2026") == ["b.jsonl#1"]
    assert ids(index, year=2026) == ["a.csv#2"]
    assert ids(index, year={"in": [2026, "unknown"]}) == ["a.csv#2", "b.jsonl#2"]
    # != holds for every present value that differs, of either kind
    assert ids(index, year={"!=": 2026}) == ["a.csv#1", "b.jsonl#1", "b.jsonl#2", "b.jsonl#3", "b.jsonl#4"]


def test_typed_comparisons_in_sql_alone():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, metadata TEXT)")
    values = [2023, "2024", 2025, "2026", {"nested": 1}, None]
    conn.executemany("INSERT INTO documents (metadata) VALUES (?)", [(json.dumps({"y": v}),) for v in values])
    conn.execute("INSERT INTO documents (metadata) VALUES ('{}')")

    def rows(**where) -> list[int]:
        condition, params = sql_of(build_filter(where=where))
        return [r[0] for r in conn.execute(f"SELECT d.id FROM documents d WHERE {condition} ORDER BY d.id", params)]

    assert rows(y={">=": 2024}) == [3]
    assert rows(y={"<": 2030}) == [1, 3]
    assert rows(y={">": "2023"}) == [2, 4]  # not the object's JSON text
    assert rows(y={"!=": 2023}) == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("2024", 2024),
        ("-3", -3),
        ("0", 0),
        (" 42 ", 42),
        ("0.5", 0.5),
        ("12.50", 12.5),
        ("-3.25", -3.25),
        ("9223372036854775807", 9223372036854775807),
        ("9223372036854775808", "9223372036854775808"),  # beyond 64 bits: text
        ("0.1234567890123456", "0.1234567890123456"),  # 16 significant digits: text
        ("007", "007"),
        ("02134", "02134"),
        ("+44 20 7946 0958", "+44 20 7946 0958"),
        ("+5", "+5"),
        ("1,234", "1,234"),
        ("1e5", "1e5"),
        ("2E10", "2E10"),
        (".5", ".5"),
        ("5.", "5."),
        ("NaN", "NaN"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("٢٠٢٤", "٢٠٢٤"),
        ("true", "true"),
        ("2024-05-01", "2024-05-01"),
        ("", ""),
    ],
)
def test_which_csv_cells_are_numbers(cell, value):
    assert typed_value(cell) == value
    assert type(typed_value(cell)) is type(value)


# --- the CSV delimiter ---------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_csv_delimiter_is_detected(tmp_path, delimiter):
    rows = [["text", "year", "tag"], ["Rivers, lakes; and seas.", "2024", "a|b"], ["Plain text", "2025", "c"]]
    quote = '"'

    def cell(c: str) -> str:
        return f"{quote}{c}{quote}" if any(d in c for d in (delimiter, quote)) else c

    text = "".join(delimiter.join(cell(c) for c in row) + "\n" for row in rows)
    write_files(tmp_path, {"t.csv": text})
    assert list(read_corpus(tmp_path)) == [
        Document("t.csv#1", "t.csv", "Rivers, lakes; and seas.", {"year": 2024, "tag": "a|b"}),
        Document("t.csv#2", "t.csv", "Plain text", {"year": 2025, "tag": "c"}),
    ]


def test_a_semicolon_csv_with_unquoted_commas_in_its_text_is_read_by_semicolons():
    text = "id;text;year\n1;Rivers, lakes, seas and oceans, all of them;2024\n2;One, two, three;2025\n"
    assert detect_delimiter(text) == ";"
    assert detect_delimiter("text\nonly one column, with a comma\n") == ","
    assert detect_delimiter("a,b\n1,2\n" + "x" * 70_000) == ","  # a sample cut off mid-row


# --- gap 4: record fields per file, remembered -------------------------------------------------

FAQ = "qid,question,answer\nq1,Where?,The river flows into the lake near the old mill.\nq2,When?,Lakes freeze in the coldest winter months.\n"
NOTES = "".join(
    json.dumps({"title": t, "body": b}) + "\n"
    for t, b in (("n1", "Rivers carry sand and stones down to the sea."), ("n2", "A lake is a body of still water."))
)


def test_a_csv_and_a_jsonl_with_different_text_fields_build_from_one_folder(tmp_path):
    corpus = write_files(tmp_path / "c", {"faq.csv": FAQ, "notes.jsonl": NOTES})
    report = build(corpus, tmp_path / "detected.idx")
    assert (report.documents_added, report.documents_skipped) == (4, 0)
    assert {w["warning"].split(" (")[0] for w in report.warnings} == {
        "text field 'answer' detected",
        "text field 'body' detected",
    }
    report = build(
        corpus, tmp_path / "explicit.idx", fields=["faq.csv:text=answer,id=qid", "notes.jsonl:text=body,id=title"]
    )
    assert (report.documents_added, report.documents_skipped, report.warnings) == (4, 0, [])
    assert list(indexed(tmp_path / "explicit.idx")) == ["n1", "n2", "q1", "q2"]
    assert json.loads(indexed(tmp_path / "explicit.idx")["q1"]) == {"question": "Where?"}


def test_a_rebuild_without_options_keeps_the_ids_and_embeds_nothing(tmp_path):
    corpus = write_files(tmp_path / "c", {"faq.csv": FAQ, "notes.jsonl": NOTES})
    first = build(
        corpus, tmp_path / "i.idx", text_field="body", id_field="title", fields=["faq.csv:text=answer,id=qid"]
    )
    assert first.documents_added == 4
    before = indexed(tmp_path / "i.idx")
    again = build(corpus, tmp_path / "i.idx")
    assert (again.documents_unchanged, again.documents_removed, again.chunks_embedded, again.skipped) == (4, 0, 0, [])
    assert indexed(tmp_path / "i.idx") == before
    with IndexDir.open_for_reading(tmp_path / "i.idx") as idx:
        assert idx.settings().fields == FieldSettings(
            RecordFields("body", "title"), (FieldRule("faq.csv", "answer", "qid"),)
        )


def test_indexer_watch_reads_records_with_the_remembered_fields(tmp_path):
    corpus = write_files(tmp_path / "c", {"notes.jsonl": NOTES})
    build(corpus, tmp_path / "i.idx", id_field="title")
    watcher = Watcher(
        corpus, tmp_path / "i.idx", model=HashingEmbedder(), options=WatchOptions(step_ms=50, debounce_ms=200)
    )
    watcher.start()
    thread = threading.Thread(target=watcher.loop, daemon=True)
    thread.start()
    try:
        (corpus / "notes.jsonl").write_text(NOTES + json.dumps({"title": "n3", "body": "Rivers again."}) + "\n")
        deadline = time.monotonic() + 20
        while "n3" not in indexed(tmp_path / "i.idx") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(indexed(tmp_path / "i.idx")) == ["n1", "n2", "n3"]
    finally:
        watcher.stop()
        thread.join(timeout=30)


def test_records_without_the_chosen_field_are_one_message_per_file(tmp_path):
    rows = "".join(f"r{i},Some text number {i} about rivers.\n" for i in range(312))
    corpus = write_files(tmp_path / "c", {"faq.csv": "qid,answer\n" + rows})
    report = build(corpus, tmp_path / "i.idx", text_field="body")
    assert report.documents_skipped == 312
    assert report.skipped == [
        {
            "source": "faq.csv",
            "reason": "312 records have no field 'body' (lines 2 to 313; fields: qid, answer); choose the text "
            "field with --text-field, or for this file alone with --fields 'faq.csv:text=FIELD'",
        }
    ]


def test_a_skipped_record_keeps_its_indexed_version(tmp_path):
    corpus = write_files(tmp_path / "c", {"faq.csv": FAQ, "notes.jsonl": NOTES})
    build(corpus, tmp_path / "i.idx", fields=["faq.csv:id=qid"])
    before = indexed(tmp_path / "i.idx")
    # a wrong text field for the whole corpus: every record lacks it, and nothing is removed
    wrong = build(corpus, tmp_path / "i.idx", text_field="summary")
    assert (wrong.documents_removed, wrong.documents_skipped) == (0, 4)
    assert [s["reason"].rsplit(" (", 1)[-1] for s in wrong.skipped] == ["their indexed versions are kept)"] * 2
    assert indexed(tmp_path / "i.idx") == before
    # one record of a file loses the field: that record keeps its version, the others update
    build(corpus, tmp_path / "i.idx", text_field="")
    (corpus / "notes.jsonl").write_text(
        json.dumps({"title": "n1", "summary": "no body now"}) + "\n" + NOTES.splitlines()[1] + "\n"
    )
    one = build(corpus, tmp_path / "i.idx")
    assert one.documents_removed == 0
    assert one.skipped == [
        {
            "source": "notes.jsonl:1",
            "reason": "1 record has no field 'body' (fields: title, summary); choose the text field with "
            "--text-field, or for this file alone with --fields 'notes.jsonl:text=FIELD' "
            "(its indexed version is kept)",
        }
    ]
    assert indexed(tmp_path / "i.idx") == before
    # an id field a record lacks: its id is unknown, so the file's unread documents are all kept
    (corpus / "faq.csv").write_text(FAQ.replace("q2,When?", ",When?"))
    no_id = build(corpus, tmp_path / "i.idx")
    assert no_id.documents_removed == 0
    [faq] = [s["reason"] for s in no_id.skipped if s["source"].startswith("faq.csv")]
    assert faq.endswith("--fields 'faq.csv:id=FIELD' (its indexed version is kept)")
    assert indexed(tmp_path / "i.idx") == before


def test_a_record_whose_content_is_gone_is_removed_as_a_file_would_be(tmp_path):
    corpus = write_files(tmp_path / "c", {"notes.jsonl": NOTES})
    build(corpus, tmp_path / "i.idx")
    (corpus / "notes.jsonl").write_text(json.dumps({"title": "n1", "body": ""}) + "\n" + NOTES.splitlines()[1] + "\n")
    report = build(corpus, tmp_path / "i.idx")
    assert report.documents_removed == 1
    assert report.skipped == [
        {
            "source": "notes.jsonl:1",
            "reason": "field 'body' is empty or not a string (its indexed version was removed from the index)",
        }
    ]
    assert list(indexed(tmp_path / "i.idx")) == ["notes.jsonl#2"]


def test_a_file_where_no_field_holds_text_is_skipped_and_kept(tmp_path):
    corpus = write_files(tmp_path / "c", {"n.csv": "a,b\n1,2\n3,4\n", "ok.txt": "Rivers."})
    report = build(corpus, tmp_path / "i.idx")
    assert report.skipped == [
        {
            "source": "n.csv",
            "reason": "no field holds text (fields: a, b); choose the text field with --text-field, "
            "or for this file alone with --fields 'n.csv:text=FIELD'",
        }
    ]
    assert list(read_corpus(corpus / "n.csv", RecordFields(text_field="b"))) == [
        Document("n.csv#1", "n.csv", "2", {"a": 1}),
        Document("n.csv#2", "n.csv", "4", {"a": 3}),
    ]


# --- the rules and their record ------------------------------------------------------------------


def test_field_rules_read_and_match():
    assert parse_field_rule("faq.csv:text=answer,id=qid") == FieldRule("faq.csv", "answer", "qid")
    assert parse_field_rule(" data/*.csv : id = key ") == FieldRule("data/*.csv", None, "key")
    assert parse_field_rule("a:b.csv:text=x") == FieldRule("a:b.csv", "x", None)
    assert parse_field_rule("faq.csv:id=") == FieldRule("faq.csv", None, "")
    assert parse_field_rule("faq.csv:") == FieldRule("faq.csv")
    for bad in ("faq.csv", ":text=a", "faq.csv:body=a", "faq.csv:text=a,text=b"):
        with pytest.raises(InvalidInput, match="cannot read --fields"):
            parse_field_rule(bad)
    assert FieldRule("faq.csv", "a").matches("sub/faq.csv") and FieldRule("faq.csv", "a").matches("faq.csv")
    assert not FieldRule("sub/faq.csv", "a").matches("other/sub/faq.csv")
    assert FieldRule("data/*.csv", "a").matches("data/x/y.csv")


def test_field_settings_update_resolve_and_round_trip():
    settings = FieldSettings().updated(
        "body", None, [FieldRule("faq.csv", "answer"), FieldRule("*.jsonl", id_field="")]
    )
    assert settings.for_source("faq.csv") == RecordFields("answer", None)
    assert settings.for_source("x/notes.jsonl") == RecordFields("body", None)
    assert settings.for_source("other.csv") == RecordFields("body", None)
    later = settings.updated(None, "uid", [FieldRule("faq.csv")])  # forgets the rule of faq.csv
    assert later.rules == (FieldRule("*.jsonl", id_field=""),)
    assert later.for_source("faq.csv") == RecordFields("body", "uid")
    assert later.for_source("n.jsonl") == RecordFields("body", None)
    assert later.updated("", "").default == RecordFields()
    assert IndexSettings.from_json(IndexSettings(fields=later).to_json()).fields == later
    assert "records" not in IndexSettings().to_json()  # the stored format of indexes without a choice


def test_a_skip_survives_its_trip_as_json():
    skip = Skipped("a.csv", "why", 3, 5, kept=True, doc_ids=("a", "b"))
    assert Skipped.from_json(json.loads(json.dumps(skip.to_json()))) == skip
