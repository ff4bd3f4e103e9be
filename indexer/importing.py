"""``import_vectors``: index chunks whose vectors were computed elsewhere (Spark, another pipeline).

Input: Parquet (``.parquet``, ``.pq``) or JSON Lines (``.jsonl``, ``.ndjson``) files, or folders
of them (such as Spark writes), one row per chunk (or one row per document, which is then its
only chunk). Columns:

=============  ========  ==================================================================
column         required  meaning
=============  ========  ==================================================================
``doc_id``     yes       the document's id (``id_field``); its rows together form the document
``text``       yes       the chunk's text (``text_field``): shown in hits, searched lexically
``vector``     yes       list of float (``vector_field``), the chunk's embedding; normalised here
``ord``        no        position of the chunk in its document (default: order of the rows)
``start``      no        character offset of the chunk in the document (with ``end``)
``end``        no        (default: the chunks' texts laid end to end, one ``\\n`` between them)
``lang``       no        ISO 639-1 code (default: detected from the text)
``source``     no        where the document came from (default: ``doc_id``)
``n_tokens``   no        the chunk's length in model tokens (default: counted with the model
                         when it is loadable here, else 0)
``metadata``   no        an object (or a JSON string of one) merged into the document metadata
any other      no        document metadata (as the columns of ``.jsonl``/``.csv`` corpora)
=============  ========  ==================================================================

A document's ``source`` and metadata are those of its first row. Rows of a document need
not be adjacent, but memory grows with the documents still open (rows read, more to come):
write each document's rows together (e.g. Spark ``sortWithinPartitions("doc_id")``).

The import reads the files twice. The first pass checks every row (a row with no id or
text, or a vector that is missing, of the wrong width, NaN or infinite, or zero is rejected
with its file, row number and reason; its document is skipped and an indexed version of it
kept) and computes each document's content hash over its rows; the second pass writes the
documents that are new or changed, through the same pending-write and publish path as
builds (chunk ids from the growing counter, FAISS file checksums, crash safety). So
importing the same rows again writes nothing, and a changed row replaces its document.

The model: vectors must come from the model the index records (an existing index) or the
one named with ``model`` (a new index). If that model can be loaded here, it is, and the
texts of a few rows are embedded and compared with their given vectors (cosine ≥
:data:`CHECK_MIN_COSINE`), so vectors from another model are refused; its full fingerprint is
recorded. If it cannot be loaded, its name and the vectors' dimension are recorded, marked
as imported: searching by text then needs that model (queries must be embedded the same
way), while :meth:`search.Index.search_vectors` works without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer import language
from indexer.embedding import Embedder
from indexer.jsonl import read_jsonl
from indexer.reading import Document, Skipped
from indexer.writer import FLUSH_CHUNKS, BuildReport, EmbeddedDocument, Writer, resolve_settings
from store.errors import DimensionMismatch, InvalidInput, ModelError, ModelMismatch
from store.index_dir import IndexDir
from store.records import ModelRecord, StoredChunk

PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
LANG_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,2}")
"""A row's ``lang``: an ISO 639 code of 2 or 3 letters, optionally with up to two BCP 47
subtags (``pt-BR``, ``zh-Hant-TW``)."""
RESERVED = ("ord", "start", "end", "lang", "source", "n_tokens", "metadata")
"""Optional columns with a meaning of their own; every other column is document metadata."""
BATCH_ROWS = 4096
CHECK_ROWS = 8
"""Rows whose texts are embedded with the model, when it is loadable, to check the vectors."""
CHECK_MIN_COSINE = 0.98
"""The median cosine between given and recomputed vectors below which the import is refused."""
MIN_NORM = 1e-6


@dataclass
class ImportReport(BuildReport):
    """What an import did: the build report's fields, and rows read and rejected.

    ``model_loaded``: whether the model could be loaded here (then its fingerprint is
    recorded and ``model_check_cosine`` is the median cosine between given and recomputed
    vectors on a sample of rows); otherwise the model is recorded by name and dimension.
    """

    files: int = 0
    rows_read: int = 0
    rows_rejected: int = 0
    chunks_imported: int = 0
    dimension: int = 0
    model_loaded: bool = False
    model_check_cosine: float | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Row:
    """One checked row: where it is, its fields, its unit vector float32 ``(d,)``."""

    where: Skipped
    doc_id: str
    ord: int | None
    text: str
    start: int | None
    end: int | None
    lang: str | None
    source: str
    n_tokens: int | None
    metadata: dict[str, Any]
    vector: np.ndarray


@dataclass
class _RowCounts:
    """Rows read (blank lines excluded) and rows by vector width."""

    rows: int = 0
    widths: Counter[int] = field(default_factory=Counter)


@dataclass
class _DocTally:
    rows: int = 0
    digest: int = 0
    rejected: bool = False
    source: str = ""


def import_vectors(
    files: Sequence[str | Path],
    index: str | Path,
    *,
    model: str | Embedder | None = None,
    text_field: str = "text",
    id_field: str = "doc_id",
    vector_field: str = "vector",
    index_type: str | None = None,
    check_model: bool = True,
    precision: str | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> ImportReport:
    """Import chunks with precomputed vectors from Parquet or JSONL ``files`` into ``index``.

    Args:
        model: the model that made the vectors: a name (``indexer models``), Hub id or local
            directory, or a loaded ``Embedder``. Required for a new index; for an existing
            one, default and only allowed value is the model it records.
        text_field / id_field / vector_field: the names of those columns.
        index_type: as for :func:`indexer.build.build_index` (default: as recorded, else auto).
        check_model: with the model loadable here, embed a few rows' texts and refuse vectors
            that do not match (median cosine < :data:`CHECK_MIN_COSINE`).
        query_prompt / document_prompt: the prompts the vectors were made with and queries are
            to be embedded with (default: as the index records them, else the model's own;
            see :mod:`indexer.embedding.prompts`). Recorded with the model.
    Raises:
        DimensionMismatch: no row has vectors of the index's (or the first row's) dimension.
        ModelMismatch: another model than the index's is named, or the vectors are not the
            named model's.
        IndexLocked: another process is writing the index.
    Rows that cannot be used are reported in ``rejected`` and their documents skipped; the
    other documents are imported.
    """
    started = time.perf_counter()
    paths = _expand([Path(f) for f in files])
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file; give Parquet (.parquet) or JSON Lines (.jsonl) files.")
        if path.suffix.lower() not in PARQUET_SUFFIXES + JSONL_SUFFIXES:
            raise InvalidInput(f"{path}: unknown format {path.suffix!r}; use .parquet/.pq or .jsonl/.ndjson files.")
    fields = _Fields(text_field, id_field, vector_field)
    is_new = not Path(index).exists()
    with IndexDir.open_for_writing(index) as idx:
        try:
            prompts = (query_prompt, document_prompt)
            return _import(idx, paths, fields, model, index_type, check_model, precision, prompts, started)
        except BaseException:
            if is_new and idx.model_record() is None:
                shutil.rmtree(index, ignore_errors=True)  # nothing was recorded: leave no empty index
            raise


def _expand(given: list[Path]) -> list[Path]:
    """The files to read: each file given, and the Parquet/JSONL files of each folder given
    (sorted, hidden and ``_``-prefixed ones such as Spark's ``_SUCCESS`` left out)."""
    paths: list[Path] = []
    for path in given:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in PARQUET_SUFFIXES + JSONL_SUFFIXES
                and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            )
            if not found:
                raise InvalidInput(f"the folder {path} holds no .parquet or .jsonl files to import.")
            paths += found
        else:
            paths.append(path)
    if not paths:
        raise InvalidInput("give at least one Parquet or JSONL file (or a folder of them) to import.")
    return paths


