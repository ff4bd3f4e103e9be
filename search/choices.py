"""The named choices of the query side, with those of the write side, in one cheap module:
the CLI and the HTTP server build their option lists and schemas from these.

``Mode`` and ``GroupBy`` are ``Literal`` types; their tuples list the names in order.
"""

from __future__ import annotations

from typing import Literal, get_args

from indexer.choices import ENGINES, INDEX_TYPES, PRECISIONS, Engine, Precision

Mode = Literal["dense", "lexical", "hybrid"]
"""``dense``: cosine of embeddings; ``lexical``: full text (whole tokens, ranked by term rarity); ``hybrid``: both, fused by rank."""
MODES: tuple[str, ...] = get_args(Mode)

GroupBy = Literal["document"]
"""``document``: the best chunk of each document."""
GROUP_BY: tuple[str, ...] = get_args(GroupBy)

__all__ = ["ENGINES", "GROUP_BY", "INDEX_TYPES", "MODES", "PRECISIONS", "Engine", "GroupBy", "Mode", "Precision"]
