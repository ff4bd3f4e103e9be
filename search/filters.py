"""Search filters: language, source path and document metadata, checked and parsed.

:func:`build_filter` checks what a caller gives and returns the store's
:class:`~store.filtering.Filter`, which the store turns into SQL with bound parameters
(metadata keys must match :data:`KEY`; values never enter SQL text).

``where`` is a dict of metadata conditions, all of which must hold::

    {"year": {">=": 2020, "<": 2024},   # operators: = != < <= > >= in
     "tag": {"in": ["a", "b"]},
     "author": "Ada"}                    # a bare value means "="

A missing key (or a JSON ``null``) matches only ``None`` (``{"key": None}``), never another
comparison, not even ``!=``. Comparisons are typed (:class:`~store.filtering.Filter`): ``< <=
> >=`` with a number hold only for numbers, with a string only for strings, so a key that
holds numbers in some documents and strings in others orders each kind apart; ``=`` and
``in`` need the same type (``2025`` is not ``"2025"``); ``!=`` holds for any other value.

Languages are named by any ISO 639 code or by name (:mod:`search.languages`) and become every
code an index may store for them. Every error here is :class:`~store.errors.InvalidFilter`;
whether a well-formed filter names what the index holds is :mod:`search.explain`'s question.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from search.languages import resolve
from store.errors import InvalidFilter, InvalidInput
from store.filtering import Filter
from store.metadata_json import text_problem
from store.typed_values import has_leading_zero

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
            raise InvalidFilter(f"lang must be a language code such as 'de' or a list of them, not {_short(lang)}.")
        if len(langs) > MAX_LANGS:
            raise InvalidFilter(f"lang lists {len(langs)} languages; the limit is {MAX_LANGS}.")
        for code in langs:
            check_text(code, "a lang code", MAX_VALUE_CHARS, InvalidFilter)
        langs = stored_codes(langs)
    if source is not None and (not isinstance(source, str) or not source):
        raise InvalidFilter(
            f"source must be a non-empty glob ('docs/*.md') or path prefix ('docs/'), not {_short(source)}."
        )
    if source is not None:
        check_text(source, "the source filter", MAX_SOURCE_CHARS, InvalidFilter)
        wild = sum(source.count(c) for c in "*?[")
        if wild > MAX_GLOB_WILDCARDS:
            raise InvalidFilter(
                f"the source glob has {wild} wildcards and character classes; the limit is {MAX_GLOB_WILDCARDS} "
                "(matching many of them backtracks over every source): use a simpler glob or a prefix."
            )
    conditions = _conditions(where or {})
    if langs is None and source is None and not conditions:
        return None
    return Filter(langs, source, conditions)


def _conditions(where: Mapping[str, Any]) -> tuple[tuple[str, str, Any], ...]:
    if not isinstance(where, Mapping):
        raise InvalidFilter(f"where must be a dict such as {{'year': {{'>=': 2020}}}}, not {_short(where)}.")
    out: list[tuple[str, str, Any]] = []
    for key, spec in where.items():
        if len(out) >= MAX_CONDITIONS:
            raise InvalidFilter(f"where has more than {MAX_CONDITIONS} conditions; the limit is {MAX_CONDITIONS}.")
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not KEY.match(key):
            raise InvalidFilter(
                f"bad metadata key {_short(key)}: keys are letters, digits and underscores, not starting "
                "with a digit, with dots for nested fields (e.g. 'year', 'author.name')."
            )
        ops = spec if isinstance(spec, Mapping) else {"=": spec}
        if not ops:
            raise InvalidFilter(f"no condition for the metadata key {key!r}; {_ALLOWED}.")
        for op, value in ops.items():
            if op not in _SQL_OPS and op != "in":
                raise InvalidFilter(f"unknown operator {op!r} for the metadata key {key!r}; {_ALLOWED}.")
            if op == "in":
                if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
                    raise InvalidFilter(
                        f"'in' for the metadata key {key!r} needs a non-empty list of values, not {_short(value)}."
                    )
                if len(value) > MAX_IN_VALUES:
                    raise InvalidFilter(
                        f"'in' for the metadata key {key!r} lists {len(value)} values; the limit is {MAX_IN_VALUES}."
                    )
                out.append((key, "in", tuple(_scalar(key, v) for v in value)))
                continue
            value = _scalar(key, value)
            if value is None and _SQL_OPS[op] not in ("=", "!="):
                raise InvalidFilter(f"the metadata key {key!r} can only be compared with None by = or !=.")
            out.append((key, _SQL_OPS[op], value))
    if len(out) > MAX_CONDITIONS:
        raise InvalidFilter(f"where has {len(out)} conditions; the limit is {MAX_CONDITIONS}.")
    return tuple(out)


def _scalar(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidFilter(f"the value {_short(value)} for the metadata key {key!r} is beyond 64-bit integers.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilter(f"the value {value!r} for the metadata key {key!r} is not a finite number.")
    if isinstance(value, str):
        return check_text(value, f"the value for the metadata key {key!r}", MAX_VALUE_CHARS, InvalidFilter)
    if value is None or isinstance(value, int | float):
        return value
    raise InvalidFilter(
        f"the value {_short(value)} for the metadata key {key!r} is not a string, number, boolean or None."
    )


def check_text(value: str, what: str, limit: int, error: type[InvalidInput] = InvalidInput) -> str:
    """``value`` if it is text SQLite can take (no NUL, no lone surrogate) of at most ``limit``
    characters, else ``error`` (:class:`InvalidInput` or a subclass) naming ``what``."""
    if len(value) > limit:
        raise error(f"{what} has {len(value)} characters; the limit is {limit}.")
    problem = text_problem(value)
    if problem:
        raise error(f"{what} holds {problem}; remove it.")
    return value


def stored_codes(langs: Sequence[str]) -> tuple[str, ...]:
    """The codes an index may store for the languages ``langs`` name (:func:`search.languages.resolve`:
    ``("German",)`` → ``("de", "deu", "ger")``); a text that names no language is kept as it is
    (an imported index may store codes of its own)."""
    codes: dict[str, None] = {}
    for text in langs:
        language = resolve(text)
        codes.update(dict.fromkeys(language.codes if language else (text.strip(),)))
    return tuple(codes)


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
    like numbers are numbers, but for a leading zero (``007``); others are strings
    (surrounding quotes are removed). A value may not start with ``< > = !`` unless quoted
    (``year>>2020`` is a typo, not the text ``>2020``). A condition that does not read raises :class:`InvalidFilter` naming the
    position (0-based) of the first character that does not fit, and the grammar.
    """
    where: dict[str, dict[str, Any]] = {}
    for text in expressions:
        key, op, value = _condition(text)
        where.setdefault(key, {})[op] = value
    return where


