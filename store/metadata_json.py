"""What a document's stored fields may hold: metadata that is always valid, bounded JSON,
and ids and source labels of bounded length, free of characters SQLite cannot store.

Checked where documents enter (the build, upserts, imports) so that a bad one is refused
with a reason naming the field, and again where the store writes them, so that nothing
invalid ever reaches ``meta.db`` (a NaN stored as JSON breaks every filtered search).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from store.errors import InvalidInput

MAX_METADATA_BYTES = 40 * 1024
"""UTF-8 bytes of a document's metadata as JSON (Pinecone's limit per record). Metadata is
for filtering and citing, and every hit carries it: long text belongs in the text."""
MAX_METADATA_DEPTH = 16
"""Levels of nested objects and lists in metadata."""
MAX_LABEL_CHARS = 4096
"""Characters of a document id or source label (the longest path Linux allows)."""


def _unencodable(value: str) -> str | None:
    """Why ``value`` cannot be stored in JSON text (a NUL can: JSON escapes it), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (an invalid \\ud800-\\udfff escape)"
    return None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as SQLite text (a NUL character, a lone surrogate), or None."""
    return "a NUL character" if "\x00" in value else _unencodable(value)


def check_label(value: str, what: str) -> str:
    """``value`` if it can be a document's ``what`` (``id``, ``source``), else InvalidInput."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the document {what} must be a non-empty string, not {value!r}.")
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidInput(f"the document {what} has {len(value)} characters; the limit is {MAX_LABEL_CHARS}.")
    problem = text_problem(value)
    if problem:
        raise InvalidInput(f"the document {what} {value[:80]!r} holds {problem}; remove it.")
    return value


def metadata_json(metadata: Mapping[str, Any], document: str = "the document") -> str:
    """The JSON text stored for ``metadata`` (an object), or InvalidInput naming the bad field.

    Refused: NaN and infinite numbers (JSON has none), strings with lone surrogates, nesting deeper than :data:`MAX_METADATA_DEPTH`, more than
    :data:`MAX_METADATA_BYTES` in all. Keys become strings; values JSON cannot hold (dates,
    say) are stored as their ``str``.
    """
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"the metadata of {document} must be a JSON object, not {type(metadata).__name__}.")
    stack: list[tuple[str, Any, int]] = [("", metadata, 1)]
    while stack:
        path, value, depth = stack.pop()
        where = f"metadata field {path!r} of {document}" if path else f"the metadata of {document}"
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{where} is {value!r}, which JSON cannot store; use null or a string.")
        if isinstance(value, str) and (problem := _unencodable(value)):
            raise InvalidInput(f"{where} holds {problem}; remove it.")
        if isinstance(value, Mapping | list | tuple):
            if depth > MAX_METADATA_DEPTH:
                raise InvalidInput(f"{where} nests deeper than {MAX_METADATA_DEPTH} levels; flatten it.")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, child in items:
                if isinstance(key, str) and (problem := _unencodable(key)):
                    raise InvalidInput(f"a metadata key of {document} holds {problem}; remove it.")
                stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
    text = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False, default=str)
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"the metadata of {document} takes {size:,} bytes as JSON; the limit is {MAX_METADATA_BYTES:,}. "
            "Keep metadata for filtering and citing, and put long text in the document's text."
        )
    return text
