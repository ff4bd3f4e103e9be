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

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from store.errors import InvalidInput
from store.filtering import Filter
from store.metadata_json import text_problem

MAX_LANGS = 256
"""Language codes in one ``lang`` filter."""
MAX_CONDITIONS = 64
"""Conditions in one ``where`` (a key with two operators counts two)."""
MAX_IN_VALUES = 1024
"""Values of one ``in`` condition."""
MAX_SOURCE_CHARS = 1024
"""Characters of a ``source`` glob or prefix."""
MAX_GLOB_WILDCARDS = 16
"""``*``, ``?`` and ``[`` in one ``source`` glob."""
MAX_KEY_CHARS = 256
"""Characters of a metadata key path."""
MAX_VALUE_CHARS = 4096
"""Characters of a string compared in ``where`` (and of a language code)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

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
            raise InvalidInput(f"lang must be a language code such as 'de' or a list of them, not {_short(lang)}.")
        if len(langs) > MAX_LANGS:
            raise InvalidInput(f"lang lists {len(langs)} languages; the limit is {MAX_LANGS}.")
        for code in langs:
            check_text(code, "a lang code", MAX_VALUE_CHARS)
    if source is not None and (not isinstance(source, str) or not source):
        raise InvalidInput(
            f"source must be a non-empty glob ('docs/*.md') or path prefix ('docs/'), not {_short(source)}."
        )
    if source is not None:
        check_text(source, "the source filter", MAX_SOURCE_CHARS)
        wild = sum(source.count(c) for c in "*?[")
        if wild > MAX_GLOB_WILDCARDS:
            raise InvalidInput(
                f"the source glob has {wild} wildcards and character classes; the limit is {MAX_GLOB_WILDCARDS} "
                "(matching many of them backtracks over every source): use a simpler glob or a prefix."
            )
    conditions = _conditions(where or {})
    if langs is None and source is None and not conditions:
        return None
    return Filter(langs, source, conditions)


def _conditions(where: Mapping[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    if not isinstance(where, Mapping):
        raise InvalidInput(f"where must be a dict such as {{'year': {{'>=': 2020}}}}, not {_short(where)}.")
    out: list[tuple[str, str, Any]] = []
    for key, spec in where.items():
        if len(out) >= MAX_CONDITIONS:
            raise InvalidInput(f"where has more than {MAX_CONDITIONS} conditions; the limit is {MAX_CONDITIONS}.")
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not KEY.match(key):
            raise InvalidInput(
                f"bad metadata key {_short(key)}: keys are letters, digits and underscores, not starting "
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
                        f"'in' for the metadata key {key!r} needs a non-empty list of values, not {_short(value)}."
                    )
                if len(value) > MAX_IN_VALUES:
                    raise InvalidInput(
                        f"'in' for the metadata key {key!r} lists {len(value)} values; the limit is {MAX_IN_VALUES}."
                    )
                out.append((key, "in", tuple(_scalar(key, v) for v in value)))
                continue
            value = _scalar(key, value)
            if value is None and _SQL_OPS[op] not in ("=", "!="):
                raise InvalidInput(f"the metadata key {key!r} can only be compared with None by = or !=.")
            out.append((key, _SQL_OPS[op], value))
    if len(out) > MAX_CONDITIONS:
        raise InvalidInput(f"where has {len(out)} conditions; the limit is {MAX_CONDITIONS}.")
    return tuple(out)


def _scalar(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"the value {_short(value)} for the metadata key {key!r} is beyond 64-bit integers.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"the value {value!r} for the metadata key {key!r} is not a finite number.")
    if isinstance(value, str):
        return check_text(value, f"the value for the metadata key {key!r}", MAX_VALUE_CHARS)
    if value is None or isinstance(value, int | float):
        return value
    raise InvalidInput(
        f"the value {_short(value)} for the metadata key {key!r} is not a string, number, boolean or None."
    )


def check_text(value: str, what: str, limit: int) -> str:
    """``value`` if it is text SQLite can take (no NUL, no lone surrogate) of at most ``limit``
    characters, else :class:`InvalidInput` naming ``what``."""
    if len(value) > limit:
        raise InvalidInput(f"{what} has {len(value)} characters; the limit is {limit}.")
    problem = text_problem(value)
    if problem:
        raise InvalidInput(f"{what} holds {problem}; remove it.")
    return value


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a huge value must not make a huge message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    """A number if ``text`` reads as one JSON can hold (an int beyond 64 bits is a float; an
    infinite float, ``1e400``, stays text), else the text without surrounding quotes."""
    text = text.strip()
    if _NUMBER.match(text):
        if text.lstrip("-").isdigit():
            number = int(text)
            return number if INT64_MIN <= number <= INT64_MAX else float(number)
        value = float(text)
        if math.isfinite(value):
            return value
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