@dataclass(frozen=True)
class _Fields:
    text: str
    id: str
    vector: str


def _import(
    idx: IndexDir,
    paths: list[Path],
    fields: _Fields,
    model: str | Embedder | None,
    index_type: str | None,
    check_model: bool,
    precision: str | None,
    prompts: tuple[str | None, str | None],
    started: float,
) -> ImportReport:
    recorded = idx.model_record()
    name, embedder = _resolve_model(idx, recorded, model, check_model, precision, prompts)
    dimension = recorded.dimension if recorded else None
    report = ImportReport(index=str(idx.path), model=name, files=len(paths))
    settings = resolve_settings(idx, index_type=index_type)

    # Pass 1: check every row; tally each document's rows and content hash.
    tallies: dict[str, _DocTally] = {}
    sample: list[_Row] = []
    counts = _RowCounts()
    for item in _rows(paths, fields, dimension, counts):
        if isinstance(item, tuple):  # (Skipped, doc_id or None)
            where, doc_id = item
            _reject(report, where)
            if doc_id is not None:
                tallies.setdefault(doc_id, _DocTally()).rejected = True
            continue
        if dimension is None:
            dimension = len(item.vector)
        tally = tallies.setdefault(item.doc_id, _DocTally(source=item.source))
        tally.rows += 1
        tally.digest = (tally.digest + _row_digest(item)) % (1 << 256)
        if len(sample) < CHECK_ROWS:
            sample.append(item)
    report.rows_read = counts.rows
    if recorded and counts.widths and dimension not in counts.widths:
        got = ", ".join(str(w) for w in sorted(counts.widths))
        raise DimensionMismatch(
            f"the vectors have {got} dimensions, but {idx.path} holds {dimension}-dimensional vectors of the model "
            f"{recorded.name!r}. Import vectors of that model, or import into a new --index."
        )
    if not any(not t.rejected for t in tallies.values()):
        first = report.rejected[0] if report.rejected else {"source": ", ".join(map(str, paths)), "reason": "no rows"}
        raise InvalidInput(
            f"nothing to import: {report.rows_read} rows read, {report.rows_rejected} rejected "
            f"(first: {first['source']}: {first['reason']}); nothing was written."
        )
    assert dimension is not None  # some row was accepted, so a width is known
    report.dimension = dimension
    report.model_loaded = embedder is not None
    if embedder is not None and check_model:
        report.model_check_cosine = _check_sample(embedder, sample, name)
    if recorded is None:
        _record_model(idx, name, embedder, dimension, prompts)

    writer = Writer(idx, embedder, settings, report)
    todo: dict[str, int] = {}
    for doc_id, tally in tallies.items():
        if tally.rejected:
            writer.skip(
                Skipped(
                    tally.source or doc_id,
                    f"document {doc_id!r} has rejected rows (see above); its indexed version, if any, is kept",
                )
            )
        elif writer.triage(doc_id, tally.source, f"import:{tally.digest:064x}"):
            todo[doc_id] = tally.rows

    # Pass 2: gather the rows of documents to write; write each once all its rows are read.
    if todo:
        open_docs: dict[str, list[_Row]] = {}
        batch: list[EmbeddedDocument] = []
        batch_chunks = 0
        for item in _rows(paths, fields, dimension, _RowCounts()):
            if isinstance(item, tuple) or item.doc_id not in todo:
                continue
            rows = open_docs.setdefault(item.doc_id, [])
            rows.append(item)
            if len(rows) < todo[item.doc_id]:
                continue
            del open_docs[item.doc_id]
            doc = _document(writer, rows, tallies[item.doc_id], embedder)
            if doc is None:
                continue
            batch.append(doc)
            batch_chunks += len(doc.chunks)
            report.chunks_imported += len(doc.chunks)
            if batch_chunks >= FLUSH_CHUNKS:
                writer.write_embedded(batch)
                batch, batch_chunks = [], 0
        writer.write_embedded(batch)
    writer.finish()
    writer.publish(dimension=dimension)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _reject(report: ImportReport, where: Skipped) -> None:
    """Report a rejected row (or a whole file that cannot be read: ``where.line`` None)."""
    report.rows_rejected += where.line is not None
    report.rejected.append({"source": where.where, "reason": where.reason})


