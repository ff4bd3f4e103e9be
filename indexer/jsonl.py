"""One reader of JSON Lines: a corpus's ``.jsonl`` files, vector imports, BEIR tasks.

Blank lines are not records. A line that is not JSON, or not a JSON object, is reported
with its line number and reason rather than raised, so each caller decides whether a bad
line skips a record (a build), rejects a row (an import) or stops the run (an eval task).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line: ``number`` counts lines from 1; ``record`` is the object, or None
    with ``problem`` saying why the line is not one."""

    number: int
    record: dict[str, Any] | None
    problem: str | None = None


def parse_lines(lines: Iterable[str]) -> Iterator[JsonlLine]:
    """The records of ``lines`` (text lines, e.g. an open file), in order."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield JsonlLine(number, None, f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if isinstance(record, dict):
            yield JsonlLine(number, record)
        else:
            yield JsonlLine(number, None, "not a JSON object")


def read_jsonl(path: Path, *, errors: str = "strict") -> Iterator[JsonlLine]:
    """The records of the UTF-8 file ``path`` (``errors`` as for :func:`open`), streamed."""
    with open(path, encoding="utf-8", errors=errors) as fh:
        yield from parse_lines(fh)
