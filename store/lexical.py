"""Lexical search over the live chunks: whole-token matching, looked up through SQLite FTS5.

The query syntax is :mod:`store.lexical_query`'s (terms, ``"phrases"``, ``*``, ``OR``,
``+term``, ``-term``); what a match is, :mod:`store.lexical_match`'s. The full-text table
``chunks_fts`` uses the trigram tokenizer, which finds substrings of at least
:data:`MIN_TERM` characters in any script: it proposes candidates (every chunk holding the
terms' characters, inside longer tokens or not), and each candidate's text is then checked
in Python. Terms looked up: the required ones if any, else the optional ones. A term (or a
phrase with no word) of fewer than :data:`MIN_TERM` characters cannot be looked up: it only
ranks, requires or excludes among the candidates of the others, and when no term of a query
can be looked up every live chunk is read (narrowed by ``instr`` where a term's characters
are ASCII or caseless).

Score (higher is better): the sum, over the positive clauses a chunk satisfies, of each
clause's weight ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))`` (as in Lucene's bm25), ``N`` the
chunks of the index, ``n`` those holding the clause's characters (``n = N`` for a clause too
short to look up, so it weighs next to nothing and only breaks ties). So a chunk with more of
the terms ranks above one with fewer of equally rare terms, and rare terms outweigh common
ones. Ties go to the better ``bm25`` of the trigram match, then to the lower chunk id. When
nothing can be looked up, the score is the number of positive clauses satisfied. Candidates
are checked best upper bound first, and checking stops once no unchecked one can enter the
top ``limit``. Call it through :meth:`store.database.MetaStore.lexical_search`, inside its
time budget.
"""

from __future__ import annotations

import math
import sqlite3

from store.errors import IndexNotReady, MissingDependency
from store.filtering import Filter, sql_of
from store.lexical_match import QueryMatcher
from store.lexical_query import MAX_TERM_CHARS, MAX_TERMS, Clause, LexicalQuery, Term, parse, terms
from store.schema import FTS_MIN_SQLITE, LIVE

MIN_TERM = 3
"""The trigram tokenizer indexes 3-character substrings: shorter terms cannot be looked up."""
WEIGHT_UNIT = 1_000_000
"""Clause weights are whole numbers of ``1 / WEIGHT_UNIT`` (at least one), so that sums in SQL
and in Python agree exactly; a score is the sum divided by this."""
COMMON = 0.5
"""See :func:`_weights`."""
CHECK_BATCH = 256
"""Candidates whose texts are read and checked at a time (after the first batch, only while
an unchecked candidate could still enter the top ``limit``)."""

__all__ = ["MAX_TERMS", "MAX_TERM_CHARS", "MIN_TERM", "lookup", "search", "terms"]