# -- the model ----------------------------------------------------------------------------
def _resolve_model(
    idx: IndexDir,
    recorded: ModelRecord | None,
    model: str | Embedder | None,
    check_model: bool,
    precision: str | None,
    prompts: tuple[str | None, str | None],
) -> tuple[str, Embedder | None]:
    """``(model name, loaded embedder or None)``; ModelMismatch if it is not the index's model
    (or its prompts are not the index's)."""
    from indexer.embedding import display, is_available, load_embedder, prompts_for, require_same_model, resolve

    if model is None and recorded is None:
        raise InvalidInput(
            "name the model that made these vectors with --model NAME (a name from `indexer models`, a Hub id or a "
            "local directory): queries will be embedded with it, so that they compare with the imported vectors."
        )
    if model is None or isinstance(model, str):
        if model is not None:
            name = model
        else:
            assert recorded is not None  # a new index without a model was refused above
            name = recorded.name
        if recorded is not None and resolve(name) != resolve(recorded.name):
            raise ModelMismatch(
                f"{idx.path} holds vectors of the model {display(recorded.name)}, not {display(name)}. "
                f"Import vectors of {recorded.name!r} (omit --model), or import into a new --index."
            )
        embedder: Embedder | None = None
        if check_model and is_available(name):
            try:
                embedder = load_embedder(name, precision=precision, **prompts_for(recorded, name, *prompts))
            except ModelError:
                embedder = None
    else:
        from indexer.embedding import to_embedder

        embedder = to_embedder(model, query_prompt=prompts[0], document_prompt=prompts[1])  # checks given prompts
        name = embedder.name
    if recorded is not None and embedder is not None:
        require_same_model(recorded, embedder, idx.path, "Import vectors of the index's model, or into a new --index.")
    return name, embedder


