"""Fault injection for the crash tests: kill this process at a named point.

Set ``BABELINDEX_CRASH_AT=<point>`` (or ``<point>:<n>`` for its n-th passage, counted from
1) and the process SIGKILLs itself there, as a power cut or the OOM killer would. Points:
``create-db`` (a new meta.db opened, before its schema), ``embed`` (after a batch is embedded, before it is stored), ``commit`` (inside a write
transaction, before COMMIT), ``faiss-write`` (halfway through writing a FAISS file),
``rename`` (FAISS file fsynced, before its rename), ``publish`` (FAISS file in place,
before the SQLite transaction that makes it current). Unset, each check costs one lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_passages: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL the process if ``BABELINDEX_CRASH_AT`` names this point (and passage)."""
    wanted = os.environ.get("BABELINDEX_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _passages[name] += 1
    if _passages[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
