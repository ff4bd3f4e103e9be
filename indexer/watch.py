"""``indexer watch``: a long-running ingestion worker that keeps an index in step with a folder.

The worker

1. starts watching the folder: filesystem events through watchfiles' ``RustNotify`` (the
   Rust ``notify`` crate: inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on
   Windows), or polling (a comparison of every file's size, mtime and inode with what was
   read, at an interval) on network filesystems, where other machines' changes raise no
   event, on request, or when events are unavailable (the inotify watch limit reached);
2. then builds or resumes the index with :func:`~indexer.build.build_index` (its triage by
   content hash embeds only what is new or changed, so a restart after a crash, even a
   SIGKILL, converges on the folder's contents);
3. then applies each batch of changes: the events of one burst (a save, a ``git checkout``)
   are gathered until ``step_ms`` pass without a new one, or at most ``debounce_ms``; the
   changed files are read with the build's rules (:mod:`indexer.selection`: hidden,
   temporary and ``--exclude``\\ d files are not part of the corpus) and handed to the
   ingestion engine (:class:`~indexer.writer.Writer`) with a :class:`~indexer.writer.Scope`
   of what was looked at, so that documents of deleted files, and records gone from a
   changed record file, are removed; a renamed file's unchanged text takes its old vectors
   instead of being embedded again. Each batch is one publish. Events arriving meanwhile
   are collected by the watcher's thread and make the next batch.

A file that cannot be read is reported (with the build's reason) and read again when it
changes. The writer lock is taken per batch, so ``indexer build`` or a server's upserts can
write the same index in between; a batch that cannot get the lock, or fails (a full disk),
is kept and tried again. A stat-based rescan of the whole folder (every ``rescan_seconds``,
and whenever the watcher reports lost events or an error) catches what events missed
(an overflowing kernel queue, a file name that is not UTF-8).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from watchfiles._rust_notify import RustNotify

from indexer.build import build_index
from indexer.cleaning import path_text
from indexer.embedding import DEFAULT_MODEL, Embedder, load_embedder, prompts_for, to_embedder
from indexer.progress import Progress
from indexer.reading import RecordFields, Skipped, describe_error, link_problem, read_path, walk
from indexer.selection import Selection
from indexer.writer import BuildReport, Scope, Writer, open_model
from store.errors import BabelIndexError, IndexLocked, IndexNotFound, InvalidInput, ModelMismatch
from store.filesystem import NETWORK_FILESYSTEMS, filesystem_type
from store.index_dir import IndexDir
from store.worker_status import WorkerStatus, write_worker_status

__all__ = ["BatchReport", "Notice", "WatchOptions", "Watcher"]

FileStat = tuple[int, int, int]
"""``(size in bytes, mtime in ns, inode)`` of a file as last read."""


def _file_stat(path: Path) -> FileStat | None:
    """The :data:`FileStat` of ``path``, None if it cannot be stat'ed (gone meanwhile)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class WatchOptions:
    """How the worker watches. Times in milliseconds or seconds as named.

    ``step_ms``: quiet time that ends a batch of events; ``debounce_ms``: the longest a
    batch gathers events; ``poll_seconds``: poll the folder at this interval instead of
    using events (None: events, except on network filesystems, polled every
    :data:`NETWORK_POLL_SECONDS`); ``rescan_seconds``: interval of the stat rescan that
    catches missed events (0: never); ``lock_wait``: seconds a batch waits for another
    writer before it is put off; ``retry_seconds``: how soon a put-off batch is tried again.
    """

    step_ms: int = 200
    debounce_ms: int = 2000
    poll_seconds: float | None = None
    rescan_seconds: float = 600.0
    lock_wait: float = 10.0
    retry_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.step_ms < 1 or self.debounce_ms < self.step_ms:
            raise InvalidInput("--step-ms must be at least 1 and --debounce-ms at least --step-ms.")
        if self.poll_seconds is not None and self.poll_seconds <= 0:
            raise InvalidInput("--poll must be a positive number of seconds.")
        if self.rescan_seconds < 0:
            raise InvalidInput("--rescan must be 0 (never) or a positive number of seconds.")