def search(conn: sqlite3.Connection, query: str, limit: int, filt: Filter | None = None) -> list[tuple[int, float]]:
    """Up to ``limit`` ``(chunk id, score)`` of live chunks matching ``query`` and ``filt``, best
    first (score as in the module's docstring). Raises :class:`~store.errors.InvalidInput` for
    bad syntax (see :func:`store.lexical_query.parse`)."""
    parsed = parse(query)
    matcher = QueryMatcher(parsed)
    condition, params = sql_of(filt)
    match = lookup(parsed)
    if match is None:
        return _scan(conn, parsed, matcher, limit, condition, params)
    _check_fts(conn)
    weights, held = _weights(conn, parsed)
    bound, bound_params = _bound(parsed, weights, held)
    # Candidates best bound first (SQLite sorts ids and numbers only; texts are read per batch).
    cursor = conn.execute(
        f"""SELECT c.id, bm25(chunks_fts) AS b, {bound} AS bound FROM chunks_fts
            JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document
            WHERE chunks_fts MATCH ? AND {LIVE} AND ({condition}) ORDER BY bound DESC, b, c.id""",
        [*bound_params, match, *params],
    )
    best: list[tuple[int, float, int]] = []  # (-score in weight units, bm25, id): ascending = best first
    try:
        while batch := cursor.fetchmany(CHECK_BATCH):
            first_id, first_bm25, first_bound = batch[0]
            if len(best) == limit and best[-1] < (-first_bound, first_bm25, first_id):
                break  # no candidate left can rank above the last one kept
            marks = ",".join("?" * len(batch))
            texts = dict(conn.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", [r[0] for r in batch]))
            for chunk_id, bm25, _ in batch:
                flags = matcher.matched(texts[chunk_id])
                if flags is not None:
                    score = sum(w for w, hit in zip(weights, flags, strict=True) if hit)
                    best.append((-score, float(bm25), int(chunk_id)))
            best.sort()
            del best[limit:]
    finally:
        cursor.close()
    return [(i, -score / WEIGHT_UNIT) for score, _, i in best]


def lookup(query: LexicalQuery) -> str | None:
    """The FTS5 ``MATCH`` expression whose rows include every chunk matching ``query`` (bar
    the optional terms too short to look up), or ``None`` if no term can be looked up."""
    required = query.of("required")
    if required:
        found = [e for c in required if (e := _clause_match(c, complete=True))]
        return " AND ".join(found) or None
    found = [e for c in query.of("optional") if (e := _clause_match(c, complete=False))]
    return " OR ".join(found) or None


def _term_match(term: Term) -> str | None:
    """``"piece" AND …`` over the pieces of ``term`` long enough to look up, or ``None``."""
    pieces = ['"' + p.replace('"', '""') + '"' for p in term.pieces if len(p) >= MIN_TERM]
    return "(" + " AND ".join(pieces) + ")" if pieces else None


def _clause_match(clause: Clause, complete: bool) -> str | None:
    """The alternatives of ``clause`` OR-ed; ``None`` if none (or, if ``complete``, not all)
    of them can be looked up."""
    found = [_term_match(t) for t in clause.terms]
    if not any(found) or (complete and not all(found)):
        return None
    return "(" + " OR ".join(e for e in found if e) + ")"


def _weights(conn: sqlite3.Connection, query: LexicalQuery) -> tuple[list[int], list[str | None]]:
    """For each positive clause (in :meth:`LexicalQuery.positive` order): its idf weight (see
    the module's docstring) in units of :data:`WEIGHT_UNIT`, and the ``MATCH`` expression that
    tells which candidates hold it (``None``: taken as held by all; for clauses that cannot be
    looked up, and for those held by more than :data:`COMMON` of the chunks, which weigh
    little and would cost the most to test)."""
    total = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
    weights: list[int] = []
    held: list[str | None] = []
    for clause in query.positive():
        expression = _clause_match(clause, complete=True)
        n = total
        if expression is not None:
            n = int(
                conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", [expression]).fetchone()[0]
            )
        weights.append(max(1, round(WEIGHT_UNIT * math.log(1.0 + (total - n + 0.5) / (n + 0.5)))))
        held.append(expression if n <= COMMON * total else None)
    return weights, held


def _bound(query: LexicalQuery, weights: list[int], held: list[str | None]) -> tuple[str, list[object]]:
    """An SQL expression (over ``c.id``, with its parameters) bounding a candidate's score from
    above: the weights of the required clauses and of the optional clauses whose characters it
    holds (those without a test in ``held``: always). Exact for a :meth:`LexicalQuery.steady` query."""
    optional = [i for i, c in enumerate(query.positive()) if c.role == "optional" and held[i] is not None]
    base = sum(w for i, w in enumerate(weights) if i not in optional)
    if query.steady() or not optional:
        return "?", [sum(weights)]
    sql = " + ".join(["?"] + ["? * (c.id IN (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?))"] * len(optional))
    return sql, [base, *[v for i in optional for v in (weights[i], held[i])]]


def _scan(
    conn: sqlite3.Connection,
    query: LexicalQuery,
    matcher: QueryMatcher,
    limit: int,
    condition: str,
    params: list[object],
) -> list[tuple[int, float]]:
    """Lexical search reading every live chunk (narrowed by ``instr`` where it can be): for
    queries with no term long enough to look up. Scores are the clause counts."""
    narrow, values = _narrowing(query)
    rows = conn.execute(
        f"""SELECT c.id, c.text FROM chunks c JOIN documents d ON d.id = c.document
            WHERE {LIVE} AND ({condition}) AND ({narrow}) ORDER BY c.id""",
        [*params, *values],
    )
    found: list[tuple[int, int]] = []
    try:
        for chunk_id, text in rows:
            flags = matcher.matched(text)
            if flags is not None:
                found.append((-sum(flags), int(chunk_id)))
                if query.steady() and len(found) == limit:
                    break
    finally:
        rows.close()
    found.sort()
    return [(i, float(-n)) for n, i in found[:limit]]


def _narrowing(query: LexicalQuery) -> tuple[str, list[str]]:
    """An SQL condition on ``c.text`` that every chunk matching ``query`` meets (``"1"`` if
    none is known): pieces that must occur, tested with ``instr(lower(…))``, which is exact
    for pieces of ASCII and caseless (e.g. CJK) characters only, so only those are tested."""
    required = query.of("required")
    groups: list[list[list[str]]] = []  # clauses, their alternatives, their testable pieces
    for clause in required or query.of("optional"):
        alternatives = [_testable(t) for t in clause.terms]
        if all(alternatives):
            groups.append(alternatives)
        elif not required:
            return "1", []  # this optional clause alone may match chunks the others would not
    if not groups:
        return "1", []
    test = "instr(lower(c.text), ?) > 0"
    sql = (" AND " if required else " OR ").join(
        "(" + " OR ".join("(" + " AND ".join([test] * len(pieces)) + ")" for pieces in alternatives) + ")"
        for alternatives in groups
    )
    return sql, [p for alternatives in groups for pieces in alternatives for p in pieces]


def _testable(term: Term) -> list[str]:
    """The lower-cased pieces of ``term`` that ``instr(lower(…))`` finds exactly (empty if none)."""
    return [p.lower() for p in term.pieces if all(ch.isascii() or ch.lower() == ch.upper() for ch in p)]


def _check_fts(conn: sqlite3.Connection) -> None:
    """Raise if this index cannot look terms up: no full-text table, or an SQLite too old."""
    has_fts = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
    if not has_fts and sqlite3.sqlite_version_info < FTS_MIN_SQLITE:
        raise MissingDependency(
            f"lexical search needs SQLite 3.34 or newer (for the FTS5 trigram tokenizer); this Python has "
            f"SQLite {sqlite3.sqlite_version}. Use mode='dense', or a Python built with a newer SQLite."
        )
    if not has_fts:
        raise IndexNotReady(
            "this index has no full-text table yet (it was written by an older babelindex); "
            "open it for writing once, e.g. with `indexer build` or `indexer repair`, to add it."
        )
