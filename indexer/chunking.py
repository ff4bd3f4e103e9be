"""Sentence-aware chunking that never exceeds the model's token limit.

Sentences come from ``sentencex`` (rules for ~300 languages, whitespace kept, so offsets
are exact). They are packed greedily into chunks of at most ``target_tokens`` tokens,
counted with the model's own tokenizer; consecutive chunks share up to ``overlap_tokens``
of whole sentences. A sentence longer than the target is cut at word boundaries (at
characters for scripts without spaces). Every non-blank character of the text lies in at
least one chunk: nothing is truncated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sentencex

from store.records import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Span:
    """A piece of a text: ``text[start:end]`` (character offsets) and its token count."""

    start: int
    end: int
    n_tokens: int


def chunk_text(
    text: str,
    count_tokens: TokenCounter,
    *,
    max_tokens: int,
    target_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    lang: str | None = None,
) -> list[Span]:
    """Split ``text`` into chunks of at most ``min(target_tokens, max_tokens)`` tokens.

    ``count_tokens`` counts content tokens of each text in a list (the model's tokenizer,
    no special tokens); ``lang`` (ISO 639-1) selects sentence rules. Returns spans in order.
    """
    limit = max(1, min(target_tokens, max_tokens))
    overlap = max(0, min(overlap_tokens, limit // 2))
    sentences = _sentences(text, lang)
    if not sentences:
        return []
    counts = count_tokens([text[s:e] for s, e in sentences])
    units: list[Span] = []
    for (start, end), n in zip(sentences, counts, strict=True):
        if n <= limit:
            units.append(Span(start, end, n))
        else:
            units.extend(_split_long(text, start, end, limit, count_tokens))
    return _pack(text, units, limit, overlap, count_tokens)


def _sentences(text: str, lang: str | None) -> list[tuple[int, int]]:
    """Sentence spans with surrounding whitespace trimmed; blank pieces dropped."""
    spans, pos = [], 0
    for piece in sentencex.segment(lang or "en", text):
        start = pos if text.startswith(piece, pos) else text.find(piece, pos)
        if start < 0:  # sentencex changed the text: fall back to one span for the rest
            spans.append((pos, len(text)))
            pos = len(text)
            break
        end = start + len(piece)
        pos = end
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
    if pos < len(text) and text[pos:].strip():
        rest = text[pos:]
        lead = len(rest) - len(rest.lstrip())
        spans.append((pos + lead, pos + lead + len(rest.strip())))
    return spans


def _split_long(text: str, start: int, end: int, limit: int, count: TokenCounter) -> list[Span]:
    """Cut ``text[start:end]`` into pieces of at most ``limit`` tokens at word boundaries."""
    pieces = []
    while start < end:
        # The longest prefix within the limit, by binary search on its end.
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count([text[start:mid]])[0] <= limit:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        if cut < end:
            space = _last_space(text, start + 1, cut + 1)
            if space > start + (cut - start) // 2:
                cut = space
        piece = text[start:cut]
        stripped_end = start + len(piece.rstrip())
        if stripped_end > start:
            pieces.append(Span(start, stripped_end, count([text[start:stripped_end]])[0]))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    return pieces


def _last_space(text: str, lo: int, hi: int) -> int:
    """Index of the last whitespace character (space, newline, tab, …) in ``text[lo:hi]``, or -1."""
    for i in range(hi - 1, lo - 1, -1):
        if text[i].isspace():
            return i
    return -1


def _pack(text: str, units: list[Span], limit: int, overlap: int, count: TokenCounter) -> list[Span]:
    """Greedily pack sentence units into chunks, carrying up to ``overlap`` tokens forward."""
    chunks: list[Span] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j].n_tokens <= limit:
            total += units[j].n_tokens
            j += 1
        j = max(j, i + 1)
        # Tokens of the joined text can differ from the sum: verify and shrink if needed.
        while True:
            n = count([text[units[i].start : units[j - 1].end]])[0]
            if n <= limit or j == i + 1:
                break
            j -= 1
        chunks.append(Span(units[i].start, units[j - 1].end, n))
        if j >= len(units):
            break
        # Start the next chunk with the last sentences of this one, up to `overlap` tokens,
        # and only as many as leave room for the next new sentence.
        room = min(overlap, limit - units[j].n_tokens)
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].n_tokens <= room:
            back -= 1
            carried += units[back].n_tokens
        i = back
    return chunks