def _check_sample(embedder: Embedder, sample: list[_Row], name: str) -> float:
    """Median cosine between the sample rows' vectors and their texts embedded by ``embedder``."""
    from indexer.embedding import display

    if len(sample[0].vector) != embedder.dimension:
        raise DimensionMismatch(
            f"the vectors have {len(sample[0].vector)} dimensions, but the model {display(name)} gives "
            f"{embedder.dimension}. Name the model that made them with --model."
        )
    again = embedder.embed_documents([r.text for r in sample])
    cosine = float(np.median(np.einsum("ij,ij->i", again, np.stack([r.vector for r in sample]))))
    if not cosine >= CHECK_MIN_COSINE:
        raise ModelMismatch(
            f"the vectors do not come from the model {display(name)}: embedding the texts of {len(sample)} rows "
            f"with it gives vectors at a median cosine of {cosine:.3f} from the given ones ({CHECK_MIN_COSINE} "
            "needed). Name the model that made them with --model; if they were made with a prompt before each "
            "text, pass it with --document-prompt (and the queries' with --query-prompt); with other settings "
            "(another pooling), pass --no-model-check, knowing that queries will be embedded by the model as "
            "loaded here."
        )
    return round(cosine, 4)


def _record_model(
    idx: IndexDir, name: str, embedder: Embedder | None, dimension: int, prompts: tuple[str | None, str | None]
) -> None:
    """Record the model; one not loaded here is recorded with the prompts given (None: its own)."""
    from indexer.embedding import describe, resolve

    if embedder is not None:
        record = dataclasses.replace(describe(embedder), imported=True)
    else:
        record = ModelRecord(
            name=name,
            source=resolve(name),
            backend="imported",
            dimension=dimension,
            query_prompt=prompts[0],
            document_prompt=prompts[1],
            imported=True,
        )
    idx.record_model(record)


# -- reading --------------------------------------------------------------------------------
def _rows(
    paths: list[Path], fields: _Fields, dimension: int | None, counts: _RowCounts
) -> Iterator[_Row | tuple[Skipped, str | None]]:
    """Every row of every file, checked: a :class:`_Row`, or ``(Skipped, doc_id or None)``.

    ``dimension`` None takes the first vector's width. ``counts`` counts the rows read.
    """
    for path in paths:
        reader = _parquet_batches if path.suffix.lower() in PARQUET_SUFFIXES else _jsonl_batches
        try:
            for records, vectors, numbers in reader(path, fields):
                for record, vector, number in zip(records, vectors, numbers, strict=True):
                    item = _check(path, number, record, vector, fields, dimension, counts)
                    if isinstance(item, _Row) and dimension is None:
                        dimension = len(item.vector)
                    yield item
        except _FileProblem as exc:
            yield Skipped(str(path), str(exc)), None


class _FileProblem(Exception):
    """A whole file cannot be read (a missing column, not Parquet, a bad type)."""