CONDITION_GRAMMAR = (
    "conditions look like key=value, key>=number or 'key in a,b' (operators = != < <= > >= in; "
    "quote a value that starts with < > = or !: name='=x')"
)
_OPS_LONGEST_FIRST = ("!=", "<=", ">=", "==", "=", "<", ">")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def _condition(text: str) -> tuple[str, str, Any]:
    """``(key, operator, value)`` of one CLI condition; ``in`` gives a list of values."""

    def fail(problem: str) -> InvalidFilter:
        return InvalidFilter(f"cannot read the condition {_short(text)}: {problem}; {CONDITION_GRAMMAR}.")

    def unexpected(at: int) -> InvalidFilter:
        return fail(f"unexpected {text[at]!r} at position {at}")

    n = len(text)
    i = _skip_space(text, 0)
    start = i
    while i < n and text[i] in _KEY_CHARS:
        i += 1
    if i == start:
        raise fail("the condition is empty") if i == n else fail(f"a metadata key is missing at position {i}")
    key = text[start:i]
    j = _skip_space(text, i)
    if j > i and text.startswith("in", j) and (j + 2 == n or text[j + 2].isspace()):
        values: list[Any] = []
        at = j + 2
        for item in text[at:].split(","):
            if not item.strip():
                raise fail(f"a value is missing in the list after 'in' at position {_skip_space(text, at)}")
            values.append(_cli_value(item))
            at += len(item) + 1
        return key, "in", values
    if j == n:
        raise fail(f"an operator is missing after the key {key!r} at position {j}")
    op = next((o for o in _OPS_LONGEST_FIRST if text.startswith(o, j)), None)
    if op is None:
        raise unexpected(j)
    v = _skip_space(text, j + len(op))
    if v == n:
        raise fail(f"a value is missing after {op!r} at position {v}")
    if text[v] in "<>=!":
        raise unexpected(v)
    return key, op, _cli_value(text[v:])


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _cli_value(text: str) -> Any:
    """A number if ``text`` reads as one JSON can hold (an int beyond 64 bits is a float; an
    infinite float, ``1e400``, stays text) and has no leading zero (``007`` and ``02134`` are
    codes, and text, as in a CSV file: :mod:`store.typed_values`), else the text without
    surrounding quotes."""
    text = text.strip()
    if _NUMBER.match(text) and not has_leading_zero(text):
        if text.lstrip("-").isdigit():
            number = int(text)
            return number if INT64_MIN <= number <= INT64_MAX else float(number)
        value = float(text)
        if math.isfinite(value):
            return value
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
