"""Fault injection for the crash tests: kill this process at a named point.

Set ``BABELINDEX_CRASH_AT=<point>`` (or ``<point>:<n>`` for its n-th passage, counted from
1) and the process SIGKILLs itself there, as a power cut or the OOM killer would. Points:
``create-db`` (a new meta.db opened, before its schema), ``embed`` (after a batch is embedded, before it is stored), ``commit`` (inside a write
transaction, before COMMIT), ``faiss-write`` (halfway through writing a FAISS file),
``rename`` (FAISS file fsynced, before its rename), ``publish`` (FAISS file in place,
before the SQLite transaction that makes it current), ``ray-embed`` (a Ray actor's batch,
before it is embedded), ``shard`` (a Ray build's staging shard renamed into place),
``vacuum`` (every 100 SQLite steps inside a compaction's vacuum), ``checkpoint`` (a
compaction's vacuum committed, before the WAL is checkpointed). Unset, each check costs one
lookup.

With ``BABELINDEX_CRASH_ONCE=<file>`` as well, only the process that creates ``<file>`` dies:
a crash happens once across processes (a Ray actor restarted after its crash lives on).

``BABELINDEX_PAUSE_AT=<point>:<seconds>`` pauses there instead (each passage), after
creating the file ``BABELINDEX_PAUSE_MARK`` if set: a test then knows the process is in
the middle of that step (a watch worker's batch, say) and can signal it there.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

_passages: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL the process if ``BABELINDEX_CRASH_AT`` names this point (and passage); pause
    if ``BABELINDEX_PAUSE_AT`` does."""
    pause = os.environ.get("BABELINDEX_PAUSE_AT")
    if pause:
        point, _, seconds = pause.partition(":")
        if point == name:
            mark = os.environ.get("BABELINDEX_PAUSE_MARK")
            if mark:
                with open(mark, "a", encoding="utf-8") as fh:
                    fh.write(f"{name}\n")
            time.sleep(float(seconds or 1))
    wanted = os.environ.get("BABELINDEX_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _passages[name] += 1
    if _passages[name] != int(nth or 1):
        return
    once = os.environ.get("BABELINDEX_CRASH_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
