"""The FAISS index types an index can use, by name, and how ``auto`` chooses: no FAISS import.

* ``flat``: ``IDMap2,Flat``, exact search; chosen by ``auto`` up to :data:`FLAT_MAX` chunks.
* ``ivf``: ``IVF<nlist>,Flat``; chosen by ``auto`` above :data:`FLAT_MAX` chunks.
* ``ivf-sq8``: ``IVF<nlist>,SQ8``, one byte per dimension.
* ``ivf-pq``: ``IVF<nlist>,PQ<m>``, ``m ≈ d/8`` one-byte codes per vector.
* ``ivf-opq``: ``OPQ<m>,IVF<nlist>,PQ<m>``: the same codes after a learned rotation.
* ``hnsw``: ``IDMap2,HNSW32``.

See :mod:`store.faiss_index` for how each is built and tuned.
"""

from __future__ import annotations

import math

from store.errors import InvalidInput

INDEX_TYPES = ("auto", "flat", "ivf", "ivf-sq8", "ivf-pq", "ivf-opq", "hnsw")
"""Every name ``--index-type`` (and ``index_type=``) accepts."""
DEFAULT_INDEX_TYPE = "auto"
IVF_KINDS = ("ivf", "ivf-sq8", "ivf-pq", "ivf-opq")
PQ_KINDS = ("ivf-pq", "ivf-opq")
UPDATABLE_KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq", "ivf-opq")
"""Kinds whose versions can drop ids in place; HNSW is rebuilt when ids go."""
FLAT_MAX = 20_000
"""``auto`` picks exact search up to this many chunks, IVF above."""
PQ_MIN_VECTORS = 1000
"""Below this many vectors ``ivf-pq`` and ``ivf-opq`` cannot train their 256-code books well: flat is used."""


def require_index_type(name: str) -> str:
    """``name`` if it is one of :data:`INDEX_TYPES`, else :class:`InvalidInput` listing them."""
    if name not in INDEX_TYPES:
        raise InvalidInput(f"unknown index type {name!r}; choose one of {', '.join(INDEX_TYPES)}")
    return name


def choose_kind(n: int, requested: str) -> str:
    """The index kind for ``n`` chunks (``requested`` may be ``auto``)."""
    require_index_type(requested)
    if requested == "auto":
        return "flat" if n <= FLAT_MAX else "ivf"
    if requested in PQ_KINDS and n < PQ_MIN_VECTORS:
        return "flat"
    return requested


def choose_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: ``4·√n``, capped at ``n / 39`` and at least 1."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))
