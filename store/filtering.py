"""Which chunks a search may return: a :class:`Filter` and the SQL condition it becomes.

The condition is over the aliases ``c`` (chunks) and ``d`` (documents), with bound
parameters: filter values never enter SQL text, and metadata keys go in only as bound JSON
paths (``json_extract(d.metadata, ?)``). Checking what a user typed is
:func:`search.filters.build_filter`'s job; this module trusts its :class:`Filter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

GLOB_CHARS = re.compile(r"[*?\[]")
ORDERING_TYPES = {"number": ("integer", "real", "true", "false"), "text": ("text",)}
"""The ``json_type`` of the values an ordering comparison (``< <= > >=``) with a number or a
string may hold for. Without it SQLite would order every number before every string, so that
the text ``"2023"`` were greater than ``2025`` (and an object's JSON text compared too)."""


@dataclass(frozen=True)
class Filter:
    """One search's restrictions, all of which must hold.

    ``langs``: language codes (a chunk's language, else its document's); ``source``: a glob
    (``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) on the source path, or a prefix (a value
    ending in ``/`` or without glob characters); ``where``: ``(key, operator, value)`` triples
    on the document metadata, operator one of ``= != < <= > >= in`` (``in``: a tuple of values).

    Comparisons are typed (see :data:`ORDERING_TYPES`): ``< <= > >=`` with a number hold only
    for values that are numbers (booleans count as 1 and 0), with a string only for strings;
    ``=`` and ``in`` hold for an equal value of the same type (``2025`` never equals
    ``"2025"``); ``!=`` holds for every value that is not equal, of either type. A missing key
    (or ``null``) satisfies ``= None`` only.
    """

    langs: tuple[str, ...] | None = None
    source: str | None = None
    where: tuple[tuple[str, str, Any], ...] = ()

    def sql(self) -> tuple[str, list[Any]]:
        """``(condition, parameters)`` over ``c`` (chunks) and ``d`` (documents)."""
        parts: list[str] = []
        params: list[Any] = []
        if self.langs is not None:
            parts.append(f"coalesce(c.lang, d.lang) IN ({','.join('?' * len(self.langs))})")
            params += self.langs
        if self.source is not None:
            if GLOB_CHARS.search(self.source) and not self.source.endswith("/"):
                parts.append("d.source GLOB ?")
                params.append(self.source)
            else:
                parts.append("substr(d.source, 1, ?) = ?")
                params += [len(self.source), self.source]
        for key, op, value in self.where:
            path = "$." + key
            if op == "in":
                parts.append(f"json_extract(d.metadata, ?) IN ({','.join('?' * len(value))})")
                params += [path, *value]
            elif value is None:
                parts.append(f"json_extract(d.metadata, ?) IS {'NOT ' if op == '!=' else ''}NULL")
                params.append(path)
            elif op in ("=", "!="):
                parts.append(f"json_extract(d.metadata, ?) {op} ?")
                params += [path, value]
            else:
                types = ORDERING_TYPES["text" if isinstance(value, str) else "number"]
                parts.append(
                    f"(json_type(d.metadata, ?) IN ({','.join('?' * len(types))}) AND json_extract(d.metadata, ?) {op} ?)"
                )
                params += [path, *types, path, value]
        return " AND ".join(parts) or "1", params


def sql_of(filt: Filter | None) -> tuple[str, list[Any]]:
    """The condition of ``filt``, or one that holds for every chunk."""
    return ("1", []) if filt is None else filt.sql()
