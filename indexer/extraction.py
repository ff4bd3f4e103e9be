"""Bounded extraction: a PDF's text is extracted in a worker process with a time and a
memory budget, so that no file can stall a build or exhaust its memory.

pypdf's extraction time grows faster than linearly with a page's content stream (a 62 KB
PDF holding 20 MB of text operators ran for minutes), and its own limits cover
decompression only. Each PDF therefore goes to one worker process (started at the first
PDF, reused for the next ones) whose address space is capped at :data:`EXTRACT_MEMORY_MB`
(``RLIMIT_AS``) and which must answer within :data:`EXTRACT_SECONDS`. A worker that takes
longer is killed (the next PDF starts a new one) and the file is reported: "PDF extraction
took more than 60 s", or "needed more than 2048 MB of memory". Requests and answers are
JSON lines over pipes (no pickle).

    python -m indexer.extraction      # the worker: reads requests on stdin (not for people)
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXTRACT_SECONDS = 60.0
"""Wall-clock seconds one file's extraction may take (a 5,000-page PDF takes about 9 s)."""
EXTRACT_MEMORY_MB = 2048
"""The worker's address space (``RLIMIT_AS``), in MiB: its interpreter, pypdf and one file."""
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class ExtractionFailed(Exception):
    """A file's text could not be extracted within its budget, or not at all; ``str(exc)`` says why."""


class Extractor:
    """Extracts PDF text in a worker process with a time and memory budget (thread-safe).

    The budget is read from :data:`EXTRACT_SECONDS` and :data:`EXTRACT_MEMORY_MB` at each
    call unless given here.
    """

    def __init__(self, seconds: float | None = None, memory_mb: int | None = None):
        self.seconds, self.memory_mb = seconds, memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_memory = 0
        self._owner = os.getpid()
        self._lock = threading.Lock()

    def pdf(self, path: Path) -> tuple[str, str | None]:
        """``(text of every page joined by blank lines, title or None)``.

        Raises :class:`ExtractionFailed` with the reason (over budget, unreadable, encrypted).
        """
        answer = self._ask({"op": "pdf", "path": os.fsdecode(path)})
        if "error" in answer:
            raise ExtractionFailed(str(answer["error"]))
        return str(answer["text"]), answer.get("title")

    def close(self) -> None:
        """Stop the worker (a later call starts a new one)."""
        with self._lock:
            self._stop()

    # -- the parent's side --------------------------------------------------------------------
    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        seconds = EXTRACT_SECONDS if self.seconds is None else self.seconds
        memory = EXTRACT_MEMORY_MB if self.memory_mb is None else self.memory_mb
        with self._lock:
            proc = self._worker(memory)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
                line = _read_line(proc.stdout.fileno(), time.monotonic() + seconds)
            except TimeoutError:
                self._stop()
                raise ExtractionFailed(f"PDF extraction took more than {seconds:g} s") from None
            except (BrokenPipeError, EOFError):
                code = proc.wait()
                self._stop()
                if code in (-9, 137) or code == -6:  # killed (the OOM killer) or aborted
                    raise ExtractionFailed(f"PDF extraction needed more than {memory} MB of memory") from None
                raise ExtractionFailed(f"PDF extraction crashed (exit status {code})") from None
            answer: dict[str, Any] = json.loads(line)
            if answer.get("restart"):  # out of memory: its heap may be in any state
                self._stop()
            return answer

    def _worker(self, memory_mb: int) -> subprocess.Popen[bytes]:
        if self._owner != os.getpid():  # a forked child must not share its parent's pipes
            self._proc, self._owner = None, os.getpid()
        if self._proc is not None and (self._proc.poll() is not None or self._proc_memory != memory_mb):
            self._stop()
        if self._proc is None:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "indexer.extraction", str(memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            self._proc_memory = memory_mb
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _read_line(fd: int, deadline: float) -> bytes:
    """One line from ``fd`` by ``deadline`` (monotonic): raises TimeoutError, or EOFError at end."""
    parts = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        data = os.read(fd, 1 << 20)
        if not data:
            raise EOFError
        parts.append(data)
        if data.endswith(b"\n"):
            return b"".join(parts)


_shared: Extractor | None = None
_shared_lock = threading.Lock()


def shared() -> Extractor:
    """The process's extractor (its worker starts at the first PDF and stops at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Extractor()
            atexit.register(_shared.close)
        return _shared


# -- the worker's side ----------------------------------------------------------------------
def _pdf_answer(path: str) -> dict[str, Any]:
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted:
            return {"error": "encrypted PDF; decrypt it first"}
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata or {}).get("/Title")
    except MemoryError:
        raise
    except PyPdfError as exc:
        return {"error": f"unreadable PDF ({type(exc).__name__}: {exc})"}
    except Exception as exc:  # pypdf's own bugs: any error is this file's problem
        return {"error": f"unreadable PDF ({exc or type(exc).__name__})"}
    text = "\n\n".join(p.strip() for p in pages)
    return {"text": text, "title": str(title) if title else None}


def _serve(memory_mb: int) -> None:
    import logging
    import resource

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            answer = _pdf_answer(request["path"])
        except MemoryError:
            answer = {"error": f"PDF extraction needed more than {memory_mb} MB of memory", "restart": True}
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
        sys.stdout.buffer.flush()
        if answer.get("restart"):
            return


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
