"""Distributed builds on Ray (``indexer build --engine ray``): the same index, embedded by a cluster.

The driver (the process that holds the index's writer lock, its single writer) walks the
corpus and hands the file list to one Ray Data pipeline: an actor pool, each actor holding
the model, loaded by the same spec as a local build (:func:`~indexer.embedding.load_embedder`);
one actor per GPU where the cluster has GPUs, else one per CPU. Each actor reads and extracts
its files (:func:`~indexer.reading.read_path`), hashes each document as a local build does
(:func:`~indexer.writer.content_hash`), and chunks and embeds only those whose version the
index does not hold yet (the driver sends the stored versions' keys along). An actor that
dies is restarted and its batch retried by Ray.

The embedded chunks stream back to the driver, which writes them as Parquet shards of whole
documents into ``<index>/staging/<build id>/`` (temporary name, fsync, rename; see
:mod:`store.staging`). Then the driver triages everything read with the local build's own
:meth:`~indexer.writer.Writer.triage`, in the corpus's order (duplicates, unchanged, stored,
skipped: the same decisions and report as a local build), merges the shards' documents
into SQLite as pending writes, and the caller publishes FAISS with the same publish and
checksum rules. A build whose driver died leaves its complete shards; the next build merges
them first, so their documents are not embedded again. The staging folder is removed once
merged.

Files are read by Ray's workers at the path the driver sees, so on a multi-node cluster the
corpus must be on storage every node mounts at that path. The index itself stays on the
driver's local disk. Ray is an optional extra: ``pip install 'babelindex[ray]'``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from indexer.cleaning import path_text
from indexer.embedding import Embedder, load_embedder
from indexer.reading import Document, Skipped, read_path, walk
from indexer.selection import DEFAULT_SELECTION, Selection
from indexer.writer import FLUSH_CHUNKS, BuildReport, Chunker, EmbeddedDocument, Progress, Writer, content_hash
from store.errors import MissingDependency
from store.faults import crash_point
from store.index_dir import IndexDir
from store.records import FieldSettings, IndexSettings, StoredChunk
from store.staging import StagedBuild

MAX_BATCH_FILES = 64
"""Files per actor batch at most (fewer when the corpus is small, so that every actor works)."""
SHARD_CHUNKS = FLUSH_CHUNKS
"""Chunks per staging shard (whole documents, so a shard may hold more)."""
MAX_RESTARTS = 3
"""Times Ray restarts a dead actor, and retries a task whose actor died, before the build fails."""
FORWARDED_ENV = ("BABELINDEX_CRASH_AT", "BABELINDEX_CRASH_ONCE")
"""Environment variables the actors get from the driver when set (fault injection for tests)."""


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


def run(
    idx: IndexDir,
    embedder: Embedder,
    settings: IndexSettings,
    corpus: Path,
    fields: FieldSettings,
    report: BuildReport,
    progress: Progress,
    *,
    model: str | Embedder | None,
    ray_address: str | None = None,
    selection: Selection = DEFAULT_SELECTION,
) -> Writer:
    """Steps 1 to 3 of the module docstring, up to the pending writes; returns the writer,
    whose :meth:`~indexer.writer.Writer.publish` the caller calls.

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
        corpus_root = path_text(str(corpus.resolve()))
        clock = time.perf_counter()

        def step(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            report.steps[name] = round(now - clock, 3)
            clock = now

        _merge_leftovers(idx, embedder, settings)
        step("merge_leftovers")
        writer = Writer(idx, embedder, settings, report, corpus=corpus_root, progress=progress)
        staged = idx.staging().new_build(
            {
                "corpus": corpus_root,
                "fingerprint": embedder.fingerprint(),
                "dimension": embedder.dimension,
                "chunk_tokens": settings.chunk_tokens,
                "overlap_tokens": settings.overlap_tokens,
            }
        )
        items, walk_skips, files = _run_pipeline(
            ray, idx, writer, corpus, fields, staged, embedder, settings, model, report, progress, selection
        )
        step("read_embed")
        keep, missing = _triage(writer, items, walk_skips, len(files) + len(walk_skips), progress)
        _merge(staged, writer, embedder.dimension, keep)
        _embed_here(writer, files, missing, fields)
        writer.finish()
        staged.remove()
        step("merge")
        return writer
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


# -- steps 1 and 2: one Ray Data pipeline ------------------------------------------------------
def _run_pipeline(
    ray: Any,
    idx: IndexDir,
    writer: Writer,
    corpus: Path,
    fields: FieldSettings,
    staged: StagedBuild,
    embedder: Embedder,
    settings: IndexSettings,
    model: str | Embedder | None,
    report: BuildReport,
    progress: Progress,
    selection: Selection,
) -> tuple[list[dict[str, Any]], dict[int, Skipped], list[dict[str, Any]]]:
    """Read, hash, chunk and embed on the cluster; write embedded documents as shards.

    Returns every item read (``key``, ``doc_id``, ``source``, ``reason``: a skip as the JSON
    of :meth:`Skipped.to_json`, ``line``, ``content_hash``; ``embedded`` True for those in the
    shards) and the walk's own skips by
    file number, and the file list, for the driver's triage.
    """
    files: list[dict[str, Any]] = []
    walk_skips: dict[int, Skipped] = {}
    for item in walk(corpus, idx.path, selection):
        if isinstance(item, Skipped):
            walk_skips[len(files) + len(walk_skips)] = item
        else:
            files.append({"file": len(files) + len(walk_skips), "path": str(item[0]), "rel": item[1]})
    items: list[dict[str, Any]] = []
    if not files:
        return items, walk_skips, files
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    actors = max(1, min(gpus or int(resources.get("CPU", 1)), len(files)))
    per_batch = max(1, min(MAX_BATCH_FILES, -(-len(files) // (4 * actors))))
    known = np.unique(np.fromiter((_key64(d, h) for d, h in writer.stored_keys()), dtype=np.uint64))
    spec = embedder.name if model is None or isinstance(model, str) else model
    precision = getattr(embedder, "precision", None)
    precision = precision.get("documents") if isinstance(precision, dict) else None
    fingerprint = embedder.fingerprint()  # the actors load the model with the driver's prompts
    prompts = (fingerprint.get("query_prompt"), fingerprint.get("document_prompt"))
    env = {k: v for k, v in os.environ.items() if k in FORWARDED_ENV}
    dataset = ray.data.from_items(files, override_num_blocks=min(len(files), 4 * actors))
    with warnings.catch_warnings():
        # Ray Data has no named parameter for max_restarts / max_task_retries yet; its
        # defaults (-1) would restart an actor that crashes on every batch forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        embedded = dataset.map_batches(
            ChunkEmbedActor,
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "model": spec,
                "precision": precision,
                "prompts": prompts,
                "device": "cuda" if gpus else "cpu",
                "settings": settings,
                "fields": fields,
                "known": known,
            },
            batch_format="numpy",
            batch_size=per_batch,
            num_cpus=1,
            num_gpus=1 if gpus else 0,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_RESTARTS,
            runtime_env={"env_vars": env} if env else None,
        )
    import pyarrow as pa
    import pyarrow.compute as pc

    pending: dict[int, list[Any]] = {}
    buffer: list[Any] = []
    buffered = 0
    for table in embedded.iter_batches(batch_format="pyarrow", batch_size=None):
        is_info = pa.array(table.column("n_chunks").to_numpy() < 0)
        info = table.filter(is_info)
        items.extend(dict(row, embedded=False) for row in info.select(list(_ITEM_FIELDS)).to_pylist())
        for doc_table in _complete_documents(table.filter(pc.invert(is_info)), pending):
            items.append(dict(doc_table.slice(0, 1).select(list(_ITEM_FIELDS)).to_pylist()[0], embedded=True))
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
    return items, walk_skips, files


def _triage(
    writer: Writer, items: list[dict[str, Any]], walk_skips: dict[int, Skipped], n_files: int, progress: Progress
) -> tuple[set[int], list[int]]:
    """The local build's triage over everything read, in the corpus's order.

    Returns the keys of the embedded documents to merge, and the keys of documents to embed
    that the workers did not (a 64-bit key collision with a stored version: astronomically rare).
    """
    items.sort(key=lambda row: row["key"])
    merge: set[int] = set()
    missing: list[int] = []
    at = 0
    for file_no in range(n_files):
        if file_no in walk_skips:
            writer.skip(walk_skips[file_no])
            progress.document_read()
            continue
        while at < len(items) and items[at]["key"] >> 32 == file_no:
            row = items[at]
            at += 1
            if row["doc_id"] is None:
                writer.skip(Skipped.from_json(json.loads(row["reason"])))  # an actor's skip, as JSON
            elif writer.triage(row["doc_id"], row["source"], row["content_hash"]):
                (merge.add if row["embedded"] else missing.append)(row["key"])
            progress.document_read()
    return merge, missing


def _embed_here(writer: Writer, files: list[dict[str, Any]], keys: list[int], fields: FieldSettings) -> None:
    """Embed on the driver the documents ``keys`` the workers skipped (see :func:`_triage`)."""
    by_file: dict[int, set[int]] = {}
    for key in keys:
        by_file.setdefault(key >> 32, set()).add(key & 0xFFFFFFFF)
    paths = {f["file"]: f for f in files}
    for file_no, wanted in by_file.items():
        f = paths[file_no]
        for item_no, item in enumerate(read_path(Path(f["path"]), f["rel"], fields)):
            if item_no in wanted and isinstance(item, Document):
                writer.embed_and_write(item, content_hash(item, writer.settings))


def _key64(doc_id: str, digest: str) -> int:
    """A 64-bit key of a document version (``doc_id``, content hash), for the workers' skip list."""
    return int.from_bytes(hashlib.blake2b(f"{doc_id}\0{digest}".encode(), digest_size=8).digest(), "little")


class ChunkEmbedActor:
    """A Ray Data actor holding the model: reads files, hashes their documents, chunks and
    embeds those whose version is not stored yet (``known``: sorted uint64 :func:`_key64`).

    Yields pyarrow tables, one row per chunk, with the columns of a staging shard plus
    ``key``, ``reason`` and ``line`` (see :mod:`store.staging`); every other item read (a
    stored version, a skipped file or record) gives one row with ``n_chunks`` -1 and no
    vector, so that the driver sees the whole corpus.
    """

    def __init__(
        self,
        model: str | Embedder,
        precision: str | None,
        device: str,
        settings: IndexSettings,
        fields: FieldSettings,
        known: np.ndarray,
        prompts: tuple[str | None, str | None] = (None, None),
    ):
        self.embedder = _load_model(model, precision, device, prompts)
        self.settings, self.fields, self.known = settings, fields, known
        self.chunker = Chunker(self.embedder, settings)

    def _is_known(self, doc_id: str, digest: str) -> bool:
        key = np.uint64(_key64(doc_id, digest))
        at = int(np.searchsorted(self.known, key))
        return at < len(self.known) and self.known[at] == key

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[Any]:
        crash_point("ray-embed")
        rows = _Rows()
        todo: list[tuple[int, Document, str, list[StoredChunk]]] = []
        queued = 0
        for file_no, path, rel in zip(batch["file"], batch["path"], batch["rel"], strict=True):
            for item_no, item in enumerate(read_path(Path(str(path)), str(rel), self.fields)):
                key = (int(file_no) << 32) | item_no
                if isinstance(item, Skipped):
                    rows.info(key, None, item.source, json.dumps(item.to_json()), item.line, None)
                    continue
                digest = content_hash(item, self.settings)
                if self._is_known(item.doc_id, digest):
                    rows.info(key, item.doc_id, item.source, None, None, digest)
                    continue
                chunks = self.chunker(item)
                todo.append((key, item, digest, chunks))
                queued += len(chunks)
                if queued >= FLUSH_CHUNKS:
                    self._embed(todo, rows)
                    yield rows.table()
                    rows, todo, queued = _Rows(), [], 0
        self._embed(todo, rows)
        if len(rows):
            yield rows.table()

    def _embed(self, todo: list[tuple[int, Document, str, list[StoredChunk]]], rows: _Rows) -> None:
        texts = [c.text for _, _, _, chunks in todo for c in chunks]
        vectors = self.embedder.embed_documents(texts) if texts else np.empty((0, self.embedder.dimension))
        at = 0
        for key, doc, digest, chunks in todo:
            rows.document(key, doc, digest, chunks, vectors[at : at + len(chunks)])
            at += len(chunks)


_ITEM_FIELDS = ("key", "doc_id", "source", "reason", "line", "content_hash")
_INT_FIELDS = ("key", "line", "n_chars", "n_chunks", "ord", "start", "end", "n_tokens")
_STR_FIELDS = ("doc_id", "source", "reason", "content_hash", "metadata", "text", "lang")


class _Rows:
    """Columns of an actor's output table, filled row by row."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in (*_INT_FIELDS, *_STR_FIELDS)}
        self.vectors: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.cols["key"])

    def _row(self, **values: Any) -> None:
        for name, column in self.cols.items():
            column.append(values.get(name))

    def info(
        self, key: int, doc_id: str | None, source: str, reason: str | None, line: int | None, digest: str | None
    ) -> None:
        self._row(key=key, doc_id=doc_id, source=source, reason=reason, line=line, content_hash=digest, n_chunks=-1)
        self.vectors.append(np.empty(0, dtype=np.float32))

    def document(self, key: int, doc: Document, digest: str, chunks: list[StoredChunk], vectors: np.ndarray) -> None:
        doc_fields = {
            "key": key,
            "doc_id": doc.doc_id,
            "source": doc.source,
            "content_hash": digest,
            "metadata": json.dumps(doc.metadata, ensure_ascii=False, default=str),
            "n_chars": len(doc.text),
            "n_chunks": len(chunks),
        }
        if not chunks:  # a placeholder row: the document gave no chunk
            self._row(**doc_fields, ord=-1)
            self.vectors.append(np.empty(0, dtype=np.float32))
        for ord_, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
            self._row(
                **doc_fields,
                ord=ord_,
                text=chunk.text,
                start=chunk.start,
                end=chunk.end,
                n_tokens=chunk.n_tokens,
                lang=chunk.lang,
            )
            self.vectors.append(np.asarray(vector, dtype=np.float32))

    def table(self) -> Any:
        import pyarrow as pa

        arrays = {name: pa.array(self.cols[name], pa.int64()) for name in _INT_FIELDS}
        arrays.update(
            {
                name: pa.array(self.cols[name], pa.large_string() if name == "text" else pa.string())
                for name in _STR_FIELDS
            }
        )
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in self.vectors])]).astype(np.int32)
        values = np.concatenate(self.vectors) if self.vectors else np.empty(0, dtype=np.float32)
        arrays["vector"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()))
        return pa.table(arrays)


def _load_model(
    model: str | Embedder, precision: str | None, device: str, prompts: tuple[str | None, str | None] = (None, None)
) -> Embedder:
    """The model in an actor: loaded by name as a local build loads it (with the driver's
    ``(query, document)`` prompts), or the given object."""
    if not isinstance(model, str):
        return model
    query_prompt, document_prompt = prompts
    if device != "cpu":
        from indexer.embedding import USE_MULTILINGUAL, resolve
        from indexer.embedding.transformer import TransformerEmbedder

        if model != USE_MULTILINGUAL:
            return TransformerEmbedder(
                model,
                device,
                precision="fp32",
                source=resolve(model),
                query_prompt=query_prompt,
                document_prompt=document_prompt,
            )
    return load_embedder(model, precision=precision, query_prompt=query_prompt, document_prompt=document_prompt)


def _complete_documents(table: Any, pending: dict[int, list[Any]]) -> Iterator[Any]:
    """Split a result block into one table per document; documents split across blocks
    wait in ``pending`` (by key) until all their chunk rows have arrived."""
    import pyarrow as pa

    keys = table.column("key").to_numpy()
    if not len(keys):
        return
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
def _merge(staged: StagedBuild, writer: Writer, dimension: int, keys: set[int] | None = None) -> None:
    """Write the shards' documents (those with ``keys``, default all) into SQLite, pending,
    as a local build writes them."""
    for path in staged.shards():
        docs = _shard_documents(staged.read_shard(path), dimension)
        writer.write_embedded([doc for key, doc in docs if keys is None or key in keys])


def _shard_documents(table: Any, dimension: int) -> Iterator[tuple[int, EmbeddedDocument]]:
    """``(key, document without its text, with chunks and vectors)`` of a shard, in order."""
    vectors = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = vectors.astype(np.float32, copy=False).reshape(-1, dimension)
    cols = table.drop_columns(["vector"]).to_pydict()
    n = len(cols["key"])
    lo = at = 0
    while lo < n:
        count = max(1, cols["n_chunks"][lo])
        hi = lo + count
        doc = Document(cols["doc_id"][lo], cols["source"][lo], "", json.loads(cols["metadata"][lo]))
        chunks = (
            []
            if cols["n_chunks"][lo] == 0
            else [
                StoredChunk(
                    cols["text"][i],
                    cols["start"][i],
                    cols["end"][i],
                    cols["n_tokens"][i],
                    cols["lang"][i],
                    vectors[at + i - lo],
                )
                for i in range(lo, hi)
            ]
        )
        at += len(chunks)
        yield cols["key"][lo], EmbeddedDocument(doc, cols["content_hash"][lo], cols["n_chars"][lo], chunks)
        lo = hi


def _merge_leftovers(idx: IndexDir, embedder: Embedder, settings: IndexSettings) -> None:
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
            _merge(staged, Writer(idx, embedder, settings, scratch, corpus=info.get("corpus")), embedder.dimension)
        staged.remove()
