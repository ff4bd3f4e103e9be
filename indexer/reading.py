"""Reading a corpus: walking folders safely and extracting text, one document at a time.

:func:`read_corpus` streams :class:`Document` and :class:`Skipped` items (never a list of
the whole corpus). Formats, by extension:

* ``.txt .text .md .markdown .rst``: the text, decoded by detection if not UTF-8;
* ``.html .htm .xhtml``: visible text only (html-text drops tags, scripts and styles);
* ``.pdf``: the text layer (pypdf);
* ``.jsonl .ndjson`` and ``.csv``: one document per record; the text field is
  ``text_field``, the id ``id_field`` (default: ``<file>#<record number>``), every other
  field is metadata.

Hidden files and folders, editors' temporary files and ``--exclude`` patterns are skipped
silently (:mod:`indexer.selection`: they are not part of the corpus); every other file that yields no document is reported as :class:`Skipped` with its reason.
Symbolic links are followed only to targets inside the corpus root that are not indexed
under their own name (hidden ones); other links are reported.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.cleaning import clean_text, clean_value, path_text
from indexer.decoding import NotText, decode_with_note
from indexer.jsonl import parse_lines
from indexer.selection import DEFAULT_SELECTION, Selection
from store.errors import BabelIndexError

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
RECORD_SUFFIXES = {".jsonl", ".ndjson", ".csv"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | {".pdf"}
MAX_FILE_BYTES = 512 * 1024 * 1024
"""Files larger than this are skipped unread."""
MAX_DOCUMENT_CHARS = 64_000_000
"""Characters of text one document may have (a file's, or one record's); a longer one is
skipped with its reason. Chunking is linear in the text, so this bounds a document's time
and memory: about 1.5 GB of peak memory and a few minutes of chunking at the limit, before
embedding (its 64 MB of text would keep a real model busy for hours)."""


@dataclass(frozen=True)
class Document:
    """One document read from the corpus.

    ``doc_id`` is unique in an index: the file's path relative to the corpus root, or for a
    record the value of the id field (default ``<path>#<record number>``, counted from 1).
    ``source`` is the file's path relative to the corpus root (the file name for a single
    file), as :func:`indexer.cleaning.path_text` writes names that are not UTF-8. ``text``
    is the extracted text, cleaned of NULs and lone surrogates; chunk offsets count
    characters in it. ``notes`` say what reading changed (``"2 NUL characters removed"``);
    a build reports them as warnings.
    """

    doc_id: str
    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file, or one record of a record file (``line`` set), that gave no document, and why."""

    source: str
    reason: str
    line: int | None = None

    @property
    def where(self) -> str:
        """``source`` or ``source:line``."""
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True)
class RecordFields:
    """How records of ``.jsonl``/``.csv`` files map to documents."""

    text_field: str = "text"
    id_field: str | None = None


