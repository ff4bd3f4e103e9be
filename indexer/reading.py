"""Reading a corpus: walking folders safely and extracting text, one document at a time.

:func:`read_corpus` streams :class:`Document` and :class:`Skipped` items (never a list of
the whole corpus). Formats, by extension:

* ``.txt .text .md .markdown .rst``: the text, decoded by detection if not UTF-8;
* ``.html .htm .xhtml``: visible text only (html-text drops tags, scripts and styles);
* ``.pdf``: the text layer (pypdf);
* ``.jsonl .ndjson`` and ``.csv``: one document per record (:mod:`indexer.record_files`:
  the text and id fields a build chose for the file, else the text field detected and ids
  ``<file>#<record number>``; every other field is metadata; CSV numbers typed).

Hidden files and folders, editors' temporary files and ``--exclude`` patterns are skipped
silently (:mod:`indexer.selection`: they are not part of the corpus); every other file that yields no document is reported as :class:`Skipped` with its reason.
Symbolic links are followed only to targets inside the corpus root that are not indexed
under their own name (hidden ones); other links are reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexer.cleaning import clean_text, clean_value, path_text
from indexer.decoding import NotText, decode_with_note
from indexer.documents import Document, Skipped
from indexer.markup import drop_boilerplate, markdown_text
from indexer.record_files import csv_records, jsonl_records, record_documents, too_long
from indexer.selection import DEFAULT_SELECTION, Selection
from store.errors import BabelIndexError
from store.records import FieldSettings, RecordFields

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "MAX_FILE_BYTES",
    "SUPPORTED",
    "Document",
    "FieldSettings",
    "RecordFields",
    "Skipped",
    "describe_error",
    "link_problem",
    "read_corpus",
    "read_file",
    "read_path",
    "walk",
]

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
"""Read as Markdown: the text without its markup (:func:`indexer.markup.markdown_text`)."""
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
    fields: FieldSettings | RecordFields | None = None,
    exclude: Path | None = None,
    selection: Selection = DEFAULT_SELECTION,
) -> Iterator[Document | Skipped]:
    """Stream the documents of a folder or a single file, with a ``Skipped`` for each failure.

    ``fields``: the record fields per file (:class:`~store.records.FieldSettings`, as an index
    records them), or one :class:`~store.records.RecordFields` for every record file; default:
    detected in each file."""
    root = Path(root)
    fields = FieldSettings() if fields is None else fields
    for item in walk(root, exclude, selection):
        if isinstance(item, Skipped):
            yield item
            continue
        yield from read_path(*item, fields)


def read_path(path: Path, rel: str, fields: FieldSettings | RecordFields) -> Iterator[Document | Skipped]:
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


def read_file(path: Path, rel: str, fields: FieldSettings | RecordFields) -> Iterator[Document | Skipped]:
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
        is_csv = suffix == ".csv"
        records = csv_records(text, MAX_FILE_BYTES) if is_csv else jsonl_records(text)
        chosen = fields.for_source(rel) if isinstance(fields, FieldSettings) else fields
        yield from record_documents(
            records, rel, chosen, typed=is_csv, max_chars=MAX_DOCUMENT_CHARS, decoding_note=note
        )
    elif suffix in HTML_SUFFIXES:
        text, note = decode_with_note(path.read_bytes())
        yield _one(rel, *_html_text(text), note)
    elif suffix in MARKDOWN_SUFFIXES:
        text, note = decode_with_note(path.read_bytes())
        if (reason := _too_long(text, "file")) is not None:
            yield Skipped(rel, reason)
            return
        yield _one(rel, *markdown_text(text), note)
    else:
        text, note = decode_with_note(path.read_bytes())
        yield _one(rel, text, {}, note)


def _too_long(text: str, what: str) -> str | None:
    return None if len(text) <= MAX_DOCUMENT_CHARS else too_long(text, what, MAX_DOCUMENT_CHARS)


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
    drop_boilerplate(tree)  # navigation, site header and footer, forms: not the page's text
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


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, as :func:`indexer.cleaning.path_text` stores names."""
    try:
        return path_text(path.relative_to(root).as_posix())
    except ValueError:
        return path_text(path.as_posix())
