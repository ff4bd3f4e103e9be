"""The syntax of lexical queries: a query string becomes a :class:`LexicalQuery`.

Items are separated by white space::

    word        a term, matched as whole tokens: `E-204` finds "E-204" and "(E-204)", not
                "E-2045"; punctuation at its edges is ignored (`E-204?` is `E-204`)
    "a b"       a phrase: these tokens in this order, any white space between them; inside
                quotes every character is literal (`"-x"`, `"OR"`, `"a*"`)
    E-2*  *204  `*` at the start and/or end of a term: the match may begin / end inside a
                token (`E-2*` finds "E-204", `*arehou*` finds "warehouse")
    a OR b      alternatives (upper-case `OR` only): one part of the query, counted once
    +word       required: every result contains it (also `+"a b"`)
    -word       excluded: no result contains it (also `-"a b"`, `-E-2*`)

A query is parsed whole (errors are reported wherever they are), then only its first
:data:`MAX_TERMS` distinct terms are kept. Errors are :class:`~store.errors.InvalidInput`
with a message that says what to write instead. How terms match text is
:mod:`store.lexical_match`'s job; running the query is :mod:`store.lexical`'s.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from store.errors import InvalidInput

MAX_TERMS = 32
"""Distinct terms of a query that lexical search uses (the first ones; each alternative of an
``OR`` and each phrase counts as one): the work of one query stays bounded however long the
text (a pasted paragraph, a hostile request)."""
MAX_TERM_CHARS = 256
"""Characters of one term or phrase that lexical search uses (the first ones; a cut term then
matches as a prefix, as if it ended in ``*``)."""
OR = "OR"
"""The operator between alternatives; any other spelling (``or``, ``Or``) is a term."""

Role = Literal["optional", "required", "excluded"]


@dataclass(frozen=True)
class Term:
    """Text to find case-insensitively, as whole tokens unless a side is open.

    ``text``: the characters to find (a phrase's words separated by single spaces, each of
    which stands for any run of white space in a chunk); ``phrase``: it was quoted;
    ``open_start`` / ``open_end``: the match may begin / end inside a token (a ``*`` on that
    side, or, for ``open_end``, the term was cut to :data:`MAX_TERM_CHARS` characters).
    """

    text: str
    phrase: bool = False
    open_start: bool = False
    open_end: bool = False

    @property
    def pieces(self) -> tuple[str, ...]:
        """The white-space separated parts of ``text`` (one for a term, the words of a phrase)."""
        return tuple(self.text.split(" "))

    def key(self) -> tuple[str, bool, bool]:
        """What makes two terms find the same text (case and quoting aside)."""
        return (self.text.lower(), self.open_start, self.open_end)


@dataclass(frozen=True)
class Clause:
    """One part of a query: ``terms`` (the alternatives of an ``OR``, else one term), any of
    which satisfies it, and its ``role``: ``optional``, ``required`` (``+``) or ``excluded`` (``-``)."""

    terms: tuple[Term, ...]
    role: Role = "optional"


@dataclass(frozen=True)
class LexicalQuery:
    """A parsed query: its clauses in query order, at least one of them not excluded.

    A chunk matches when it satisfies every required clause, no excluded clause and, if
    there is no required clause, at least one optional clause.
    """

    clauses: tuple[Clause, ...]

    def of(self, role: Role) -> tuple[Clause, ...]:
        """The clauses with this role, in query order."""
        return tuple(c for c in self.clauses if c.role == role)

    def positive(self) -> tuple[Clause, ...]:
        """The clauses that are not excluded (required and optional), in query order."""
        return tuple(c for c in self.clauses if c.role != "excluded")

    def steady(self) -> bool:
        """Whether every matching chunk satisfies the same positive clauses (there is no
        optional clause, or one optional clause alone)."""
        optional = len(self.of("optional"))
        return optional == 0 or (optional == 1 and not self.of("required"))


@dataclass(frozen=True)
class _Item:
    """One white-space separated item: its 0-based ``position``, ``sign`` (``+``, ``-`` or
    ``""``), and either ``term`` (``None`` when nothing searchable is left) or ``is_or``."""

    position: int
    sign: str
    term: Term | None
    is_or: bool = False


def parse(query: str) -> LexicalQuery:
    """The :class:`LexicalQuery` of ``query`` (see the module's docstring for the syntax).

    Raises :class:`InvalidInput` for an unbalanced ``"``, an ``OR`` that does not stand
    between two optional terms, a term both searched for and excluded, and a query with no
    term to search for (only ``-term``s, or only punctuation).
    """
    clauses: list[tuple[Role, list[Term]]] = []
    pending_or: int | None = None  # the position of an OR waiting for its right-hand term
    previous: _Item | None = None
    for item in _items(query):
        if item.is_or:
            if previous is None or previous.is_or:
                raise InvalidInput(_lonely_or(item.position))
            if previous.sign:
                raise InvalidInput(_signed_or(item.position, previous.sign))
            pending_or = item.position
        elif item.term is not None:
            role: Role = "required" if item.sign == "+" else "excluded" if item.sign == "-" else "optional"
            if pending_or is not None:
                if item.sign:
                    raise InvalidInput(_signed_or(pending_or, item.sign))
                clauses[-1][1].append(item.term)
                pending_or = None
            else:
                clauses.append((role, [item.term]))
        else:
            continue  # nothing searchable: as if the item were not there
        previous = item
    if pending_or is not None:
        raise InvalidInput(_lonely_or(pending_or))
    return _checked(_bounded(_distinct(clauses)))


def terms(query: str) -> list[str]:
    """The texts of the terms ``query`` searches for (not the excluded ones), in query order:
    what a display of its hits highlights. Raises :class:`InvalidInput` as :func:`parse` does."""
    return [t.text for c in parse(query).clauses if c.role != "excluded" for t in c.terms]


def _items(query: str) -> Iterator[_Item]:
    """The items of ``query``: phrases (``"…"``, with an optional sign just before), ``OR``,
    and words (runs of characters other than white space and ``"``)."""
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        start, sign = i, ""
        if query[i] in "+-" and i + 1 < n and query[i + 1] == '"':
            sign, i = query[i], i + 1
        if query[i] == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise InvalidInput(
                    f'the lexical query has an unbalanced " (character {i + 1}): close the phrase with a '
                    'second ", or remove the quote.'
                )
            yield _Item(start, sign, _phrase(query[i + 1 : end]))
            i = end + 1
            continue
        j = i
        while j < n and not query[j].isspace() and query[j] != '"':
            j += 1
        word, i = query[start:j], j
        if word == OR:
            yield _Item(start, "", None, is_or=True)
        elif word[0] in "+-":
            yield _Item(start, word[0], _word(word[1:]))
        else:
            yield _Item(start, "", _word(word))


def _is_edge_punctuation(ch: str) -> bool:
    """Punctuation ignored at the edges of an unquoted term (not ``*``, nor ``_``, which is
    part of tokens)."""
    return ch not in "*_" and unicodedata.category(ch).startswith("P")


def _word(word: str) -> Term | None:
    """The term of an unquoted word, or ``None`` if nothing searchable is left."""
    lo, hi = 0, len(word)
    while lo < hi and _is_edge_punctuation(word[lo]):
        lo += 1
    while hi > lo and _is_edge_punctuation(word[hi - 1]):
        hi -= 1
    word = word[lo:hi]
    text = word.strip("*")
    if not text:
        return None
    return _cut(Term(text, open_start=word.startswith("*"), open_end=word.endswith("*")))


def _phrase(content: str) -> Term | None:
    """The term of a quoted phrase (white space runs become single spaces), or ``None`` if empty."""
    text = " ".join(content.split())
    return _cut(Term(text, phrase=True)) if text else None


def _cut(term: Term) -> Term:
    """``term`` cut to :data:`MAX_TERM_CHARS` characters (then open at its end)."""
    if len(term.text) <= MAX_TERM_CHARS:
        return term
    text = term.text[:MAX_TERM_CHARS].rstrip(" ")
    return Term(text, term.phrase, term.open_start, open_end=True)


def _distinct(clauses: list[tuple[Role, list[Term]]]) -> list[Clause]:
    """The clauses without repeats (of a clause, or of an alternative within one)."""
    seen: set[tuple[Role, tuple[tuple[str, bool, bool], ...]]] = set()
    out: list[Clause] = []
    for role, alternatives in clauses:
        firsts: dict[tuple[str, bool, bool], Term] = {}
        for term in alternatives:
            firsts.setdefault(term.key(), term)
        unique = tuple(firsts.values())
        key = (role, tuple(sorted(t.key() for t in unique)))
        if key not in seen:
            seen.add(key)
            out.append(Clause(unique, role))
    return out


def _bounded(clauses: list[Clause]) -> list[Clause]:
    """The clauses holding the first :data:`MAX_TERMS` terms."""
    out: list[Clause] = []
    left = MAX_TERMS
    for clause in clauses:
        if left == 0:
            break
        out.append(Clause(clause.terms[:left], clause.role))
        left -= len(out[-1].terms)
    return out


def _checked(clauses: list[Clause]) -> LexicalQuery:
    """The query of ``clauses``, if it searches for something and contradicts nothing."""
    searched = {t.key(): t for c in clauses if c.role != "excluded" and len(c.terms) == 1 for t in c.terms}
    for clause in clauses:
        if clause.role == "excluded" and clause.terms[0].key() in searched:
            text = clause.terms[0].text
            raise InvalidInput(
                f"the lexical query both searches for and excludes {text!r}, so nothing can match: remove one."
            )
    if not any(c.role != "excluded" for c in clauses):
        if clauses:
            raise InvalidInput(
                "the lexical query only excludes terms (-term): add a term to search for, e.g. `report -draft`."
            )
        raise InvalidInput(
            "the lexical query has no term to search for (punctuation, a lone * and empty quotes are "
            'ignored): give a word, a number or a quoted phrase, e.g. `E-204` or `"red car"`.'
        )
    return LexicalQuery(tuple(clauses))


def _lonely_or(position: int) -> str:
    return (
        f"OR must stand between two terms, as in `red OR crimson` (character {position + 1} of the lexical "
        'query); to search for the word itself, write it in lower case (`or`) or quote it (`"OR"`).'
    )


def _signed_or(position: int, sign: str) -> str:
    return (
        f"OR (character {position + 1} of the lexical query) joins terms that may match; it cannot join "
        f"{'a required' if sign == '+' else 'an excluded'} term ({sign}term): put the {sign}term apart from the "
        "alternatives."
    )
