"""Context for retrieval-augmented generation: the top passages as numbered, cited text.

::

    from search import Index
    from search.rag import context

    index = Index.open("my.idx")
    prompt = f"Answer from the sources below, citing them as [n].\\n\\n{context(index, question, k=5)}"

Each passage comes with a header that cites it exactly::

    [1] source: de/vulkan.md | doc_id: de/vulkan.md | chars 0-180 | lang: de | score: 0.412
    Ein Vulkan bricht aus, wenn Magma aus der Tiefe aufsteigt. …

``chars START-END`` are character offsets in the document's extracted text: the passage is
exactly ``text[START:END]``. Passages are separated by a blank line, best first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.hit import Hit
from store.errors import InvalidInput

ELLIPSIS = "…"
MIN_PART = 40
"""The fewest characters of a passage worth giving as a cut passage."""


def context(index: Any, query: str, k: int = 5, max_chars: int | None = None, **search_kwargs: Any) -> str:
    """The ``k`` passages nearest to ``query`` as numbered context text with citations.

    Args:
        index: an open :class:`~search.Index`, or the path of an index directory (opened
            and closed here).
        query: the question, in any language.
        k: passages to retrieve (before ``max_chars`` drops any).
        max_chars: the most characters the returned text may have (headers included);
            ``None`` for no limit. See :func:`format_context`.
        search_kwargs: passed to ``index.search`` (e.g. ``nprobe``).
    Returns:
        The context text (``str``); ``""`` when nothing was found or fits.
    """
    if isinstance(index, str | Path):
        from search.index import Index

        with Index.open(index) as opened:
            return format_context(opened.search(query, k=k, **search_kwargs), max_chars)
    return format_context(index.search(query, k=k, **search_kwargs), max_chars)


def format_context(hits: Sequence[Hit], max_chars: int | None = None) -> str:
    """Numbered, cited passages from hits already found (e.g. by a filtered search).

    With ``max_chars``, whole passages are kept in rank order while they fit; the first one
    that does not is cut at a word boundary (ending in ``…``, its citation giving the offsets
    of the part kept) if at least :data:`MIN_PART` characters of it fit, and the text ends
    there. The result never exceeds ``max_chars`` characters.
    """
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
        raise InvalidInput(f"max_chars must be a positive number of characters or None, not {max_chars!r}.")
    parts: list[str] = []
    used = 0
    for number, hit in enumerate(hits, start=1):
        sep = "\n\n" if parts else ""
        block = _header(number, hit, hit.end) + "\n" + hit.text
        if max_chars is None or used + len(sep) + len(block) <= max_chars:
            parts.append(sep + block)
            used += len(sep) + len(block)
            continue
        cut = _cut(number, hit, max_chars - used - len(sep))
        if cut:
            parts.append(sep + cut)
        break
    return "".join(parts)


def _header(number: int, hit: Hit, end: int) -> str:
    lang = f" | lang: {hit.lang}" if hit.lang else ""
    return (
        f"[{number}] source: {hit.source} | doc_id: {hit.doc_id} | chars {hit.start}-{end}{lang}"
        f" | score: {hit.score:.3f}"
    )


def _cut(number: int, hit: Hit, room: int) -> str:
    """The passage's header and as much of its text as fits in ``room`` characters, or ``""``."""
    # The header is longest with the passage's full end offset: size the text for that one.
    keep = room - len(_header(number, hit, hit.end)) - 1 - len(ELLIPSIS)
    if keep < MIN_PART:
        return ""
    text = hit.text[:keep]
    space = text.rfind(" ")
    if space >= MIN_PART:  # end at a word boundary when one is near enough
        text = text[:space]
    text = text.rstrip()
    return _header(number, hit, hit.start + len(text)) + "\n" + text + ELLIPSIS
