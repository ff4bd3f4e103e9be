"""``check_index``: verify an index directory and say what is wrong and how to fix it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from store import faiss_files, faiss_index
from store.errors import BabelIndexError
from store.index_dir import IndexDir
from store.records import FaissInfo, ModelRecord
from store.schema import DB_FILE
from store.staging import STAGING_DIR

ModelVerifier = Callable[[ModelRecord], bool]
"""Loads the recorded model and says whether it still gives the recorded probe embedding;
raises a :class:`BabelIndexError` when the model cannot be loaded. Given by the caller
(the store knows no models): the CLI passes :func:`indexer.embedding.verify_model`."""


@dataclass
class CheckReport:
    """Checks that passed, problems (the index is damaged) and warnings (it works, but…)."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "passed": self.passed, "problems": self.problems, "warnings": self.warnings}


REPAIR = "run `indexer repair` to rebuild the FAISS index from the vectors stored in meta.db"
REBUILD = "rebuild the index with `indexer build` into a new --index"


def check_index(path: str | Path, *, verify_model: ModelVerifier | None = None) -> CheckReport:
    """Verify SQLite integrity, the FAISS file's size and checksum, that the ids in FAISS are
    exactly the live chunks, the vectors' shape and norms, and the recorded model (with
    ``verify_model``, also that loading it now gives the recorded probe embedding)."""
    report = CheckReport()
    path = Path(path)
    try:
        idx = IndexDir.open_for_reading(path)
    except BabelIndexError as exc:
        report.problems.append(str(exc))
        return report
    with idx:
        try:
            _check(idx, path, verify_model, report)
        except BabelIndexError as exc:  # a record that cannot be read is one more problem, not a crash
            report.problems.append(str(exc))
    return report


def _check(idx: IndexDir, path: Path, verify_model: ModelVerifier | None, report: CheckReport) -> None:
    try:
        integrity = idx.meta.integrity_problems()
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{DB_FILE} cannot be read ({exc}); rebuild the index with `indexer build`.")
        return
    if integrity:
        report.problems.append(
            f"{DB_FILE} fails SQLite's integrity check ({'; '.join(integrity)}); "
            "rebuild the index from its corpus with `indexer build` into a new --index."
        )
        return
    report.passed.append(f"{DB_FILE}: SQLite integrity")
    _check_metadata(idx, report)
    _check_fts(idx, report)

    model = idx.model_record()
    if model is None:
        if idx.meta.has_documents():
            report.problems.append(f"documents are stored but no model is recorded; {REBUILD}.")
        else:
            report.warnings.append("the index is empty: its first build stopped before it began; run `indexer build`.")
        return
    _check_model(model, verify_model, report)

    live = idx.meta.chunk_ids()
    _check_vectors(idx, live, model.dimension, report)

    info = idx.faiss_info()
    if info is None:
        if len(live):
            report.problems.append(f"no FAISS index is recorded for {len(live)} chunks; {REPAIR}.")
        else:
            report.warnings.append("nothing is published yet: the first build did not finish; run `indexer build`.")
    else:
        try:
            index = faiss_files.read_version(path, info)
        except BabelIndexError as exc:
            report.problems.append(str(exc))
        else:
            report.passed.append(f"FAISS file {info.file}: size {info.size} bytes and sha256 match")
            _check_ids(index, live, model.dimension, info, report)
    _check_leftovers(idx, info, report)
    pending = idx.meta.unpublished_changes()
    if pending:
        report.warnings.append(
            f"{pending} document changes of an interrupted build or update wait to be "
            "published; run `indexer build` again (or `indexer repair`) to finish them."
        )


def _check_metadata(idx: IndexDir, report: CheckReport) -> None:
    count, some = idx.meta.invalid_metadata()
    if count:
        report.problems.append(
            f"{count} documents have metadata that is not valid JSON (e.g. NaN), which breaks filtered "
            f"searches: {', '.join(map(repr, some))}{' …' if count > len(some) else ''}. Upsert them again with "
            "valid metadata (`indexer build` re-reads files), or remove them with `indexer remove`."
        )
    else:
        report.passed.append("document metadata: valid JSON objects")


def _check_fts(idx: IndexDir, report: CheckReport) -> None:
    try:
        problem = idx.meta.fts_problems()
    except BabelIndexError as exc:
        report.warnings.append(f"the full-text table was not verified: {exc}")
        return
    if problem:
        report.problems.append(f"the full-text table fails its integrity check ({problem}); {REPAIR}.")
    elif idx.meta.has_fts():
        report.passed.append("full-text table: FTS5 integrity")


