"""What reading a corpus yields: a :class:`Document`, or a :class:`Skipped` with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One document read from the corpus.

    ``doc_id`` is unique in an index: the file's path relative to the corpus root, or for a
    record the value of the id field (default ``<path>#<record number>``, counted from 1).
    ``source`` is the file's path relative to the corpus root (the file name for a single
    file), as :func:`indexer.cleaning.path_text` writes names that are not UTF-8. ``text``
    is the extracted text, cleaned of NULs and lone surrogates; chunk offsets count
    characters in it. ``notes`` say what reading changed or chose (``"2 NUL characters
    removed"``, a detected text field); a build reports them as warnings.
    """

    doc_id: str
    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file, or records of a record file (``line`` set), that gave no document, and why.

    ``line``: the line of the record (the first one's, if ``records`` > 1); None for a whole
    file. ``records``: how many records this one report covers (a problem that the build's
    choice of fields makes for many records of a file is reported once per file).
    ``kept``: whether the indexed versions stay in the index (the cause lies in the build's
    choice of fields, not in the content; see :meth:`indexer.writer.Writer.skip`).
    ``doc_ids``: the ids of the records' documents, or empty where not every id is known (a
    ``kept`` skip then keeps every document of the file that this build did not read).
    """

    source: str
    reason: str
    line: int | None = None
    records: int = 1
    kept: bool = False
    doc_ids: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``source``, or ``source:line`` for a single record."""
        return self.source if self.line is None or self.records > 1 else f"{self.source}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON object (a distributed build sends skips to its driver so)."""
        return {
            "source": self.source,
            "reason": self.reason,
            "line": self.line,
            "records": self.records,
            "kept": self.kept,
            "doc_ids": list(self.doc_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Skipped:
        """The skip :meth:`to_json` gave."""
        line = data.get("line")
        return cls(
            source=str(data["source"]),
            reason=str(data["reason"]),
            line=None if line is None else int(line),
            records=int(data.get("records", 1)),
            kept=bool(data.get("kept", False)),
            doc_ids=tuple(str(d) for d in data.get("doc_ids") or ()),
        )