def _parquet_batches(path: Path, fields: _Fields) -> Iterator[tuple[list[dict], list[Any], range]]:
    """Batches of ``(other columns as dicts, vectors float32 or None, row numbers from 1)``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _FileProblem(f"not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    for needed, option in ((fields.id, "--id-field"), (fields.text, "--text-field"), (fields.vector, "--vector-field")):
        if needed not in names:
            raise _FileProblem(f"no column {needed!r} (columns: {', '.join(names)}); choose it with {option}")
    vtype = pf.schema_arrow.field(fields.vector).type
    if not (pa.types.is_list(vtype) or pa.types.is_large_list(vtype) or pa.types.is_fixed_size_list(vtype)) or not (
        pa.types.is_floating(vtype.value_type) or pa.types.is_integer(vtype.value_type)
    ):
        raise _FileProblem(f"column {fields.vector!r} holds {vtype}; it must be a list of floats (one vector per row)")
    first = 1
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        col = batch.column(fields.vector)
        lengths = pc.fill_null(pc.list_value_length(col), -1).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32)
        ends = np.cumsum(np.maximum(lengths, 0))
        vectors: list[Any] = [None if n < 0 else flat[e - n : e] for n, e in zip(lengths, ends, strict=True)]
        others = batch.drop_columns([fields.vector]).to_pylist()
        yield others, vectors, range(first, first + batch.num_rows)
        first += batch.num_rows


def _jsonl_batches(path: Path, fields: _Fields) -> Iterator[tuple[list[dict[str, Any]], list[Any], list[int]]]:
    """Batches of ``(records as dicts, vectors or None, line numbers)``; a line that is not a
    JSON object gives ``{"__error__": reason}``."""
    records: list[dict[str, Any]] = []
    vectors: list[Any] = []
    numbers: list[int] = []
    for line in read_jsonl(path, errors="replace"):
        record = line.record if line.record is not None else {"__error__": line.problem}
        vectors.append(None if line.record is None else record.pop(fields.vector, None))
        records.append(record)
        numbers.append(line.number)
        if len(records) == BATCH_ROWS:
            yield records, vectors, numbers
            records, vectors, numbers = [], [], []
    if records:
        yield records, vectors, numbers


def _check(
    path: Path,
    number: int,
    record: dict[str, Any],
    vector: Any,
    fields: _Fields,
    dimension: int | None,
    counts: _RowCounts,
) -> _Row | tuple[Skipped, str | None]:
    """A checked row, or why it cannot be used (with its doc_id when it has one)."""

    def bad(reason: str, doc_id: str | None = None) -> tuple[Skipped, str | None]:
        return Skipped(str(path), reason, number), doc_id

    counts.rows += 1
    if "__error__" in record:
        return bad(record["__error__"])
    doc_id = record.get(fields.id)
    if doc_id is None or str(doc_id) == "":
        return bad(f"no {fields.id!r} (fields: {', '.join(record)}); choose the id field with --id-field")
    doc_id = str(doc_id)
    text = record.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        return bad(f"no text in {fields.text!r}; choose the text field with --text-field", doc_id)
    if vector is None:
        return bad(f"no vector in {fields.vector!r}; choose the vector field with --vector-field", doc_id)
    if isinstance(vector, bool) or (isinstance(vector, list) and any(isinstance(x, bool) for x in vector)):
        return bad(f"{fields.vector!r} holds true/false values, not numbers", doc_id)
    try:
        vec = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        return bad(f"{fields.vector!r} is not a list of numbers", doc_id)
    if vec.ndim != 1 or vec.size == 0:
        return bad(f"{fields.vector!r} is not a flat list of numbers", doc_id)
    width = int(vec.size)
    counts.widths[width] += 1
    want = dimension if dimension is not None else width
    if width != want:
        return bad(f"the vector has {width} values; the index's vectors have {want}", doc_id)
    if not np.isfinite(vec).all():
        return bad("the vector has NaN or infinite values", doc_id)
    norm = float(np.linalg.norm(vec.astype(np.float64)))
    if not norm >= MIN_NORM:
        return bad("the vector is all zeros (it has no direction to compare)", doc_id)
    try:
        ord_ = _int_or_none(record.get("ord"), "ord")
        start = _int_or_none(record.get("start"), "start")
        end = _int_or_none(record.get("end"), "end")
        n_tokens = _int_or_none(record.get("n_tokens"), "n_tokens")
        metadata = _metadata(record, fields)
    except ValueError as exc:
        return bad(str(exc), doc_id)
    if (start is None) != (end is None) or (start is not None and end is not None and not 0 <= start <= end):
        return bad("'start' and 'end' must both be given, with 0 <= start <= end", doc_id)
    lang = record.get("lang")
    if lang is not None and lang != "" and not (isinstance(lang, str) and LANG_CODE.fullmatch(lang)):
        shown = repr(lang) if len(repr(lang)) <= 40 else repr(lang)[:39] + "…"
        return bad(f"'lang' must be a language code such as 'de' or 'pt-BR', not {shown}", doc_id)
    source = record.get("source")
    return _Row(
        where=Skipped(str(path), "", number),
        doc_id=doc_id,
        ord=ord_,
        text=text,
        start=start,
        end=end,
        lang=str(lang) if lang else None,
        source=str(source) if source else doc_id,
        n_tokens=n_tokens,
        metadata=metadata,
        vector=(vec / np.float32(norm)).astype(np.float32),
    )


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ValueError(f"{name!r} must be a whole number, not {value!r}")
    if value < 0:
        raise ValueError(f"{name!r} must not be negative ({value})")
    return int(value)


def _metadata(record: dict, fields: _Fields) -> dict[str, Any]:
    """The row's metadata: its other columns, and the object in ``metadata`` merged in."""
    out = {k: v for k, v in record.items() if k not in (fields.id, fields.text, fields.vector, *RESERVED)}
    extra = record.get("metadata")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            raise ValueError("'metadata' is a string that is not a JSON object") from None
    if isinstance(extra, list) and all(isinstance(p, tuple | list) and len(p) == 2 for p in extra):
        extra = dict(extra)  # a Parquet map column
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"'metadata' must be an object, not {type(extra).__name__}")
    out.update(extra or {})
    return out


