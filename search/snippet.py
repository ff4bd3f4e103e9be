"""Snippets of a hit's text for display: a window of the text that shows the matched terms.

The text's white space is collapsed to single spaces. Widths are terminal columns (East
Asian wide characters take two).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

CONTEXT = 20
"""Characters kept before the first match when the text has to be cut to show it."""


def columns(text: str) -> int:
    """Terminal columns of ``text`` (East Asian wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def match_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of every occurrence of any term (case-insensitive),
    in order and not overlapping (the longest term wins where several start together)."""
    words = sorted({t for t in terms if t}, key=len, reverse=True)
    if not words:
        return []
    pattern = re.compile("|".join(map(re.escape, words)), re.IGNORECASE)
    return [m.span() for m in pattern.finditer(text)]


def snippet(text: str, terms: Sequence[str], width: int) -> list[tuple[str, bool]]:
    """At most ``width`` columns of ``text`` as ``(segment, matched)`` pairs.

    Starts at the beginning, or shortly before the first match of ``terms`` if that would
    not be visible otherwise; a cut is shown by ``…`` at either end.
    """
    flat = " ".join(text.split())
    spans = match_spans(flat, terms)
    start = 0
    if spans and columns(flat[: spans[0][1]]) > width - 1:
        start = max(0, spans[0][0] - CONTEXT)
        space = flat.find(" ", start, spans[0][0])
        start = space + 1 if space >= 0 else start
    budget = width - (1 if start else 0)
    if columns(flat[start:]) > budget:
        budget -= 1
    end, used = start, 0
    while end < len(flat) and used + columns(flat[end]) <= budget:
        used += columns(flat[end])
        end += 1
    segments: list[tuple[str, bool]] = [("…", False)] if start else []
    pos = start
    for lo, hi in spans:
        lo, hi = max(lo, start), min(hi, end)
        if lo >= hi:
            continue
        if lo > pos:
            segments.append((flat[pos:lo], False))
        segments.append((flat[lo:hi], True))
        pos = hi
    if end > pos:
        segments.append((flat[pos:end], False))
    if end < len(flat):
        segments.append(("…", False))
    return segments
