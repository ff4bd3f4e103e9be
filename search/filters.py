"""Search filters: language, source path and document metadata, checked and parsed.

:func:`build_filter` checks what a caller gives and returns the store's
:class:`~store.filtering.Filter`, which the store turns into SQL with bound parameters
(metadata keys must match :data:`KEY`; values never enter SQL text).

``where`` is a dict of metadata conditions, all of which must hold::

    {"year": {">=": 2020, "<": 2024},   # operators: = != < <= > >= in
     "tag": {"in": ["a", "b"]},
     "author": "Ada"}                    # a bare value means "="

A missing key (or a JSON ``null``) matches only ``None`` (``{"key": None}``), never another
comparison, not even ``!=``. Numbers compare as numbers, strings as
strings; in SQLite every number sorts before every string, so store numbers as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from store.errors import InvalidInput
from store.filtering import Filter

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
"""Metadata keys: identifiers, dotted for nested objects (``author.name``)."""
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in")
_SQL_OPS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ALLOWED = "operators are " + ", ".join(OPERATORS)
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
_CLI_IN = re.compile(r"\s*([^\s<>=!]+)\s+in\s+(.*)\Z", re.DOTALL)
_CLI_OP = re.compile(r"\s*([^\s<>=!]+)\s*(!=|<=|>=|==|=|<|>)\s*(.*)\Z", re.DOTALL)


def build_filter(
    lang: str | Sequence[str] | None = None,
    source: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> Filter | None:
    """Check the filter arguments of ``Index.search``; ``None`` when nothing is filtered.

    ``lang``: a language code or a list of them (a chunk's language, else its document's).
    ``source``: a glob (``*``, ``?``, ``[...]``; ``*`` also crosses ``/``) on the document's
    source path, or a prefix (a value ending in ``/`` or without glob characters).
    ``where``: metadata conditions (see the module documentation).
    """
    langs = None
    if lang is not None:
        langs = (lang,) if isinstance(lang, str) else tuple(lang)
        if not langs or not all(isinstance(x, str) and x for x in langs):
            raise InvalidInput(f"lang must be a language code such as 'de' or a list of them, not {lang!r}.")
    if source is not None and (not isinstance(source, str) or not source):
        raise InvalidInput(f"source must be a non-empty glob ('docs/*.md') or path prefix ('docs/'), not {source!r}.")
    conditions = _conditions(where or {})
    if langs is None and source is None and not conditions:
        return None
    return Filter(langs, source, conditions)


def _conditions(where: Mapping[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    if not isinstance(where, Mapping):
        raise InvalidInput(f"where must be a dict such as {{'year': {{'>=': 2020}}}}, not {where!r}.")
    out = []
    for key, spec in where.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise InvalidInput(
                f"bad metadata key {key!r}: keys are letters, digits and underscores, not starting "
                "with a digit, with dots for nested fields (e.g. 'year', 'author.name')."
            )
        ops = spec if isinstance(spec, Mapping) else {"=": spec}
        if not ops:
            raise InvalidInput(f"no condition for the metadata key {key!r}; {_ALLOWED}.")
        for op, value in ops.items():
            if op not in _SQL_OPS and op != "in":
                raise InvalidInput(f"unknown operator {op!r} for the metadata key {key!r}; {_ALLOWED}.")
            if op == "in":
                if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
                    raise InvalidInput(
                        f"'in' for the metadata key {key!r} needs a non-empty list of values, not {value!r}."
                    )
                out.append((key, "in", tuple(_scalar(key, v) for v in value)))
                continue
            value = _scalar(key, value)
            if value is None and _SQL_OPS[op] not in ("=", "!="):
                raise InvalidInput(f"the metadata key {key!r} can only be compared with None by = or !=.")
            out.append((key, _SQL_OPS[op], value))
    return tuple(out)


def _scalar(key: str, value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return int(value) if isinstance(value, bool) else value
    raise InvalidInput(f"the value {value!r} for the metadata key {key!r} is not a string, number, boolean or None.")


def parse_langs(text: str | None) -> list[str] | None:
    """The ``lang`` filter from comma-separated codes (``"de, fr"`` → ``["de", "fr"]``), as the
    CLI's ``--lang`` and the HTTP API's ``lang=`` take it; ``None`` stays ``None``."""
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def parse_where(expressions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``where`` dict of CLI conditions such as ``year>=2020``, ``tag in a,b``.

    Operators: ``= != < <= > >=`` and ``in`` (comma-separated values). Values that look
    like numbers are numbers; others are strings (surrounding quotes are removed).
    """
    where: dict[str, dict[str, Any]] = {}
    for text in expressions:
        if m := _CLI_IN.match(text):
            key, op, value = m[1], "in", [_cli_value(v) for v in m[2].split(",")]
        elif m := _CLI_OP.match(text):
            key, op, value = m[1], m[2], _cli_value(m[3])
        else:
            raise InvalidInput(
                f"cannot read the condition {text!r}: write KEY OP VALUE with OP one of = != < <= > >= "
                "(e.g. 'year>=2020'), or 'KEY in A,B'."
            )
        where.setdefault(key, {})[op] = value
    return where


def _cli_value(text: str) -> Any:
    text = text.strip()
    if _NUMBER.match(text):
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
