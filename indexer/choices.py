"""The named choices of the write side, in one place, cheap to import (the CLI builds its
option lists from them without loading FAISS or torch).

``Engine`` and ``Precision`` are ``Literal`` types; their tuples list the names in order.
"""

from __future__ import annotations

from typing import Literal, get_args

from store.index_types import INDEX_TYPES

Engine = Literal["local", "ray"]
"""Where a build reads, chunks and embeds: this process, or a Ray cluster."""
ENGINES: tuple[str, ...] = get_args(Engine)

Precision = Literal["auto", "fp32", "bf16", "ov-bf16", "int8"]
"""The arithmetic a transformer model runs in (``auto``: the fastest that agrees with fp32;
``ov-bf16``: bf16 through OpenVINO instead of torch)."""
PRECISIONS: tuple[str, ...] = get_args(Precision)

__all__ = ["ENGINES", "INDEX_TYPES", "PRECISIONS", "Engine", "Precision"]
