"""Whether a chunk's text holds the terms of a :class:`~store.lexical_query.LexicalQuery`.

Matching is case-insensitive (both sides through :meth:`str.lower`; accents matter). A term
matches where its characters occur (a space of a phrase: any run of white space) and, at each
end that is not open (``*``), the match is not part of a longer token: the text's character
beyond that end must not *join* the term's end character. A character joins when it is a
letter, mark or digit (Unicode categories L, M, N) or ``_``, of a script written with spaces
between words. The scripts written without them (Han, Hiragana, Katakana, Hangul, Thai, Lao,
Khmer, Myanmar, Tibetan, Yi and their kin, see :data:`UNSPACED`) never join, so their terms
match inside longer runs as substrings (``引力`` in ``月の引力によって``; Hangul is among them
because particles attach to words: ``서울`` in ``서울에서``), and a Latin term next to them
still has a boundary (``Python`` in ``Pythonで``, ``2024`` in ``2024年``).

This check runs in Python on the chunks the trigram index (or a scan) proposes.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

from store.lexical_query import LexicalQuery, Term

UNSPACED: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x109F),  # Tibetan, Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x1950, 0x19FF),  # Tai Le, New Tai Lue, Khmer symbols
    (0x1A20, 0x1AAF),  # Tai Tham
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3000, 0x31FF),  # CJK symbols (々), Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0xA4CF),  # CJK unified ideographs, Yi
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xA9E0, 0xAADF),  # Myanmar extensions, Tai Viet
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFFDC),  # half-width Katakana and Hangul
    (0x16FE0, 0x18D8F),  # Tangut, Khitan, ideographic symbols
    (0x1B000, 0x1B2FF),  # Kana supplement and extensions, Nushu
    (0x20000, 0x3FFFF),  # CJK extensions B and later, compatibility supplement
)
"""Code point ranges (inclusive) of the scripts written without spaces between words."""
_STARTS = [lo for lo, _ in UNSPACED]


def unspaced(ch: str) -> bool:
    """Whether ``ch`` (one character) belongs to a script written without spaces (:data:`UNSPACED`)."""
    code = ord(ch)
    i = bisect.bisect_right(_STARTS, code) - 1
    return i >= 0 and code <= UNSPACED[i][1]


def joins(ch: str) -> bool:
    """Whether ``ch`` (one character) continues a token: a letter, mark, digit or ``_`` of a
    script written with spaces."""
    if ch.isascii():
        return ch.isalnum() or ch == "_"
    return unicodedata.category(ch)[0] in "LMN" and not unspaced(ch)


_JOINS_MOSTLY = "[^\\W" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in UNSPACED) + "]"
"""A regex class of characters that surely join (word characters of spaced scripts): a fast
first test of a term's end in C; :func:`joins` decides the rest (marks)."""


class TermMatcher:
    """Finds one :class:`Term` in lower-cased text."""

    __slots__ = ("_left", "_pattern", "_right")

    def __init__(self, term: Term):
        text = term.text.lower()
        self._left = not term.open_start and joins(text[0])
        """Whether the match must not start inside a token."""
        self._right = not term.open_end and joins(text[-1])
        """Whether the match must not end inside a token."""
        body = r"\s+".join(map(re.escape, text.split(" ")))
        self._pattern = re.compile(body + (f"(?!{_JOINS_MOSTLY})" if self._right else ""))

    def occurs(self, low: str) -> bool:
        """Whether the term occurs in ``low`` (a text already lower-cased with :meth:`str.lower`)."""
        start = 0
        while (found := self._pattern.search(low, start)) is not None:
            begin, end = found.span()
            left_ok = not self._left or begin == 0 or not joins(low[begin - 1])
            if left_ok and (not self._right or end == len(low) or not joins(low[end])):
                return True
            start = begin + 1
        return False


class QueryMatcher:
    """Which clauses of a :class:`LexicalQuery` a text satisfies."""

    def __init__(self, query: LexicalQuery):
        self._positive = [(c.role == "required", [TermMatcher(t) for t in c.terms]) for c in query.positive()]
        self._excluded = [[TermMatcher(t) for t in c.terms] for c in query.of("excluded")]

    def matched(self, text: str) -> list[bool] | None:
        """``None`` if ``text`` does not match the query; else, for each positive clause (in
        :meth:`LexicalQuery.positive` order), whether the text satisfies it (at least one does)."""
        low = text.lower()
        flags: list[bool] = []
        for required, alternatives in self._positive:
            found = any(m.occurs(low) for m in alternatives)
            if required and not found:
                return None
            flags.append(found)
        if not any(flags) or any(any(m.occurs(low) for m in alts) for alts in self._excluded):
            return None
        return flags
