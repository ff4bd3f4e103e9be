"""What the live index holds that a search filter can name: languages, metadata keys, sources.

Read by the query side when a filter matches nothing, to say why; never on the path of a
search that finds hits. Each function reads one moment of the store under its lock and is
sized for large indexes: the existence checks stop at the first match, the source lookups
walk the ``documents (source)`` index, and :func:`metadata_keys` reads at most
:data:`KEY_SAMPLE` documents (about 2 µs per document and key: docs/search.md has the
figures). Run them inside :meth:`~store.database.MetaStore.budget`: :func:`chunk_languages`
reads every live chunk, and an existence check that finds nothing reads every row it could.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.filtering import Filter, sql_of
from store.schema import LIVE, LIVE_CHUNKS

if TYPE_CHECKING:
    from store.database import MetaStore

KEY_SAMPLE = 20_000
"""Documents (the newest live ones) whose metadata :func:`metadata_keys` tallies."""


@dataclass(frozen=True)
class KeyTally:
    """Metadata keys of the live documents.

    Attributes:
        counts: key path (``year``, ``author.name``: top-level keys and the keys of objects
            under them) → documents that have it, most frequent first.
        documents: documents read; ``complete`` when that is every live document.
    """

    counts: dict[str, int]
    documents: int
    complete: bool


def chunk_languages(meta: MetaStore) -> dict[str, int]:
    """Live chunks per language (the chunk's, else its document's), most frequent first;
    chunks of no known language are not counted. Reads every live chunk."""
    with meta.lock:
        rows = meta.conn.execute(
            f"SELECT coalesce(c.lang, d.lang) AS l, count(*) FROM {LIVE_CHUNKS} AND l IS NOT NULL "
            "GROUP BY l ORDER BY 2 DESC, l"
        ).fetchall()
    return {str(lang): int(n) for lang, n in rows}


def any_chunk(meta: MetaStore, filt: Filter) -> bool:
    """Whether a live chunk passes ``filt`` (stops at the first)."""
    condition, params = sql_of(filt)
    with meta.lock:
        row = meta.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {LIVE_CHUNKS} AND ({condition}))", params).fetchone()
    return bool(row[0])


def any_document(meta: MetaStore, filt: Filter) -> bool:
    """Whether a live document passes ``filt``, a filter of ``source`` and ``where`` only
    (stops at the first)."""
    if filt.langs is not None:
        raise ValueError("any_document takes no language filter: use any_chunk")
    condition, params = sql_of(filt)
    with meta.lock:
        row = meta.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM documents d WHERE {LIVE} AND ({condition}))", params
        ).fetchone()
    return bool(row[0])


def has_key(meta: MetaStore, key: str) -> bool:
    """Whether a live document's metadata has the key path ``key`` (dotted), with any value,
    ``null`` included (stops at the first)."""
    with meta.lock:
        row = meta.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM documents d WHERE {LIVE} AND json_type(d.metadata, ?) IS NOT NULL)",
            ("$." + key,),
        ).fetchone()
    return bool(row[0])


def metadata_keys(meta: MetaStore, sample: int = KEY_SAMPLE) -> KeyTally:
    """The metadata keys of the newest ``sample`` live documents (see :class:`KeyTally`)."""
    tally: Counter[str] = Counter()
    with meta.lock, meta.snapshot():
        docs = meta.conn.execute(
            f"SELECT id, metadata FROM documents d WHERE {LIVE} ORDER BY id DESC LIMIT ?", (sample,)
        ).fetchall()
        live = int(meta.conn.execute(f"SELECT count(*) FROM documents d WHERE {LIVE}").fetchone()[0])
        if docs:
            low = docs[-1][0]
            rows = meta.conn.execute(
                f"""SELECT j.key, NULL FROM documents d, json_each(d.metadata) j
                    WHERE {LIVE} AND d.id >= ? AND d.metadata != '{{}}'
                    UNION ALL
                    SELECT j.key, k.key FROM documents d, json_each(d.metadata) j, json_each(j.value) k
                    WHERE {LIVE} AND d.id >= ? AND j.type = 'object'""",
                (low, low),
            )
            tally.update(str(key) if sub is None else f"{key}.{sub}" for key, sub in rows)
    counts = dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))
    return KeyTally(counts, len(docs), len(docs) >= live)


def document_source(meta: MetaStore, doc_id: str) -> str | None:
    """The source of the live document with this id, or ``None``."""
    with meta.lock:
        row = meta.conn.execute(f"SELECT source FROM documents d WHERE doc_id = ? AND {LIVE}", (doc_id,)).fetchone()
    return None if row is None else str(row[0])


def sources_near(meta: MetaStore, probes: Sequence[str], n: int = 3) -> list[str]:
    """Distinct live sources that sort next to each probe (``n`` on either side), in order
    of the probes: candidates for a "did you mean" (uses the ``documents (source)`` index)."""
    found: dict[str, None] = {}
    with meta.lock:
        for probe in probes:
            for op, order in ((">=", "ASC"), ("<", "DESC")):
                rows = meta.conn.execute(
                    f"SELECT DISTINCT source FROM documents d WHERE source {op} ? AND {LIVE} "
                    f"ORDER BY source {order} LIMIT ?",
                    (probe, n),
                )
                found.update((str(r[0]), None) for r in rows)
    return list(found)
