"""Lexical search over the live chunks: SQLite FTS5 (trigram tokenizer) ranked by bm25.

The trigram tokenizer matches substrings of at least three characters, case-insensitively,
in any script (so also Chinese and Japanese, which have no spaces). The query is split on
white space; each term of three or more characters is a quoted phrase, and a chunk matches
if it contains any term. Scores are ``-bm25`` (higher is better). When every term is shorter
than three characters the trigram index cannot help: chunks containing a term (``LIKE``,
case-insensitive for ASCII only) are ranked by how many of the terms they contain.
Call it through :meth:`store.database.MetaStore.lexical_search`.
"""

from __future__ import annotations

import sqlite3

from store.errors import IndexNotReady, MissingDependency
from store.filtering import Filter, sql_of
from store.schema import FTS_MIN_SQLITE, LIVE

MIN_TERM = 3
"""The trigram tokenizer indexes 3-character substrings: shorter terms need ``LIKE``."""
MAX_TERMS = 32
"""Distinct terms of a query that lexical search uses (the first ones): the work of one
query stays bounded however long the text (a pasted paragraph, a hostile request)."""
MAX_TERM_CHARS = 256
"""Characters of one term that lexical search uses (the first ones)."""


def terms(query: str) -> list[str]:
    """The first :data:`MAX_TERMS` distinct white-space separated terms of ``query``, in order,
    each cut to :data:`MAX_TERM_CHARS` characters."""
    return list(dict.fromkeys(t[:MAX_TERM_CHARS] for t in query.split()))[:MAX_TERMS]


def search(conn: sqlite3.Connection, query: str, limit: int, filt: Filter | None = None) -> list[tuple[int, float]]:
    """Up to ``limit`` ``(chunk id, score)`` of live chunks matching ``query`` and ``filt``, best first."""
    words = terms(query)
    long = [t for t in words if len(t) >= MIN_TERM]
    condition, params = sql_of(filt)
    if not long:
        likes = " + ".join("(instr(lower(c.text), lower(?)) > 0)" for _ in words)
        rows = conn.execute(
            f"""SELECT id, score FROM (SELECT c.id AS id, {likes} AS score FROM chunks c
                JOIN documents d ON d.id = c.document WHERE {LIVE} AND ({condition}))
                WHERE score > 0 ORDER BY score DESC, id LIMIT ?""",
            [*words, *params, limit],
        ).fetchall()
        return [(int(i), float(s)) for i, s in rows]
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
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in long)
    rows = conn.execute(
        f"""SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts
            JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document
            WHERE chunks_fts MATCH ? AND {LIVE} AND ({condition})
            ORDER BY bm25(chunks_fts), c.id LIMIT ?""",
        [match, *params, limit],
    ).fetchall()
    return [(int(i), float(s)) for i, s in rows]