def walk(
    root: Path, exclude: Path | None = None, selection: Selection = DEFAULT_SELECTION, start: Path | None = None
) -> Iterator[tuple[Path, str] | Skipped]:
    """Yield ``(file path, path relative to root)`` for every file under ``root`` that
    ``selection`` keeps (:mod:`indexer.selection`: not hidden, not temporary, not excluded).

    A symbolic link is followed only when its target is inside ``root`` and would not be
    walked by itself (it lies in a hidden folder); a link to a file or folder of the corpus
    is reported as ``Skipped`` (its target is indexed under its own name, never twice), as
    are links leading outside ``root``. Visits each directory once (symlink loops end);
    reports unreadable folders as ``Skipped``.
    The folder ``exclude`` (the index being built, if it lies inside the corpus) is not read.
    ``start``: walk only this folder under ``root`` (paths stay relative to ``root``).
    """
    root = Path(root)
    if root.is_file():
        yield root, path_text(root.name)
        return
    real_root = root.resolve()
    excluded = exclude.resolve() if exclude is not None else None
    seen: set[tuple[int, int]] = set()
    stack = [start if start is not None else root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(_rel(folder, root), f"cannot read folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            if selection.skips_name(entry.name):
                continue
            path = Path(entry.path)
            rel = _rel(path, root)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if selection.ignored(rel, is_dir=is_dir):
                continue
            if entry.is_symlink():
                problem = link_problem(path, rel, real_root, selection)
                if problem is not None:
                    yield problem
                    continue
            try:
                if entry.is_dir():
                    if path.resolve() != excluded:  # e.g. the index being built inside the corpus
                        subfolders.append(path)
                elif entry.is_file():
                    yield path, rel
                else:
                    yield Skipped(rel, "not a regular file")
            except OSError as exc:
                yield Skipped(rel, f"cannot read: {exc.strerror or exc}")
        stack.extend(reversed(subfolders))


def link_problem(path: Path, rel: str, real_root: Path, selection: Selection = DEFAULT_SELECTION) -> Skipped | None:
    """Why the symbolic link ``path`` (``rel`` in the corpus whose resolved root is
    ``real_root``) is not followed, or None to follow it: only links to targets inside the
    root that would not be walked by themselves (hidden, temporary or excluded) are followed."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return Skipped(rel, "broken symbolic link or symlink loop")
    if not target.is_relative_to(real_root):
        return Skipped(rel, "symbolic link points outside the corpus root")
    inside = target.relative_to(real_root)
    if not inside.parts or not selection.ignored(inside.as_posix(), is_dir=target.is_dir()):  # walked too
        what = path_text(inside.as_posix()) if inside.parts else "the corpus root"
        return Skipped(rel, f"symbolic link to {what} inside the corpus (indexed under that name, not twice)")
    return None


def read_corpus(
    root: str | Path,
    fields: RecordFields = RecordFields(),
    exclude: Path | None = None,
    selection: Selection = DEFAULT_SELECTION,
) -> Iterator[Document | Skipped]:
    """Stream the documents of a folder or a single file, with a ``Skipped`` for each failure."""
    root = Path(root)
    for item in walk(root, exclude, selection):
        if isinstance(item, Skipped):
            yield item
            continue
        yield from read_path(*item, fields)


def read_path(path: Path, rel: str, fields: RecordFields) -> Iterator[Document | Skipped]:
    """The documents of one file, with a ``Skipped`` for each failure (never raises for bad input).

    Any exception while reading, decoding or extracting the file (a library's bug, a
    resource limit) is that file's ``Skipped``; only babelindex's own errors (a missing
    model, say), which no other file would escape either, go through.
    """
    try:
        yield from read_file(path, rel, fields)
    except NotText as exc:
        yield Skipped(rel, str(exc))
    except OSError as exc:
        yield Skipped(rel, f"cannot read: {exc.strerror or exc}")
    except BabelIndexError:
        raise
    except MemoryError:
        yield Skipped(rel, "cannot read: out of memory while reading this file")
    except Exception as exc:  # one bad file never stops a build
        yield Skipped(rel, f"cannot read: {describe_error(exc)}")


def describe_error(exc: BaseException) -> str:
    """``"ValueError: the message"``, cut to 300 characters, for a report."""
    text = clean_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[0]
    return text if len(text) <= 300 else text[:299] + "…"


def read_file(path: Path, rel: str, fields: RecordFields) -> Iterator[Document | Skipped]:
    """The documents of one file (several for record files); raises ``NotText``/``OSError``."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        yield Skipped(
            rel, f"unsupported file type {suffix or '(no extension)'}; supported: " + " ".join(sorted(SUPPORTED))
        )
        return
    size = path.stat().st_size
    if size == 0:  # the same reason for every format (pypdf would say "Cannot read an empty file")
        yield Skipped(rel, "empty file")
        return
    if size > MAX_FILE_BYTES:
        yield Skipped(rel, f"file too large ({size / 2**20:.0f} MiB > {MAX_FILE_BYTES // 2**20} MiB)")
        return
    if suffix == ".pdf":
        yield _one(rel, *_pdf_text(path))
    elif suffix in RECORD_SUFFIXES:
        text, note = decode_with_note(path.read_bytes())
        records = _csv_records(text) if suffix == ".csv" else _jsonl_records(text)
        yield from _record_documents(records, rel, fields, note)
    elif suffix in HTML_SUFFIXES:
        text, note = decode_with_note(path.read_bytes())
        yield _one(rel, *_html_text(text), note)
    else:
        text, note = decode_with_note(path.read_bytes())
        yield _one(rel, text, {}, note)


def _too_long(text: str, what: str) -> str | None:
    if len(text) <= MAX_DOCUMENT_CHARS:
        return None
    return f"text too long ({len(text):,} characters; the limit is {MAX_DOCUMENT_CHARS:,}): split the {what}"


def _one(rel: str, text: str, metadata: dict[str, Any], decoding_note: str | None = None) -> Document | Skipped:
    if (reason := _too_long(text, "file")) is not None:
        return Skipped(rel, reason)
    text, note = clean_text(text)
    if not text.strip():
        return Skipped(rel, "no text in file")
    metadata = {k: clean_value(v) for k, v in metadata.items()}
    notes = tuple(n for n in (decoding_note, note) if n)
    return Document(doc_id=rel, source=rel, text=text, metadata=metadata, notes=notes)


MAX_HTML_DEPTH = 1000
"""HTML nested deeper than this is read by :func:`_flat_html_text` (lxml, even with
``huge_tree``, drops everything below about 2,000 levels, and without it below 256)."""


def _html_text(html: str) -> tuple[str, dict[str, Any]]:
    import html_text
    import lxml.etree
    import lxml.html

    body = html.strip().replace("\x00", "").encode("utf-8", "replace") or b"<html/>"
    parser = lxml.html.HTMLParser(recover=True, encoding="utf-8", huge_tree=True)
    try:
        tree = lxml.etree.fromstring(body, parser=parser)
        if tree is None:
            tree = lxml.etree.fromstring(b"<html/>", parser=parser)
    except (ValueError, lxml.etree.ParserError) as exc:
        raise NotText(f"unparseable HTML: {exc}") from exc
    title = tree.findtext(".//title")
    for head in tree.xpath("//head"):
        head.drop_tree()  # the <title> is metadata, not page text
    text = html_text.extract_text(tree, guess_layout=True)
    if not text.strip() or _depth(tree) >= MAX_HTML_DEPTH:
        flat_text, flat_title = _flat_html_text(html)
        if flat_text.strip():
            text, title = flat_text, title or flat_title
    return text, ({"title": title.strip()} if title and title.strip() else {})


def _depth(root: Any) -> int:
    """How deep the element tree ``root`` is nested (1 for a lone element)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in element)
    return deepest


_SKIPPED_ELEMENTS = frozenset({"script", "style", "head", "title", "noscript", "template"})
_BLOCK_ELEMENTS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)


def _flat_html_text(html: str) -> tuple[str, str | None]:
    """Visible text and title of HTML read as a flat stream of tags (Python's
    :mod:`html.parser`, which builds no tree and so has no depth limit): text outside
    scripts, styles and the head, a line break at each block element."""
    from html.parser import HTMLParser

    class Flat(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.title: list[str] = []
            self.hidden = 0
            self.in_title = False

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag in _SKIPPED_ELEMENTS:
                self.hidden += 1
                self.in_title = self.in_title or tag == "title"
            elif tag in _BLOCK_ELEMENTS:
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in _SKIPPED_ELEMENTS:
                self.hidden = max(0, self.hidden - 1)
                self.in_title = self.in_title and tag != "title"
            elif tag in _BLOCK_ELEMENTS:
                self.parts.append("\n")

        def handle_data(self, data: str) -> None:
            if self.in_title:
                self.title.append(data)
            elif not self.hidden:
                self.parts.append(data)

    flat = Flat()
    flat.feed(html)
    flat.close()
    lines = (" ".join(line.split()) for line in "".join(flat.parts).split("\n"))
    text = "\n".join(line for line in lines if line)
    return text, "".join(flat.title).strip() or None


def _pdf_text(path: Path) -> tuple[str, dict[str, Any]]:
    """The text layer, extracted within the time and memory budget of :mod:`indexer.extraction`."""
    from indexer import extraction

    try:
        text, title = extraction.shared().pdf(path)
    except extraction.ExtractionFailed as exc:
        raise NotText(str(exc)) from exc
    if not text.strip():
        raise NotText("PDF has no text layer (scanned? run OCR first)")
    return text, ({"title": title} if title else {})


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, record or error message)`` for each non-blank line."""
    for line in parse_lines(io.StringIO(text)):
        yield line.number, line.record if line.record is not None else str(line.problem)


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    csv.field_size_limit(MAX_FILE_BYTES)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for record in reader:
            if None in record:
                yield reader.line_num, "more values than header columns"
                continue
            yield reader.line_num, {k: v for k, v in record.items() if v is not None}
    except csv.Error as exc:
        yield reader.line_num, f"invalid CSV ({exc})"


def _record_documents(
    records, rel: str, fields: RecordFields, decoding_note: str | None = None
) -> Iterator[Document | Skipped]:
    """The documents of a record file; ``decoding_note`` (the file's) goes with the first."""
    number = 0
    for line, record in records:
        number += 1
        if isinstance(record, str):
            yield Skipped(rel, record, line)
            continue
        text = record.get(fields.text_field)
        note = None
        if isinstance(text, str):
            if (reason := _too_long(text, "record")) is not None:
                yield Skipped(rel, reason, line)
                continue
            text, note = clean_text(text)
        if not isinstance(text, str) or not text.strip():
            if fields.text_field not in record:
                reason = (
                    f"no field {fields.text_field!r} (fields: {', '.join(record) or 'none'}); "
                    "choose the text field with --text-field"
                )
            else:
                reason = f"field {fields.text_field!r} is empty or not a string"
            yield Skipped(rel, reason, line)
            continue
        if fields.id_field is None:
            doc_id = f"{rel}#{number}"
        else:
            value = record.get(fields.id_field)
            if value is None or value == "":
                yield Skipped(
                    rel, line=line, reason=f"no id in field {fields.id_field!r}; choose the id field with --id-field"
                )
                continue
            doc_id = clean_text(str(value))[0]
        metadata = {
            clean_text(k)[0]: clean_value(v) for k, v in record.items() if k not in (fields.text_field, fields.id_field)
        }
        notes = ((decoding_note,) if decoding_note else ()) + ((f"line {line}: {note}",) if note else ())
        decoding_note = None
        yield Document(doc_id=doc_id, source=rel, text=text, metadata=metadata, notes=notes)
    if number == 0:  # e.g. a CSV with only its header line: say so rather than yield nothing
        yield Skipped(rel, "no records in file")


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, as :func:`indexer.cleaning.path_text` stores names."""
    try:
        return path_text(path.relative_to(root).as_posix())
    except ValueError:
        return path_text(path.as_posix())
