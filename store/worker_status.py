"""``watch.json``: what a long-running ingestion worker (``indexer watch``) tells other processes.

The worker rewrites the file atomically (write, fsync, rename) whenever its state changes:
after each batch, each problem, and when it starts and stops. ``indexer stats`` and the
server's ``GET /stats`` read it. A worker killed with SIGKILL cannot say it stopped: readers
check its pid (on the same host) and report such a status as not running.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from store.atomic import atomic_write

STATUS_FILE = "watch.json"
MAX_ERRORS = 20
"""Problems a status keeps (the latest ones)."""

__all__ = ["MAX_ERRORS", "STATUS_FILE", "WorkerStatus", "read_worker_status", "write_worker_status"]


@dataclass(frozen=True)
class WorkerStatus:
    """A watch worker's state. Times are ISO 8601 UTC strings (``2026-12-01T12:00:00Z``).

    ``state``: ``starting`` (loading the model), ``building`` (the initial pass over the
    folder), ``watching``, ``stopping`` or ``stopped``; a reader finds ``running`` False
    when the process is gone. ``mode``: ``events`` (filesystem notifications) or
    ``polling``. ``files_pending``: changed files seen but not yet published.
    ``last_batch``: the last batch's figures (see :class:`indexer.watch.BatchReport`).
    ``errors``: the latest problems, ``{"time", "source", "reason"}``, newest last.
    """

    pid: int
    host: str
    corpus: str
    started_at: str
    state: str = "starting"
    mode: str = "events"
    updated_at: str = ""
    last_publish_at: str | None = None
    version: int | None = None
    batches: int = 0
    publishes: int = 0
    files_pending: int = 0
    last_batch: dict[str, Any] | None = None
    errors: tuple[dict[str, str], ...] = field(default_factory=tuple)
    running: bool = True

    def with_error(self, entry: dict[str, str]) -> WorkerStatus:
        """This status with one more problem (keeping the latest :data:`MAX_ERRORS`)."""
        return replace(self, errors=(*self.errors, entry)[-MAX_ERRORS:])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = list(self.errors)
        return data


def write_worker_status(index: Path, status: WorkerStatus) -> None:
    """Replace ``<index>/watch.json`` atomically. Raises ``OSError`` if it cannot be written."""
    data = status.to_dict()
    data.pop("running")
    atomic_write(Path(index) / STATUS_FILE, json.dumps(data, ensure_ascii=False, indent=1).encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_worker_status(index: Path) -> WorkerStatus | None:
    """The last status a worker wrote for this index, None if none ever did (or it is unreadable).

    ``running`` says whether the worker is still alive (its pid, on this host); a worker
    that died without saying so is reported ``stopped``.
    """
    try:
        data = json.loads((Path(index) / STATUS_FILE).read_text(encoding="utf-8"))
        data.pop("running", None)
        data["errors"] = tuple(data.get("errors") or ())
        status = WorkerStatus(**data)
    except (OSError, ValueError, TypeError):
        return None
    same_host = status.host == socket.gethostname()
    running = status.state != "stopped" and (not same_host or _alive(status.pid))
    if not running and status.state != "stopped":
        status = replace(status, state="stopped")
    return replace(status, running=running)
