"""Record files: ``.jsonl``/``.ndjson`` (a JSON object per line) and ``.csv``, one document per record.

**Fields.** A record's text is its field ``text_field`` and its id its field ``id_field``
(:class:`~store.records.RecordFields`, which a build chooses per file from the index's
:class:`~store.records.FieldSettings`); every other field is metadata. Where no text field is
chosen, each file's is detected from its first :data:`DETECT_RECORDS` records: ``text`` if
one of them has it, else the field whose strings hold the most characters (strings written as
numbers do not count, nor the id field); a detected field other than ``text`` is announced
as a note of the file's first document (a build's warning). Without an id field, ids are
``<file>#<n>``, ``n`` counting records from 1, a line that is not a record included (so that
the ids after a broken line stay what they were).

**CSV.** The delimiter is detected (:func:`detect_delimiter`: ``,`` ``;`` tab or ``|``).
Cells are text; metadata cells written as numbers become numbers by the rule of
:mod:`store.typed_values` (``2024`` and ``12.50`` do, ``007`` and ``1e5`` stay text); the
text and id fields stay text.

**Problems.** A record that cannot be a document is a :class:`~indexer.documents.Skipped`
with its line, its reason and, where known, its id (so that the build can say that its
indexed version was removed). Records that lack the chosen text or id field are reported once per
file (one ``Skipped`` covering them all, ``records`` counting them), marked ``kept``: the
build's choice of fields does not fit them, and their indexed versions stay until it does.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from indexer.cleaning import clean_text, clean_value
from indexer.documents import Document, Skipped
from indexer.jsonl import parse_lines
from store.errors import InvalidInput
from store.records import FieldRule, RecordFields
from store.typed_values import number_in, typed_value

DEFAULT_TEXT_FIELD = "text"
DETECT_RECORDS = 50
"""Records of a file that text field detection looks at (the first ones)."""
DELIMITERS = (",", ";", "\t", "|")
"""The CSV delimiters :func:`detect_delimiter` chooses from, preferred in this order."""
SNIFF_CHARS = 64 * 1024
"""Characters at the start of a CSV file that delimiter detection reads."""
SNIFF_ROWS = 100
"""Rows of that start that delimiter detection compares with the header."""
MAX_LISTED_FIELDS = 20
"""Field names listed in a message (then "…")."""

Records = Iterator[tuple[int, dict[str, Any] | str]]
"""``(line number, record or the reason it is not one)`` for each record of a file."""


def jsonl_records(text: str) -> Records:
    """The records of a JSON Lines text; blank lines are none."""
    for line in parse_lines(io.StringIO(text)):
        yield line.number, line.record if line.record is not None else str(line.problem)


def csv_records(text: str, field_limit: int) -> Records:
    """The records of a CSV text (header line first, delimiter detected), as ``{column: cell}``;
    a cell may hold up to ``field_limit`` characters."""
    csv.field_size_limit(field_limit)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text))
    try:
        for record in reader:
            if None in record:
                yield reader.line_num, "more values than header columns"
                continue
            yield reader.line_num, {k: v for k, v in record.items() if v is not None}
    except csv.Error as exc:
        yield reader.line_num, f"invalid CSV ({exc})"


def detect_delimiter(text: str) -> str:
    """The delimiter of a CSV text: of :data:`DELIMITERS`, the one that splits the header line
    into two or more columns and the most of the first :data:`SNIFF_ROWS` rows into as many as
    the header (quotes respected); at equal share, the one giving more columns, then the
    earlier in :data:`DELIMITERS`. ``,`` when none splits the header (a single column).

    Unlike :class:`csv.Sniffer`, which counts characters per line, a delimiter that occurs
    inside unquoted text of some rows (a comma in a ``;``-separated file) is not taken unless
    the rows agree with the header.
    """
    sample = text[:SNIFF_CHARS]
    truncated = len(text) > SNIFF_CHARS
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        if delimiter not in sample:
            continue
        try:
            rows = [
                r
                for r in itertools.islice(
                    csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), SNIFF_ROWS + 1
                )
                if r
            ]
        except csv.Error:
            continue
        if truncated and len(rows) > 1:
            rows = rows[:-1]  # the last row may be cut off
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:]
        share = sum(len(r) == width for r in body) / len(body) if body else 1.0
        if (share, width) > best_score:
            best, best_score = delimiter, (share, width)
    return best


def detect_text_field(records: Sequence[Mapping[str, Any]], id_field: str | None = None) -> str | None:
    """The text field of a file whose first records are ``records``: ``text`` if one has it,
    else the field whose strings (not written as numbers) hold the most characters, the first
    such field at a tie; None if no field but ``id_field`` holds such a string."""
    if any(DEFAULT_TEXT_FIELD in r for r in records):
        return DEFAULT_TEXT_FIELD
    chars: dict[str, int] = {}
    for record in records:
        for key, value in record.items():
            if key != id_field and isinstance(value, str) and number_in(value) is None:
                chars[key] = chars.get(key, 0) + len(value.strip())
    best = max(chars.items(), key=lambda kv: kv[1], default=None)
    return best[0] if best is not None and best[1] > 0 else None


@dataclass
class _Missing:
    """Records of one file that lack the chosen field ``name``: reported together."""

    name: str
    first: int = 0
    last: int = 0
    count: int = 0
    ids: list[str | None] = field(default_factory=list)
    fields: dict[str, None] = field(default_factory=dict)

    def add(self, line: int, doc_id: str | None, record: Mapping[str, Any]) -> None:
        self.first = self.first or line
        self.last, self.count = line, self.count + 1
        self.ids.append(doc_id)
        if len(self.fields) <= MAX_LISTED_FIELDS:
            self.fields.update(dict.fromkeys(record))

    def skipped(self, rel: str, lack: str, key: str) -> Skipped:
        """The one report of these records (``lack``: ``field``, ``id in field``; ``key``:
        ``text``, ``id``); their indexed versions are kept."""
        lines = f"lines {self.first} to {self.last}; " if self.count > 1 else ""
        have = f"{self.count} records have" if self.count > 1 else "1 record has"
        reason = (
            f"{have} no {lack} {self.name!r} ({lines}fields: {_names(self.fields)}); choose the {key} field "
            f"with --{key}-field, or for this file alone with --fields '{rel}:{key}=FIELD'"
        )
        known = tuple(d for d in self.ids if d is not None)
        return Skipped(
            rel, reason, self.first, self.count, kept=True, doc_ids=known if len(known) == len(self.ids) else ()
        )


def _names(fields: Mapping[str, Any] | Sequence[str]) -> str:
    names = [clean_text(str(k))[0] for k in fields]
    if not names:
        return "none"
    more = ", …" if len(names) > MAX_LISTED_FIELDS else ""
    return ", ".join(names[:MAX_LISTED_FIELDS]) + more


def record_documents(
    records: Records,
    rel: str,
    fields: RecordFields,
    *,
    typed: bool,
    max_chars: int,
    decoding_note: str | None = None,
) -> Iterator[Document | Skipped]:
    """The documents of the record file ``rel``, then one ``Skipped`` per field that some
    records lack; ``typed``: cells are text to type (CSV); ``max_chars``: the most characters
    a record's text may have; ``decoding_note`` (the file's) goes with the first document."""
    sample = list(itertools.islice(records, DETECT_RECORDS))
    objects = [r for _, r in sample if isinstance(r, dict)]
    text_field = fields.text_field
    notes = [decoding_note] if decoding_note else []
    if text_field is None:
        text_field = detect_text_field(objects, fields.id_field)
        if text_field is None and objects:
            yield Skipped(
                rel,
                f"no field holds text (fields: {_names(dict.fromkeys(k for r in objects for k in r))}); choose the "
                f"text field with --text-field, or for this file alone with --fields '{rel}:text=FIELD'",
                kept=True,
            )
            return
        if text_field is not None and text_field != DEFAULT_TEXT_FIELD:
            notes.append(
                f"text field {text_field!r} detected (fields: {_names(objects[0])}); choose another with "
                f"--fields '{rel}:text=FIELD'"
            )
        text_field = text_field or DEFAULT_TEXT_FIELD  # no record is an object: each says why
    no_text, no_id = _Missing(text_field), _Missing(fields.id_field or "")
    number = 0
    for line, record in itertools.chain(sample, records):
        number += 1
        if isinstance(record, str):
            yield Skipped(rel, record, line, doc_ids=(f"{rel}#{number}",) if fields.id_field is None else ())
            continue
        doc_id = _doc_id(record, fields.id_field, rel, number)
        known = () if doc_id is None else (doc_id,)
        if text_field not in record:
            no_text.add(line, doc_id, record)
            continue
        text = record[text_field]
        note = None
        if isinstance(text, str):
            if len(text) > max_chars:
                yield Skipped(rel, too_long(text, "record", max_chars), line, doc_ids=known)
                continue
            text, note = clean_text(text)
        if not isinstance(text, str) or not text.strip():
            yield Skipped(rel, f"field {text_field!r} is empty or not a string", line, doc_ids=known)
            continue
        if doc_id is None:
            no_id.add(line, None, record)
            continue
        metadata = {
            clean_text(k)[0]: clean_value(typed_value(v) if typed and isinstance(v, str) else v)
            for k, v in record.items()
            if k not in (text_field, fields.id_field)
        }
        if note:
            notes.append(f"line {line}: {note}")
        yield Document(doc_id=doc_id, source=rel, text=text, metadata=metadata, notes=tuple(notes))
        notes = []
    if no_text.count:
        yield no_text.skipped(rel, "field", "text")
    if no_id.count:
        yield no_id.skipped(rel, "id in field", "id")
    if number == 0:  # e.g. a CSV with only its header line: say so rather than yield nothing
        yield Skipped(rel, "no records in file")


def _doc_id(record: Mapping[str, Any], id_field: str | None, rel: str, number: int) -> str | None:
    """The id of the ``number``-th record of ``rel``, or None if its id field is empty or missing."""
    if id_field is None:
        return f"{rel}#{number}"
    value = record.get(id_field)
    if value is None or value == "":
        return None
    return clean_text(str(value))[0]


def too_long(text: str, what: str, limit: int) -> str:
    """The reason a ``what`` (``file``, ``record``) whose text passes ``limit`` characters is skipped."""
    return f"text too long ({len(text):,} characters; the limit is {limit:,}): split the {what}"


_RULE = re.compile(r"(?P<pattern>.+?):(?P<spec>\s*(?:(?:text|id)\s*=[^,]*)(?:,\s*(?:text|id)\s*=[^,]*)*)?\Z", re.S)
FIELDS_SYNTAX = (
    "write it as FILE:text=FIELD,id=FIELD (either part may be left out; FILE a name such as faq.csv, "
    "a path such as data/faq.csv, or a glob such as 'data/*.csv')"
)


def parse_field_rule(text: str) -> FieldRule:
    """The rule of a ``--fields`` option: ``FILE:text=FIELD,id=FIELD``.

    ``FILE`` is a file name, a path relative to the corpus root or a glob
    (:class:`~store.records.FieldRule`); ``text=`` (empty) asks for detection, ``id=`` for
    record numbers; ``FILE:`` alone forgets the rule recorded for ``FILE``. Raises
    :class:`~store.errors.InvalidInput` naming what does not read.
    """
    match = _RULE.match(text.strip())
    if match is None or not match["pattern"].strip():
        raise InvalidInput(f"cannot read --fields {text!r}: {FIELDS_SYNTAX}.")
    values: dict[str, str] = {}
    for part in (match["spec"] or "").split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key = key.strip()
        if key in values:
            raise InvalidInput(f"cannot read --fields {text!r}: {key}= is given twice; {FIELDS_SYNTAX}.")
        values[key] = value.strip()
    return FieldRule(match["pattern"].strip(), values.get("text"), values.get("id"))
