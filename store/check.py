"""``check_index``: verify an index directory and say what is wrong and how to fix it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from store import vectors
from store.errors import BabelIndexError
from store.index_dir import IndexDir
from store.metadata import DB_FILE
from store.staging import STAGING_DIR


@dataclass
class CheckReport:
    """Checks that passed, problems (the index is damaged) and warnings (it works, but…)."""

    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "passed": self.passed, "problems": self.problems, "warnings": self.warnings}


REPAIR = "run `indexer repair` to rebuild the FAISS index from the vectors stored in meta.db"


def check_index(path: str | Path, *, verify_model: bool = False) -> CheckReport:
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
        conn = idx.meta.conn
        try:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"{DB_FILE} cannot be read ({exc}); rebuild the index with `indexer build`.")
            return report
        if integrity != ["ok"] or foreign:
            report.problems.append(f"{DB_FILE} fails SQLite's integrity check ({'; '.join(integrity[:3])}); "
                                   "rebuild the index from its corpus with `indexer build` into a new --index.")
            return report
        report.passed.append(f"{DB_FILE}: SQLite integrity")

        model = idx.model_record()
        if model is None:
            if conn.execute("SELECT count(*) FROM documents").fetchone()[0]:
                report.problems.append("documents are stored but no model is recorded; rebuild the index with "
                                       "`indexer build` into a new --index.")
            else:
                report.warnings.append("the index is empty: its first build stopped before it began; run `indexer build`.")
            return report
        dimension = int(model["dimension"])
        imported = ", imported vectors" if model.get("imported") else ""
        report.passed.append(f"model recorded: {model['name']} ({dimension} dimensions, {model.get('pooling')} pooling{imported})")
        if model.get("imported") and not model.get("probe"):
            report.warnings.append(f"the vectors were imported while the model {model['name']} could not be loaded: no "
                                   "probe embedding is recorded, so the model that embeds queries is checked by its "
                                   "dimension only.")
        elif len(model.get("probe", [])) != dimension:
            report.problems.append("the recorded model fingerprint is incomplete (no probe embedding of the "
                                   "model's dimension); rebuild the index with `indexer build` into a new --index.")
        elif verify_model:
            _verify_model(model, report)

        live = idx.meta.chunk_ids()
        _check_vectors(idx, live, dimension, report)

        info = idx.faiss_info()
        if info is None:
            if len(live):
                report.problems.append(f"no FAISS index is recorded for {len(live)} chunks; {REPAIR}.")
            else:
                report.warnings.append("nothing is published yet: the first build did not finish; run `indexer build`.")
        else:
            try:
                index = vectors.read_version(path, info)
            except BabelIndexError as exc:
                report.problems.append(str(exc))
                index = None
            except RuntimeError as exc:  # faiss could not deserialise it
                report.problems.append(f"the FAISS file {info.file} cannot be loaded ({exc}); {REPAIR}.")
                index = None
            if index is not None:
                report.passed.append(f"FAISS file {info.file}: size {info.size} bytes and sha256 match")
                _check_ids(index, live, dimension, info, report)
        _check_leftovers(idx, info, report)
        pending = conn.execute("SELECT count(*) FROM documents WHERE pending = 1 OR retired = 1").fetchone()[0]
        if pending:
            report.warnings.append(f"{pending} document changes of an interrupted build or update wait to be "
                                   "published; run `indexer build` again (or `indexer repair`) to finish them.")
    return report


def _verify_model(model: dict, report: CheckReport) -> None:
    from indexer.embedding import load_embedder, same_model

    try:
        embedder = load_embedder(model["name"])
    except BabelIndexError as exc:
        report.warnings.append(f"could not load the model to verify it: {exc}")
        return
    if same_model(model, embedder):
        report.passed.append(f"model {model['name']} loads and gives the recorded probe embedding")
    else:
        report.problems.append(f"the model {model['name']} now gives other vectors than the index was built "
                               "with (its files changed); rebuild the index with `indexer build` into a new --index.")


def _check_vectors(idx: IndexDir, live: np.ndarray, dimension: int, report: CheckReport) -> None:
    conn = idx.meta.conn
    missing = conn.execute("SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.chunk = c.id WHERE v.chunk IS NULL").fetchone()[0]
    if missing:
        report.problems.append(f"{missing} chunks have no stored vector; rebuild the index with `indexer build` into a new --index.")
        return
    bad = 0
    for _ids, vecs in _stream(idx, dimension, report):
        norms = np.linalg.norm(vecs, axis=1)
        bad += int((~np.isfinite(vecs).all(axis=1) | (np.abs(norms - 1) > 1e-3)).sum())
    if bad:
        report.problems.append(f"{bad} stored vectors are not finite unit vectors; rebuild the index with `indexer build`.")
    else:
        report.passed.append(f"{len(live)} live chunks, each with a finite unit vector of {dimension} float32")


def _stream(idx: IndexDir, dimension: int, report: CheckReport):
    try:
        yield from idx.meta.iter_vectors(dimension)
    except BabelIndexError as exc:
        report.problems.append(str(exc))


def _check_ids(index, live: np.ndarray, dimension: int, info, report: CheckReport) -> None:
    have = vectors.index_ids(index)
    extra = np.setdiff1d(have, live)
    missing = np.setdiff1d(live, have)
    if index.d != dimension:
        report.problems.append(f"the FAISS index has dimension {index.d}, the model {dimension}; {REPAIR}.")
    elif len(have) != len(np.unique(have)):
        report.problems.append(f"the FAISS index holds duplicate ids; {REPAIR}.")
    elif len(extra) or len(missing):
        report.problems.append(f"the FAISS index holds {len(extra)} ids that are not live chunks and lacks "
                               f"{len(missing)} live chunks; {REPAIR}.")
    elif index.ntotal != info.ntotal:
        report.problems.append(f"the FAISS index holds {index.ntotal} vectors, {info.ntotal} recorded; {REPAIR}.")
    else:
        report.passed.append(f"FAISS ids = live chunk ids ({len(live)}), {info.factory}")


def _check_leftovers(idx: IndexDir, info, report: CheckReport) -> None:
    folder = idx.path / vectors.FAISS_DIR
    if not folder.is_dir():
        return
    current = {info.file} if info else set()
    temporary = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    if temporary:
        report.warnings.append(f"leftover temporary files of an interrupted write: {', '.join(temporary)}; "
                               "the next build or `indexer repair` removes them.")
    staging = idx.path / STAGING_DIR
    staged = sorted(staging.glob("*/shard-*.parquet")) if staging.is_dir() else []
    if staged:
        builds = sorted({p.parent.name for p in staged})
        report.warnings.append(f"{len(staged)} shards of an interrupted distributed build wait in {STAGING_DIR}/ "
                               f"({', '.join(builds)}); the next `indexer build --engine ray` merges them.")
    old = sorted(p.name for p in folder.glob("*.faiss") if p.name not in current)
    if len(old) > 1:
        report.warnings.append(f"{len(old)} superseded FAISS versions kept: {', '.join(old)}")
