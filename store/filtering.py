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


@dataclass(frozen=True)
class Filter:
    """One search's restrictions, all of which must hold.

    ``langs``: language codes (a chunk's language, else its document's); ``source``: a glob
    (``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) on the source path, or a prefix (a value
    ending in ``/`` or without glob characters); ``where``: ``(key, operator, value)`` triples
    on the document metadata, operator one of ``= != < <= > >= in`` (``in``: a tuple of values).
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
            else:
                parts.append(f"json_extract(d.metadata, ?) {op} ?")
                params += [path, value]
        return " AND ".join(parts) or "1", params


def sql_of(filt: Filter | None) -> tuple[str, list[Any]]:
    """The condition of ``filt``, or one that holds for every chunk."""
    return ("1", []) if filt is None else filt.sql()
