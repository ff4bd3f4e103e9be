"""Reciprocal rank fusion of several rankings (Cormack, Clarke & Büttcher, 2009).

A chunk's fused score is ``Σ 1 / (K + rank)`` over the rankings it appears in (rank from 1),
with ``K = 60``: at most ``n / 61`` for ``n`` rankings. Only ranks count, so scores of
different kinds (cosine, bm25) need no calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RRF_K = 60


def rrf(rankings: Mapping[str, Sequence[int]], k: int = RRF_K) -> list[tuple[int, float, tuple[str, ...]]]:
    """Fuse ``{signal name: chunk ids best first}``: ``(chunk id, score, signals)`` best first.

    ``signals`` names the rankings the chunk appears in, in the order of ``rankings``;
    ties keep the order of first appearance.
    """
    scores: dict[int, float] = {}
    signals: dict[int, list[str]] = {}
    for name, ids in rankings.items():
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
            signals.setdefault(chunk_id, []).append(name)
    order = sorted(scores, key=lambda i: -scores[i])
    return [(i, scores[i], tuple(signals[i])) for i in order]
