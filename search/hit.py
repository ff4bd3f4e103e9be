"""The :class:`Hit` record that every search returns."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from store.records import ChunkRow


@dataclass(frozen=True)
class Hit:
    """One passage found by a search.

    Attributes:
        score: how well the chunk matches; higher is better. Its meaning depends on the mode:
            ``dense``: cosine similarity of query and chunk vectors, in [-1, 1];
            ``lexical``: the sum of the idf weights (rarity) of the query's parts the chunk
            contains (unbounded, comparable only within one query; see :mod:`store.lexical`),
            or, for queries whose terms all have fewer than 3 characters, the number of
            parts the chunk contains;
            ``hybrid``: the reciprocal rank fusion score ``Σ 1/(60 + rank)`` over the dense
            and lexical rankings (at most 2/61 ≈ 0.033); a lexical match beyond the dense
            candidates is ranked in the dense list by its exact cosine.
        text: the chunk's text, exactly ``document_text[start:end]``.
        doc_id: the document's id (its path in the corpus, or the record's id).
        chunk_id: the chunk's id; stable, never reused after a delete.
        source: the file the document came from, relative to the corpus root.
        lang: the chunk's detected language (ISO 639-1), or ``None`` if unknown.
        start, end: character offsets of the chunk in its document's text.
        metadata: the document's metadata (record fields, an HTML or PDF title).
        signals: the rankings that found the chunk: ``"dense"``, ``"lexical"`` or both.
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
    signals: tuple[str, ...] = ("dense",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(self.signals))  # a JSON list reads back as a tuple

    @classmethod
    def from_row(cls, row: ChunkRow, score: float, signals: Sequence[str] = ("dense",)) -> Hit:
        """The hit of a stored chunk with its ``score`` (see the class doc) and ``signals``."""
        return cls(
            score=score,
            text=row.text,
            doc_id=row.doc_id,
            chunk_id=row.chunk_id,
            source=row.source,
            lang=row.lang,
            start=row.start,
            end=row.end,
            metadata=row.metadata,
            signals=tuple(signals),
        )

    def as_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict that shares the metadata object with the hit (and
        with the other hits of its document): cheap, for serialising at once; do not change it."""
        return {
            "score": self.score,
            "text": self.text,
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "source": self.source,
            "lang": self.lang,
            "start": self.start,
            "end": self.end,
            "metadata": self.metadata,
            "signals": list(self.signals),
        }

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (the same names as the attributes; ``signals`` a list)
        with its own copy of the metadata, safe to change.

        Written out rather than ``dataclasses.asdict``, which costs a tenth of an HTTP search."""
        data = self.as_json()
        data["metadata"] = copy.deepcopy(self.metadata) if self.metadata else {}
        return data
