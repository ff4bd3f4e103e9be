"""Distributed builds on Ray (``indexer build --engine ray``): the same index, embedded by a cluster.

The build runs in three steps, the first and last on the driver (the process that holds the
index's writer lock and is its single writer):

1. **Read** (Ray Data tasks): the driver walks the corpus and hands the file list to Ray,
   whose tasks read and extract the files (:func:`~indexer.reading.read_path`) and hash each
   document as a local build does (:func:`~indexer.build.content_hash`). The result stays in
   the object store; only ids and hashes come back to the driver, which decides, with the
   local build's own :meth:`~indexer.build._Writer.triage`, which documents are new or changed.
2. **Chunk and embed** (a Ray Data actor pool): only those documents go on to the actors,
   each holding the model, loaded by the same spec as a local build
   (:func:`~indexer.embedding.load_embedder`); one actor per GPU where the cluster has GPUs,
   else one per CPU. An actor that dies is restarted and its batch retried by Ray.
3. **Stage and merge** (driver): the embedded chunks stream back to the driver, which writes
   them as Parquet shards of whole documents into ``<index>/staging/<build id>/`` (temporary
   name, fsync, rename; see :mod:`store.staging`), then merges the shards into SQLite and
   publishes FAISS with the same pending-write, publish and checksum rules as a local build.
   A build whose driver died leaves its complete shards; the next build merges them first,
   so their documents are not embedded again. The staging folder is removed once merged.

Files are read by Ray's workers at the path the driver sees, so on a multi-node cluster the
corpus must be on storage every node mounts at that path. The index itself stays on the
driver's local disk. Ray is an optional extra: ``pip install 'babelindex[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from indexer.build import FLUSH_CHUNKS, BuildReport, Progress, _Writer, chunk_quietly, content_hash
from indexer.embedding import Embedder, load_embedder
from indexer.reading import Document, RecordFields, Skipped, read_path, walk
from store import IndexDir, MissingDependency, StoredChunk
from store.faults import crash_point
from store.staging import StagedBuild

FILES_PER_BLOCK = 256
"""Files read by one read task (at least 4 tasks per CPU when there are enough files)."""
MAX_BATCH_ROWS = 256
"""Documents per actor batch at most (fewer when the corpus is small, so that every actor works)."""
SHARD_CHUNKS = FLUSH_CHUNKS
"""Chunks per staging shard (whole documents, so a shard may hold more)."""
MAX_RESTARTS = 3
"""Times Ray restarts a dead actor, and retries a task whose actor died, before the build fails."""
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
"""Environment variables the actors get from the driver (with every ``BABELINDEX_*`` one)."""

_READ_COLUMNS = ("key", "doc_id", "source", "reason", "line", "content_hash", "n_chars")
"""Phase-1 columns the driver needs (everything but the text and metadata)."""


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`MissingDependency` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependency(
            "--engine ray needs Ray with Ray Data, which is not installed: pip install 'babelindex[ray]' "
            "(or pip install 'ray[data]'); or build with --engine local."
        ) from exc
    return ray


def run(idx: IndexDir, embedder: Embedder, settings: dict[str, Any], corpus: Path, fields: RecordFields,
        report: BuildReport, progress: Progress, *, model: str | Embedder | None,
        ray_address: str | None = None) -> None:
    """Steps 1 to 3 of the module docstring, up to the pending writes (the caller publishes).

    ``model`` is what the actors load: a name or directory (each actor loads it, with the
    precision the driver's ``embedder`` runs at), or a loaded :class:`Embedder`, which is sent
    to the actors as it is (it must survive Ray's serialisation; fine for light models).
    ``ray_address`` is that of a running cluster (``ray://host:10001``, ``host:6379``,
    ``auto``); None uses the Ray this process is connected to, else starts a local one.
    """
    ray = require_ray()
    started_here = _connect(ray, ray_address)
    # No "execution finished" lines (the build reports), nor "progress bars disabled".
    quieter = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
    levels = {name: logging.getLogger(name).level for name in quieter}
    for name, level in quieter.items():
        logging.getLogger(name).setLevel(level)
    try:
        corpus_root = str(corpus.resolve())
        _merge_leftovers(idx, embedder, settings)
        writer = _Writer(idx, embedder, settings, corpus_root, report, progress)
        read, wanted = _read_and_triage(ray, idx, writer, corpus, fields, settings, progress)
        staged = idx.staging().new_build({
            "corpus": corpus_root, "fingerprint": embedder.fingerprint(), "dimension": embedder.dimension,
            "chunk_tokens": settings["chunk_tokens"], "overlap_tokens": settings["overlap_tokens"],
        })
        if len(wanted):
            _embed_to_shards(ray, read, wanted, staged, embedder, settings, model, report, progress)
        _merge(staged, writer)
        writer.finish()
        staged.remove()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if started_here:
            ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to Ray unless this process already is; True if this call started the connection."""
    ctx = ray.data.DataContext.get_current()  # babelindex shows its own progress
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    return True


# -- step 1: read, hash, triage ---------------------------------------------------------------
def _read_and_triage(ray: Any, idx: IndexDir, writer: _Writer, corpus: Path, fields: RecordFields,
                     settings: dict[str, Any], progress: Progress) -> tuple[Any, np.ndarray]:
    """Read and hash the corpus on the cluster; triage on the driver in the corpus's order.

    Returns the materialised read dataset (one row per document or skipped item, text in
    the object store) and the sorted int64 keys of the rows to embed.
    """
    files: list[dict[str, Any]] = []
    walk_skips: dict[int, Skipped] = {}
    for item in walk(corpus, idx.path):
        if isinstance(item, Skipped):
            walk_skips[len(files) + len(walk_skips)] = item
        else:
            files.append({"file": len(files) + len(walk_skips), "path": str(item[0]), "rel": item[1]})
    read = None
    table = None
    if files:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        blocks = min(len(files), max(4 * cpus, -(-len(files) // FILES_PER_BLOCK)))
        read = ray.data.from_items(files, override_num_blocks=blocks).map_batches(
            _read_files, batch_format="numpy", batch_size=None,
            fn_kwargs={"fields": (fields.text_field, fields.id_field), "chunking": (
                settings["chunk_tokens"], settings["overlap_tokens"])},
        ).materialize()
        import pyarrow as pa

        parts = list(read.select_columns(list(_READ_COLUMNS)).iter_batches(batch_format="pyarrow", batch_size=None))
        table = pa.concat_tables(parts).sort_by("key") if parts else None
    rows = table.to_pylist() if table is not None else []
    wanted: list[int] = []
    at = 0
    n_files = len(files) + len(walk_skips)
    for file_no in range(n_files):
        if file_no in walk_skips:
            writer.skip(walk_skips[file_no])
            progress.document_read()
            continue
        while at < len(rows) and rows[at]["key"] >> 32 == file_no:
            row = rows[at]
            at += 1
            if row["doc_id"] is None:
                writer.skip(Skipped(row["source"], row["reason"], row["line"]))
            elif writer.triage(row["doc_id"], row["source"], row["content_hash"]):
                wanted.append(row["key"])
            progress.document_read()
    return read, np.asarray(sorted(wanted), dtype=np.int64)


def _read_files(batch: dict[str, np.ndarray], fields: tuple[str, str | None], chunking: tuple[int, int]) -> Any:
    """Ray task: read files, one output row per document or skipped item (pyarrow.Table).

    ``key`` is ``file number << 32 | item number`` (corpus order).
    """
    import pyarrow as pa

    cols: dict[str, list[Any]] = {name: [] for name in (*_READ_COLUMNS, "text", "metadata")}
    record_fields = RecordFields(*fields)
    for file_no, path, rel in zip(batch["file"], batch["path"], batch["rel"], strict=True):
        for item_no, item in enumerate(read_path(Path(str(path)), str(rel), record_fields)):
            doc = item if isinstance(item, Document) else None
            skip = item if isinstance(item, Skipped) else None
            cols["key"].append((int(file_no) << 32) | item_no)
            cols["doc_id"].append(doc.doc_id if doc else None)
            cols["source"].append(doc.source if doc else skip.source)
            cols["reason"].append(skip.reason if skip else None)
            cols["line"].append(skip.line if skip else None)
            cols["content_hash"].append(content_hash(doc, *chunking) if doc else None)
            cols["n_chars"].append(len(doc.text) if doc else None)
            cols["text"].append(doc.text if doc else None)
            cols["metadata"].append(json.dumps(doc.metadata, ensure_ascii=False, default=str) if doc else None)
    return pa.table({
        "key": pa.array(cols["key"], pa.int64()), "doc_id": pa.array(cols["doc_id"], pa.string()),
        "source": pa.array(cols["source"], pa.string()), "reason": pa.array(cols["reason"], pa.string()),
        "line": pa.array(cols["line"], pa.int64()), "content_hash": pa.array(cols["content_hash"], pa.string()),
        "n_chars": pa.array(cols["n_chars"], pa.int64()), "text": pa.array(cols["text"], pa.large_string()),
        "metadata": pa.array(cols["metadata"], pa.string()),
    })


# -- step 2: chunk and embed on an actor pool -------------------------------------------------
class ChunkEmbedActor:
    """A Ray Data actor holding the model: chunks the wanted documents of a batch and embeds them.

    Output (pyarrow.Table), one row per chunk, the columns of a staging shard plus ``key``
    (see :mod:`store.staging`); a document without chunks gives one row with ``n_chunks`` 0.
    """

    def __init__(self, model: str | Embedder, precision: str | None, device: str, settings: dict[str, Any],
                 wanted: np.ndarray):
        from threadpoolctl import ThreadpoolController

        self.embedder = _load_model(model, precision, device)
        self.settings, self.wanted = settings, wanted
        self.blas = ThreadpoolController()

    def __call__(self, batch: Any) -> Any:
        crash_point("ray-embed")
        keys = batch.column("key").to_numpy()
        picked = np.flatnonzero(np.isin(keys, self.wanted))
        rows = batch.take(picked).to_pylist() if len(picked) else []
        docs, chunk_lists = [], []
        for row in rows:
            doc = Document(row["doc_id"], row["source"], row["text"], json.loads(row["metadata"]))
            docs.append(row)
            chunk_lists.append(chunk_quietly(self.blas, doc, self.embedder, self.settings))
        texts = [c.text for chunks in chunk_lists for c in chunks]
        dim = self.embedder.dimension
        vectors = np.empty((0, dim), dtype=np.float32)
        if texts:
            vectors = np.concatenate([self.embedder.embed_documents(texts[lo : lo + FLUSH_CHUNKS])
                                      for lo in range(0, len(texts), FLUSH_CHUNKS)])
        out: dict[str, list[Any]] = {name: [] for name in _SHARD_FIELDS}
        vec_rows = []
        at = 0
        for row, chunks in zip(docs, chunk_lists, strict=True):
            for ord_, chunk in enumerate(chunks or [None]):
                _append_chunk(out, row, len(chunks), ord_ if chunk else -1, chunk)
                vec_rows.append(vectors[at] if chunk else np.full(dim, np.nan, dtype=np.float32))
                at += 1 if chunk else 0
        return _shard_table(out, np.asarray(vec_rows, dtype=np.float32).reshape(-1, dim), dim)


_SHARD_FIELDS = ("key", "doc_id", "source", "content_hash", "metadata", "n_chars", "n_chunks", "ord", "text",
                 "start", "end", "n_tokens", "lang")


def _append_chunk(out: dict[str, list[Any]], row: dict[str, Any], n_chunks: int, ord_: int,
                  chunk: StoredChunk | None) -> None:
    for name in ("key", "doc_id", "source", "content_hash", "metadata", "n_chars"):
        out[name].append(row[name])
    out["n_chunks"].append(n_chunks)
    out["ord"].append(ord_)
    out["text"].append(chunk.text if chunk else "")
    out["start"].append(chunk.start if chunk else 0)
    out["end"].append(chunk.end if chunk else 0)
    out["n_tokens"].append(chunk.n_tokens if chunk else 0)
    out["lang"].append(chunk.lang if chunk else None)


def _shard_table(cols: dict[str, list[Any]], vectors: np.ndarray, dim: int) -> Any:
    """The staging-shard table: ``cols`` (lists, :data:`_SHARD_FIELDS`) and float32 ``vectors (n, dim)``."""
    import pyarrow as pa

    types = {"key": pa.int64(), "n_chars": pa.int64(), "n_chunks": pa.int64(), "ord": pa.int64(),
             "start": pa.int64(), "end": pa.int64(), "n_tokens": pa.int64(), "text": pa.large_string()}
    arrays = {name: pa.array(cols[name], types.get(name, pa.string())) for name in _SHARD_FIELDS}
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    arrays["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.table(arrays)


def _load_model(model: str | Embedder, precision: str | None, device: str) -> Embedder:
    """The model in an actor: loaded by name as a local build loads it, or the given object."""
    if not isinstance(model, str):
        return model
    if device != "cpu":
        from indexer.embedding import USE_MULTILINGUAL, resolve
        from indexer.embedding.transformer import TransformerEmbedder

        if model != USE_MULTILINGUAL:
            return TransformerEmbedder(model, device, precision="fp32", source=resolve(model))
    return load_embedder(model, precision=precision)


def _embed_to_shards(ray: Any, read: Any, wanted: np.ndarray, staged: StagedBuild, embedder: Embedder,
                     settings: dict[str, Any], model: str | Embedder | None, report: BuildReport,
                     progress: Progress) -> None:
    """Run the actor pool over the wanted rows; write what comes back as shards of whole documents."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    actors = gpus or cpus
    batch_rows = max(1, min(MAX_BATCH_ROWS, -(-read.count() // (4 * actors))))
    spec = embedder.name if model is None or isinstance(model, str) else model
    precision = getattr(embedder, "precision", None)
    precision = precision.get("documents") if isinstance(precision, dict) else None
    env = {k: v for k, v in os.environ.items() if k.startswith("BABELINDEX_") or k in FORWARDED_ENV}
    with warnings.catch_warnings():
        # Ray Data has no named parameter for max_restarts / max_task_retries yet; its
        # defaults (-1) would restart an actor that crashes on every batch forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        embedded = _actor_stage(ray, read, batch_rows, actors, gpus, wanted, spec, precision, settings, env)
    pending: dict[int, list[Any]] = {}


    buffer: list[Any] = []
    buffered = 0
    for table in _stream(embedded):
        for doc_table in _complete_documents(table, pending):
            n = int(doc_table.column("n_chunks")[0].as_py())
            report.chunks_embedded += n
            progress.chunks_embedded(n)
            buffer.append(doc_table)
            buffered += len(doc_table)
            if buffered >= SHARD_CHUNKS:
                _write(staged, buffer)
                buffer, buffered = [], 0
    if buffer:
        _write(staged, buffer)


def _actor_stage(ray: Any, read: Any, batch_rows: int, actors: int, gpus: int, wanted: np.ndarray,
                 spec: str | Embedder, precision: str | None, settings: dict[str, Any], env: dict[str, str]) -> Any:
    return read.map_batches(
        ChunkEmbedActor,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(wanted)))),
        fn_constructor_kwargs={"model": spec, "precision": precision, "device": "cuda" if gpus else "cpu",
                               "settings": dict(settings), "wanted": wanted},
        batch_format="pyarrow",
        batch_size=batch_rows,
        num_cpus=1, num_gpus=1 if gpus else 0,
        max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS,
        runtime_env={"env_vars": env} if env else None,
    )


def _stream(dataset: Any) -> Iterator[Any]:
    """The dataset's blocks as pyarrow tables, as they are computed."""
    for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        if len(table):
            yield table


def _complete_documents(table: Any, pending: dict[int, list[Any]]) -> Iterator[Any]:
    """Split a result block into one table per document; documents split across blocks
    wait in ``pending`` (by key) until all their chunk rows have arrived."""
    import pyarrow as pa

    keys = table.column("key").to_numpy()
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(keys)], strict=True):
        key = int(keys[lo])
        part = table.slice(lo, hi - lo)
        parts = [*pending.pop(key, []), part]
        rows = sum(len(p) for p in parts)
        if rows >= max(1, int(part.column("n_chunks")[0].as_py())):
            yield pa.concat_tables(parts) if len(parts) > 1 else part
        else:
            pending[key] = parts


def _write(staged: StagedBuild, tables: list[Any]) -> None:
    import pyarrow as pa

    staged.write_shard(pa.concat_tables(tables).combine_chunks())


# -- step 3: merge ----------------------------------------------------------------------------
def _merge(staged: StagedBuild, writer: _Writer) -> None:
    """Write every shard of ``staged`` into SQLite (pending, as a local build writes)."""
    for path in staged.shards():
        writer.write_embedded(list(_shard_documents(staged.read_shard(path), writer.embedder.dimension)))


def _shard_documents(table: Any, dimension: int) -> Iterator[tuple[Document, str, int, list[StoredChunk]]]:
    """``(document without text, content hash, n_chars, chunks with vectors)`` of a shard, in order."""
    vectors = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = vectors.astype(np.float32, copy=False).reshape(-1, dimension)
    cols = table.drop_columns(["vector"]).to_pydict()
    n = len(vectors)
    lo = 0
    while lo < n:
        count = max(1, cols["n_chunks"][lo])
        hi = lo + count
        doc = Document(cols["doc_id"][lo], cols["source"][lo], "", json.loads(cols["metadata"][lo]))
        chunks = [] if cols["n_chunks"][lo] == 0 else [
            StoredChunk(cols["text"][i], cols["start"][i], cols["end"][i], cols["n_tokens"][i], cols["lang"][i],
                        vectors[i])
            for i in range(lo, hi)
        ]
        yield doc, cols["content_hash"][lo], cols["n_chars"][lo], chunks
        lo = hi


def _merge_leftovers(idx: IndexDir, embedder: Embedder, settings: dict[str, Any]) -> None:
    """Merge the complete shards of builds whose driver died, then remove them.

    Their documents become pending rows, as an interrupted local build leaves them, so the
    build that follows counts them without embedding them again. Shards made with another
    model are dropped.
    """
    fingerprint = json.loads(json.dumps(embedder.fingerprint()))
    for staged in idx.staging().leftovers():
        info = staged.info
        if info.get("fingerprint") == fingerprint and info.get("dimension") == embedder.dimension:
            scratch = BuildReport(index=str(idx.path), model=embedder.name)
            _merge(staged, _Writer(idx, embedder, settings, info.get("corpus"), scratch, Progress()))
        staged.remove()