NETWORK_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class BatchReport:
    """One applied batch: files read, documents by outcome, chunks, seconds (wall clock) and
    the FAISS version published (None if nothing changed). ``initial``: the pass over the
    whole folder at start. ``problems``: ``(source, reason)`` of files or records skipped."""

    time: str
    initial: bool
    files: int
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    chunks_embedded: int
    chunks_reused: int
    seconds: float
    version: int | None
    problems: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, report: BuildReport, *, files: int, initial: bool, version: int | None) -> BatchReport:
        return cls(
            time=_now(),
            initial=initial,
            files=files,
            added=report.documents_added,
            updated=report.documents_updated,
            removed=report.documents_removed,
            unchanged=report.documents_unchanged,
            skipped=report.documents_skipped,
            chunks_embedded=report.chunks_embedded,
            chunks_reused=report.chunks_reused,
            seconds=report.seconds,
            version=version,
            problems=tuple((s["source"], s["reason"]) for s in report.skipped),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event"] = "batch"
        data["problems"] = [{"source": s, "reason": r} for s, r in self.problems]
        return data

    def line(self) -> str:
        """One human-readable log line."""
        what = "initial pass" if self.initial else "batch"
        published = f"version {self.version} published" if self.version is not None else "nothing to publish"
        return (
            f"{self.time} {what}: {self.files} files, {self.added} added, {self.updated} updated, "
            f"{self.removed} removed, {self.skipped} skipped; {self.chunks_embedded} chunks embedded, "
            f"{self.chunks_reused} reused; {self.seconds:.2f} s; {published}"
        )


@dataclass(frozen=True)
class Notice:
    """Something the worker says: ``level`` ``info``, ``warning`` or ``error``; ``source`` the
    file concerned, if any."""

    level: str
    message: str
    source: str | None = None
    time: str = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return {"event": "notice", **asdict(self)}

    def line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{self.time} {self.level}: {where}{self.message}"


Event = BatchReport | Notice


class Stopped(BaseException):
    """Raised through the initial pass when the worker is asked to stop (a BaseException, so
    that no per-file error handling takes it for a bad file)."""


class _StoppableProgress(Progress):
    """Passes progress on, and stops the initial pass between two documents or batches."""

    def __init__(self, inner: Progress | None, stop: threading.Event):
        self.inner, self.stop = inner or Progress(), stop

    def document_read(self) -> None:
        self.inner.document_read()
        if self.stop.is_set():
            raise Stopped

    def chunks_embedded(self, n: int) -> None:
        self.inner.chunks_embedded(n)
        if self.stop.is_set():
            raise Stopped

    def close(self) -> None:
        self.inner.close()


class _Poller:
    """Stands in for ``RustNotify`` where the folder is polled: each :meth:`watch` waits one
    interval and answers ``"poll"`` (the caller compares the folder's files with what it
    read: sizes, mtimes in ns and inodes, by the corpus rules, so hidden folders such as
    ``.git`` are never walked), or ``"stop"``. (notify's own poll watcher compares
    modification times at a coarser grain and misses a change made within the second.)"""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def watch(self, debounce_ms: int, step_ms: int, timeout_ms: int, stop_event: threading.Event) -> str:
        return "stop" if stop_event.wait(self.seconds) else "poll"

    def close(self) -> None:
        pass


class Watcher:
    """Keeps the index ``index`` in step with the folder (or file) ``corpus``; see the module doc.

    ``model``, its ``query_prompt`` / ``document_prompt`` and the chunking and index settings
    are those of :func:`indexer.build.build_index` (default: as the index records them). ``on_event`` receives every :class:`BatchReport`
    and :class:`Notice`; ``on_publish`` is called after each publish (a server refreshes its
    searcher there). ``progress`` shows the initial pass.
    """

    def __init__(
        self,
        corpus: str | Path,
        index: str | Path,
        *,
        model: str | Embedder | None = None,
        precision: str | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        index_type: str | None = None,
        fields: RecordFields | None = None,
        exclude: tuple[str, ...] = (),
        options: WatchOptions | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_publish: Callable[[], object] | None = None,
        progress: Progress | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ):
        self.corpus = Path(corpus).resolve()
        if not self.corpus.exists():
            raise InvalidInput(f"the corpus {corpus} does not exist; give a folder or a file to watch.")
        self.index = Path(index).resolve()
        self.model, self.precision = model, precision
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.chunk_tokens, self.overlap_tokens, self.index_type = chunk_tokens, overlap_tokens, index_type
        self.fields, self.exclude, self.selection = fields or RecordFields(), exclude, Selection.of(exclude)
        self.options = options or WatchOptions()
        self.on_event, self.on_publish = on_event, on_publish
        self.progress = progress
        self.corpus_text = path_text(str(self.corpus))
        self.embedder: Embedder | None = None
        self.known: dict[str, FileStat] = {}
        """Every file of the corpus as last read: ``{path relative to the root: stat}``."""
        self.dirty: set[str] = set()
        """Paths (relative to the root) changed since the last applied batch."""
        self.where: dict[str, Path] = {}
        """The filesystem path of each relative path seen, where the two differ in more than
        the root (a name that is not UTF-8 is stored as ``\\xNN``: see :func:`path_text`)."""
        self.stop_event = threading.Event()
        self.mode = "events"
        self.status = WorkerStatus(
            pid=os.getpid(), host=socket.gethostname(), corpus=self.corpus_text, started_at=_now()
        )
        self.publishes = 0
        self._notify: RustNotify | _Poller | None = None

    # -- the loop ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to finish the batch it is applying, publish it and return from :meth:`run`."""
        self.stop_event.set()

    def run(self) -> None:
        """:meth:`start`, then :meth:`loop` until :meth:`stop` (or a signal handler that calls it).

        Raises only for what no retry can fix: a missing corpus, a model that cannot be loaded
        or does not match the index, bad settings.
        """
        self.start()
        self.loop()

    def start(self) -> None:
        """Start watching, load the model, and build or resume the index from the whole folder.

        Changes made meanwhile are collected, and applied by :meth:`loop`.
        """
        self._set(state="starting")
        self._notify = self._open_notify()
        try:
            self._load_model()
            self._initial_pass()
        except BaseException:
            self._close()
            raise

    def loop(self) -> None:
        """Apply batches of changes until :meth:`stop`; the batch being applied is finished and published."""
        if self._notify is None:
            raise InvalidInput("call Watcher.start() before Watcher.loop()")
        try:
            next_rescan = self._next_rescan()
            retry_at: float | None = None
            while not self.stop_event.is_set():
                timeout = self._timeout(next_rescan, retry_at)
                try:
                    raw = self._notify.watch(self.options.debounce_ms, self.options.step_ms, timeout, self.stop_event)
                except Exception as exc:  # the watcher lost events or failed: rescan, watch anew
                    self._say("warning", f"the file watcher failed ({describe_error(exc)}); rescanning the folder")
                    self._notify.close()
                    self._notify = self._open_notify()
                    self.dirty |= self._rescan()
                    raw = set()
                if raw in ("stop", "signal"):
                    break
                if raw == "poll":
                    self.dirty |= self._rescan()
                now = time.monotonic()
                if isinstance(raw, set):
                    self.dirty |= self._paths_of(raw)
                if next_rescan is not None and now >= next_rescan:
                    self.dirty |= self._rescan()
                    next_rescan = self._next_rescan()
                if self.dirty and (retry_at is None or now >= retry_at or isinstance(raw, set)):
                    retry_at = None if self._apply() else now + self.options.retry_seconds
        finally:
            self._close()

    def _close(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        self._set(state="stopped", files_pending=len(self.dirty), running=False)

    def _timeout(self, next_rescan: float | None, retry_at: float | None) -> int:
        """Milliseconds the watcher may wait for events before the loop has work of its own."""
        deadlines = [t for t in (next_rescan, retry_at) if t is not None]
        if not deadlines:
            return 0  # no timeout: sleep until events come
        return max(1, int((min(deadlines) - time.monotonic()) * 1000))

    def _next_rescan(self) -> float | None:
        if self.mode == "polling" or not self.options.rescan_seconds:
            return None  # polling compares the whole folder anyway
        return time.monotonic() + self.options.rescan_seconds

    def _open_notify(self) -> RustNotify | _Poller:
        poll = self.options.poll_seconds
        fs = filesystem_type(self.corpus)
        if poll is None and fs in NETWORK_FILESYSTEMS:
            poll = NETWORK_POLL_SECONDS
            self._say("info", f"the folder is on a network filesystem ({fs}): polling every {poll:g} s")
        # A single file is watched through its folder: an editor's save replaces the file
        # (a new inode), which a watch on the file itself would not survive.
        target, recursive = (self.corpus.parent, False) if self.corpus.is_file() else (self.corpus, True)
        if poll is None:
            try:
                notify = RustNotify([str(target)], False, False, 0, recursive, True)
                self.mode = "events"
                return notify
            except Exception as exc:  # e.g. the inotify watch limit is reached
                poll = NETWORK_POLL_SECONDS
                self._say(
                    "warning", f"filesystem events are unavailable ({describe_error(exc)}): polling every {poll:g} s"
                )
        self.mode = "polling"
        return _Poller(poll)

    # -- model and the initial pass ----------------------------------------------------------
    def _load_model(self) -> None:
        if isinstance(self.model, Embedder):
            self.embedder = to_embedder(
                self.model, query_prompt=self.query_prompt, document_prompt=self.document_prompt
            )
            return
        name = self.model
        recorded = None
        try:
            with IndexDir.open_for_reading(self.index) as idx:
                recorded = idx.model_record()
        except (IndexNotFound, BabelIndexError):
            recorded = None
        if name is None:
            name = recorded.name if recorded else None
        self._say("info", f"loading the model {name or DEFAULT_MODEL}")
        prompts = prompts_for(recorded, name, self.query_prompt, self.document_prompt)
        self.embedder = load_embedder(name or DEFAULT_MODEL, precision=self.precision, **prompts)

    def _initial_pass(self) -> None:
        """Build or resume the index from the whole folder (waiting for another writer if need be)."""
        self._set(state="building")
        self.known = {rel: st for rel, st in self._stats()}
        self.dirty.clear()
        while True:
            try:
                report = build_index(
                    self.corpus,
                    self.index,
                    model=self.embedder,
                    chunk_tokens=self.chunk_tokens,
                    overlap_tokens=self.overlap_tokens,
                    index_type=self.index_type,
                    text_field=self.fields.text_field,
                    id_field=self.fields.id_field,
                    progress=_StoppableProgress(self.progress, self.stop_event),
                    wait=self.options.lock_wait,
                    exclude=self.exclude,
                )
                break
            except IndexLocked as exc:
                self._say("warning", f"{exc} Trying again in {self.options.retry_seconds:g} s.")
                if self.stop_event.wait(self.options.retry_seconds):
                    return
            except Stopped:
                self._say(
                    "info",
                    "stopped during the initial pass: what was embedded is kept (not yet published), "
                    "and the next start resumes from there",
                )
                return
        version = self._version()
        self.publishes += 1
        self._done(BatchReport.of(report, files=len(self.known), initial=True, version=version))
        self._set(state="watching")

    # -- changes -----------------------------------------------------------------------------
    def _rel(self, path: str) -> str | None:
        """``path`` (absolute) relative to the corpus root, or None if it is not part of the corpus."""
        p = Path(path)
        if self.corpus.is_file():
            return path_text(p.name) if p == self.corpus else None
        try:
            inside = p.relative_to(self.corpus)
        except ValueError:
            return None
        if p == self.index or p.is_relative_to(self.index):
            return None  # the index itself, inside the corpus
        return path_text(inside.as_posix()) if inside.parts else ""

    def _paths_of(self, raw: set[tuple[int, str]]) -> set[str]:
        paths = set()
        for _, path in raw:
            rel = self._rel(path)
            if rel is not None and not (rel and self.selection.ignored(rel)):
                paths.add(rel)
                self._remember(rel, Path(path))
        return paths

    def _remember(self, rel: str, path: Path) -> None:
        if path != self.corpus / rel:
            self.where[rel] = path

    def _path(self, rel: str) -> Path:
        """The filesystem path of ``rel``."""
        if self.corpus.is_file():
            return self.corpus
        return self.where.get(rel, self.corpus / rel)

    def _stats(self, start: Path | None = None) -> Iterator[tuple[str, FileStat]]:
        """``(rel, stat)`` of the corpus's files (under ``start``), by the build's rules."""
        for item in walk(self.corpus, self.index, self.selection, start=start):
            if isinstance(item, Skipped):
                continue
            path, rel = item
            if (st := _file_stat(path)) is not None:
                self._remember(rel, path)
                yield rel, st

    def _rescan(self) -> set[str]:
        """The files that changed, appeared or went away since they were last read."""
        now = dict(self._stats())
        changed = {rel for rel, st in now.items() if self.known.get(rel) != st}
        return changed | (self.known.keys() - now.keys())

    def _resolve(self, paths: set[str]) -> tuple[list[tuple[Path, str]], list[Skipped], Scope]:
        """What to read for a set of changed paths, what to report, and the scope they cover.

        A path that is gone removes its documents (and those of everything under it, for a
        folder); a folder is walked for files that are new or changed since they were read; a
        file is read.
        """
        files: dict[str, Path] = {}
        skips: list[Skipped] = []
        scope_files: set[str] = set()
        scope_folders: set[str] = set()
        single = self.corpus.is_file()
        for rel in sorted(paths):
            path = self._path(rel)
            if not os.path.lexists(path):
                scope_files.add(rel)
                scope_folders.add(rel)
                self._forget(rel)
                continue
            if path.is_dir() and not path.is_symlink():
                seen = set()
                for item in walk(self.corpus, self.index, self.selection, start=path):
                    if isinstance(item, Skipped):
                        skips.append(item)
                        scope_files.add(item.source)
                        continue
                    file, r = item
                    seen.add(r)
                    self._remember(r, file)
                    st = _file_stat(file)
                    if st is not None and self.known.get(r) != st:
                        files[r] = file
                prefix = rel.rstrip("/") + "/" if rel else ""
                for gone in [k for k in self.known if k.startswith(prefix) and k not in seen]:
                    scope_files.add(gone)
                    self.known.pop(gone, None)
                continue
            scope_files.add(rel)
            if path.is_symlink() and not single:
                problem = link_problem(path, rel, self.corpus, self.selection)
                if problem is not None:
                    skips.append(problem)
                    self.known.pop(rel, None)
                    continue
            if path.is_file():
                files[rel] = path
            else:
                skips.append(Skipped(rel, "not a regular file"))
        scope_files.update(files)
        return sorted((p, r) for r, p in files.items()), skips, Scope(frozenset(scope_files), frozenset(scope_folders))

    def _forget(self, rel: str) -> None:
        prefix = rel.rstrip("/") + "/"
        for k in [k for k in self.known if k == rel or k.startswith(prefix) or not rel]:
            del self.known[k]
        for k in [k for k in self.where if k == rel or k.startswith(prefix) or not rel]:
            del self.where[k]

    def _apply(self) -> bool:
        """Apply the changed paths as one batch and publish; False if it must be tried again."""
        paths, self.dirty = self.dirty, set()
        started = time.perf_counter()
        self._set(files_pending=len(paths))
        try:
            files, skips, scope = self._resolve(paths)
            report = BuildReport(index=str(self.index), model=self.embedder.name if self.embedder else "")
            with IndexDir.open_for_writing(self.index, wait=self.options.lock_wait) as idx:
                embedder = open_model(idx, self.embedder)
                settings = idx.settings()
                writer = Writer(idx, embedder, settings, report, corpus=self.corpus_text, scope=scope)
                for item in skips:
                    writer.skip(item)
                for path, rel in files:
                    if (st := _file_stat(path)) is not None:
                        self.known[rel] = st
                    else:
                        self.known.pop(rel, None)
                    for doc in read_path(path, rel, settings.fields):
                        if isinstance(doc, Skipped):
                            writer.skip(doc)
                        else:
                            writer.add(doc)
                writer.finish()
                changed = idx.meta.has_unpublished_changes()
                info = writer.publish() if changed else None
        except IndexLocked as exc:
            self.dirty |= paths
            self._say("warning", f"{exc} The {len(paths)} changed paths wait for the next try.")
            return False
        except (BabelIndexError, OSError) as exc:
            if isinstance(exc, ModelMismatch):
                raise  # the index was rebuilt with another model: no retry can fix that
            self.dirty |= paths
            self._say("error", f"{describe_error(exc)}; the {len(paths)} changed paths wait for the next try")
            return False
        except Exception as exc:  # a bug must not stop the worker: report it and try again
            self.dirty |= paths
            self._say(
                "error", f"unexpected {describe_error(exc)}; the {len(paths)} changed paths wait for the next try"
            )
            return False
        report.seconds = round(time.perf_counter() - started, 3)
        version = info.version if info is not None else None
        if version is not None:
            self.publishes += 1
            if self.on_publish is not None:
                self.on_publish()
        self._done(BatchReport.of(report, files=len(files), initial=False, version=version))
        return True

    def _version(self) -> int | None:
        try:
            with IndexDir.open_for_reading(self.index) as idx:
                info = idx.faiss_info()
        except BabelIndexError:
            return None
        return info.version if info is not None else None

    # -- reporting ---------------------------------------------------------------------------
    def _done(self, batch: BatchReport) -> None:
        status = replace(
            self.status,
            batches=self.status.batches + 1,
            publishes=self.publishes,
            last_batch=batch.to_dict(),
            files_pending=len(self.dirty),
        )
        if batch.version is not None:
            status = replace(status, version=batch.version, last_publish_at=batch.time)
        for source, reason in batch.problems:
            status = status.with_error({"time": batch.time, "source": source, "reason": reason})
        self.status = status
        self._write_status()
        self._emit(batch)
        if batch.version is not None and batch.initial and self.on_publish is not None:
            self.on_publish()

    def _say(self, level: str, message: str, source: str | None = None) -> None:
        notice = Notice(level, message, source)
        if level == "error":
            self.status = self.status.with_error({"time": notice.time, "source": source or "", "reason": message})
            self._write_status()
        self._emit(notice)

    def _set(self, **changes: Any) -> None:
        self.status = replace(self.status, mode=self.mode, **changes)
        self._write_status()

    def _write_status(self) -> None:
        self.status = replace(self.status, updated_at=_now(), mode=self.mode)
        if not self.index.is_dir():
            return  # a new index: nothing to write into until the initial pass made it
        with contextlib.suppress(OSError):  # a status is a courtesy: a full disk shows in the next batch
            write_worker_status(self.index, self.status)

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)
