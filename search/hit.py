"""The :class:`Hit` record that every search returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One passage found by a search.

    Attributes:
        score: cosine similarity between the query and the chunk, in [-1, 1]; higher is closer.
        text: the chunk's text, exactly ``document_text[start:end]``.
        doc_id: the document's id (its path in the corpus, or the record's id).
        chunk_id: the chunk's id; stable, never reused after a delete.
        source: the file the document came from, relative to the corpus root.
        lang: the chunk's detected language (ISO 639-1), or ``None`` if unknown.
        start, end: character offsets of the chunk in its document's text.
        metadata: the document's metadata (record fields, an HTML or PDF title).
    """

    score: float
    text: str
    doc_id: str
    chunk_id: int
    source: str
    lang: str | None
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (the same names as the attributes)."""
        return asdict(self)