def _row_digest(row: _Row) -> int:
    """A row's content as an integer (sha256): a document's hash is the sum of its rows'."""
    payload = json.dumps(
        [row.doc_id, row.ord, row.text, row.start, row.end, row.lang, row.source, row.n_tokens, row.metadata],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(payload.encode())
    digest.update(row.vector.astype("<f4").tobytes())
    return int.from_bytes(digest.digest(), "big")


# -- writing -------------------------------------------------------------------------------
def _document(writer: Writer, rows: list[_Row], tally: _DocTally, embedder: Embedder | None) -> EmbeddedDocument | None:
    """The document of ``rows`` (all of them) ready for ``write_embedded``, or None if skipped."""
    first = rows[0]
    if any(r.ord is not None for r in rows):
        if any(r.ord is None for r in rows) or len({r.ord for r in rows}) != len(rows):
            writer.skip(
                Skipped(
                    str(first.where.source),
                    f"document {first.doc_id!r} has rows without 'ord' or with the "
                    "same 'ord' twice; give each of its rows its own 'ord'",
                    first.where.line,
                )
            )
            return None
        rows = sorted(rows, key=lambda r: r.ord or 0)
    offsets: list[tuple[int, int]] = []
    at = 0
    for r in rows:
        if r.start is None or r.end is None:
            offsets.append((at, at + len(r.text)))
            at += len(r.text) + 1
        else:
            offsets.append((r.start, r.end))
    counts = [r.n_tokens for r in rows]
    if any(c is None for c in counts) and embedder is not None:
        counted = embedder.count_tokens([r.text for r in rows])
        counts = [c if c is not None else n for c, n in zip(counts, counted, strict=True)]
    chunks = [
        StoredChunk(
            text=r.text, start=s, end=e, n_tokens=c or 0, lang=r.lang or language.detect(r.text), vector=r.vector
        )
        for r, (s, e), c in zip(rows, offsets, counts, strict=True)
    ]
    n_chars = max(e for _, e in offsets)
    doc = Document(doc_id=first.doc_id, source=first.source, text="", metadata=first.metadata)
    return EmbeddedDocument(doc, f"import:{tally.digest:064x}", n_chars, chunks)
