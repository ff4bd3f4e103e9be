"""When a text is a number: the rule for metadata that arrives as text (a CSV cell).

A text is a number when, apart from white space around it, it is a plain decimal:

* an integer: an optional ``-``, then ``0`` or digits not starting with ``0`` (``2024``,
  ``-3``, ``0``), within 64 bits; it becomes an ``int``;
* a decimal: the same, then ``.`` and one or more digits (``0.5``, ``12.50``, ``-3.25``),
  with at most :data:`MAX_SIGNIFICANT_DIGITS` significant digits, so that the float reads
  back as the value written; it becomes a ``float``.

Everything else stays text, on purpose: codes with leading zeros (``007``, zip codes such as
``02134``), ``+`` signs and phone numbers (``+44 20 7946 0958``), thousands separators
(``1,234``, ``1 234``), exponents (``1e5``, ``2E10``: part numbers and gene names look like
that), ``.5`` and ``5.``, ``NaN`` and ``inf``, hexadecimal, underscores (``1_000``), digits
of other scripts (``٢٠٢٤``), booleans (``true``, ``yes``) and dates.
"""

from __future__ import annotations

import re

MAX_SIGNIFICANT_DIGITS = 15
"""Significant digits of a decimal that a float64 holds exactly as written."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+\Z")


def number_in(text: str) -> int | float | None:
    """The number ``text`` is written as (see the module documentation), else None."""
    value = text.strip()
    if len(value) > 40:  # longer than any number this rule accepts
        return None
    if _INTEGER.match(value):
        number = int(value)
        return number if INT64_MIN <= number <= INT64_MAX else None
    if _DECIMAL.match(value):
        digits = value.lstrip("-").replace(".", "").lstrip("0")
        return float(value) if len(digits) <= MAX_SIGNIFICANT_DIGITS else None
    return None


def typed_value(text: str) -> str | int | float:
    """``text`` as a number if it is written as one (:func:`number_in`), else ``text`` unchanged."""
    number = number_in(text)
    return text if number is None else number


def has_leading_zero(text: str) -> bool:
    """Whether ``text`` is digits starting with a ``0`` that is not the whole integer part
    (``007``, ``-012``, ``00.5``): a code, not a number, by the rule above."""
    value = text.strip().lstrip("-")
    return len(value) > 1 and value[0] == "0" and value[1].isdigit()