def _check_model(model: ModelRecord, verify: ModelVerifier | None, report: CheckReport) -> None:
    imported = ", imported vectors" if model.imported else ""
    report.passed.append(
        f"model recorded: {model.name} ({model.dimension} dimensions, {model.pooling} pooling{imported})"
    )
    if model.imported and not model.probe:
        report.warnings.append(
            f"the vectors were imported while the model {model.name} could not be loaded: no "
            "probe embedding is recorded, so the model that embeds queries is checked by its "
            "dimension only."
        )
    elif len(model.probe) != model.dimension:
        report.problems.append(
            f"the recorded model fingerprint is incomplete (no probe embedding of the model's dimension); {REBUILD}."
        )
    elif verify is not None:
        try:
            same = verify(model)
        except BabelIndexError as exc:
            report.warnings.append(f"could not load the model to verify it: {exc}")
            return
        if same:
            report.passed.append(f"model {model.name} loads and gives the recorded probe embedding")
        else:
            report.problems.append(
                f"the model {model.name} now gives other vectors than the index was built "
                f"with (its files changed); {REBUILD}."
            )


def _check_vectors(idx: IndexDir, live: np.ndarray, dimension: int, report: CheckReport) -> None:
    missing = idx.meta.chunks_without_vector()
    if missing:
        report.problems.append(f"{missing} chunks have no stored vector; {REBUILD}.")
        return
    bad: list[int] = []
    for ids, vecs in _stream(idx, dimension, report):
        norms = np.linalg.norm(vecs, axis=1)
        bad += ids[~np.isfinite(vecs).all(axis=1) | (np.abs(norms - 1) > 1e-3)].tolist()
    if bad:
        docs = idx.meta.documents_of_chunks(bad)
        report.problems.append(
            f"{len(bad)} stored vectors are not finite unit vectors, in {len(docs)} documents "
            f"({', '.join(map(repr, docs[:5]))}{' …' if len(docs) > 5 else ''}). Remove them with `indexer remove "
            "ID…`, then `indexer build CORPUS` embeds them again (or upsert them again)."
        )
    else:
        report.passed.append(
            f"{len(live)} live chunks, each with a finite unit vector of {dimension} {idx.meta.vector_dtype}"
        )


def _stream(idx: IndexDir, dimension: int, report: CheckReport) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    try:
        yield from idx.meta.iter_vectors(dimension)
    except BabelIndexError as exc:
        report.problems.append(str(exc))


def _check_ids(index: faiss.Index, live: np.ndarray, dimension: int, info: FaissInfo, report: CheckReport) -> None:
    have = faiss_index.index_ids(index)
    extra = np.setdiff1d(have, live)
    missing = np.setdiff1d(live, have)
    if index.d != dimension:
        report.problems.append(f"the FAISS index has dimension {index.d}, the model {dimension}; {REPAIR}.")
    elif len(have) != len(np.unique(have)):
        report.problems.append(f"the FAISS index holds duplicate ids; {REPAIR}.")
    elif len(extra) or len(missing):
        report.problems.append(
            f"the FAISS index holds {len(extra)} ids that are not live chunks and lacks "
            f"{len(missing)} live chunks; {REPAIR}."
        )
    elif index.ntotal != info.ntotal:
        report.problems.append(f"the FAISS index holds {index.ntotal} vectors, {info.ntotal} recorded; {REPAIR}.")
    else:
        report.passed.append(f"FAISS ids = live chunk ids ({len(live)}), {info.factory}")


def _check_leftovers(idx: IndexDir, info: FaissInfo | None, report: CheckReport) -> None:
    if not (idx.path / faiss_files.FAISS_DIR).is_dir():
        return
    temporary = faiss_files.leftover_temporaries(idx.path)
    if temporary:
        report.warnings.append(
            f"leftover temporary files of an interrupted write: {', '.join(temporary)}; "
            "the next build or `indexer repair` removes them."
        )
    staged = idx.staging().staged_shards()
    if staged:
        builds = sorted({p.parent.name for p in staged})
        report.warnings.append(
            f"{len(staged)} shards of an interrupted distributed build wait in {STAGING_DIR}/ "
            f"({', '.join(builds)}); the next `indexer build --engine ray` merges them."
        )
    old = [name for name in faiss_files.version_files(idx.path) if info is None or name != info.file]
    if len(old) > 1:
        report.warnings.append(f"{len(old)} superseded FAISS versions kept: {', '.join(old)}")
