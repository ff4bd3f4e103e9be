"""Sentence-aware chunking that never exceeds the model's token limit.

Sentences come from ``sentencex`` (rules for ~300 languages, whitespace kept, so offsets
are exact). They are packed greedily into chunks of at most ``target_tokens`` tokens,
counted with the model's own tokenizer; consecutive chunks share up to ``overlap_tokens``
of whole sentences. A sentence longer than the target is cut at word boundaries (at
characters for scripts without spaces). Every non-blank character of the text lies in at
least one chunk: nothing is truncated. Chunking is linear in the text's length, with or
without sentence punctuation (``bench/chunking.py`` prints the curve).
"""

from __future__ import annotations

import re
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
    Time and memory are linear in the length of ``text`` whatever its punctuation: no text
    longer than a few windows of the limit is ever tokenised at once.
    """
    limit = max(1, min(target_tokens, max_tokens))
    overlap = max(0, min(overlap_tokens, limit // 2))
    sentences = _sentences(text, lang)
    if not sentences:
        return []
    longest = _longest_counted(limit)
    units: list[Span] = []
    for lo in range(0, len(sentences), COUNT_BATCH):
        batch = sentences[lo : lo + COUNT_BATCH]
        short = [(s, e) for s, e in batch if e - s <= longest]
        counts = dict(zip(short, count_tokens([text[s:e] for s, e in short]), strict=True))
        for start, end in batch:
            n = counts.get((start, end))
            if n is not None and n <= limit:
                units.append(Span(start, end, n))
            else:
                units.extend(_split_long(text, start, end, limit, count_tokens))
    return _pack(text, units, limit, overlap, count_tokens)


COUNT_BATCH = 1024
"""Texts handed to the tokenizer in one call (bounds its memory on a long document)."""
CHARS_PER_TOKEN_BOUND = 64
"""A text of more than this many characters per token of the limit is not tokenised whole:
it is longer than any chunk needs to be looked at (no tokenizer's tokens are that long on
average), and cut by windows instead."""


def _longest_counted(limit: int) -> int:
    """Characters of a sentence beyond which it is cut by windows, not tokenised whole."""
    return CHARS_PER_TOKEN_BOUND * limit


def _reach(limit: int) -> int:
    """Characters of a long sentence looked at for one piece: a word longer than this is cut
    inside, even if a tokenizer would make few tokens of it (WordPiece makes one ``[UNK]``
    of any word over 100 characters)."""
    return CHARS_PER_TOKEN_BOUND * max(limit, 64)


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
    """Cut ``text[start:end]`` into pieces of at most ``limit`` tokens at word boundaries.

    Each piece's end is searched among word ends (:func:`_search`): a first guess from the
    characters per token of the previous piece, then interpolation between the longest
    prefix known to fit and the shortest known not to, until a prefix fits with at least
    :data:`FILL` of the limit. With a steady density of tokens that takes one or two counts
    of one piece, so the time is linear in the length of the text, for any tokenizer. A word
    longer than the limit by itself is cut between characters.
    """
    pieces = []
    chars_per_token = 4.0
    reach = _reach(limit)
    while start < end:
        cut, n = _search(text, start, end, limit, count, chars_per_token, words=True, reach=reach)
        if cut == start:  # the first word alone has more than `limit` tokens: cut inside it
            stop = _next_word_end(text, start, start + reach + 1, end) or min(end, start + reach)
            cut, n = _search(text, start, stop, limit, count, chars_per_token, words=False, reach=reach)
            if cut == start:  # not even one character fits (a limit below one character's tokens)
                cut, n = start + 1, count([text[start : start + 1]])[0]
        pieces.append(Span(start, cut, n))
        chars_per_token = max((cut - start) / max(n, 1), 0.5)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    return pieces


FILL = 0.95
"""A piece cut from a long sentence is accepted once it holds this share of the limit."""


def _search(
    text: str,
    start: int,
    stop: int,
    limit: int,
    count: TokenCounter,
    chars_per_token: float,
    *,
    words: bool,
    reach: int,
) -> tuple[int, int]:
    """The end of a prefix of ``text[start:stop]`` with at most ``limit`` tokens and at most
    ``reach`` characters, and its tokens; ``(start, 0)`` if none fits. With ``words`` the end
    is a word end (followed by whitespace or ``stop``) and the prefix is accepted once it
    holds :data:`FILL` of the limit; else the end is any character, and the prefix the
    longest that fits."""
    enough = max(1, int(limit * FILL)) if words else limit
    lo, lo_n = start, 0  # the longest prefix known to fit
    hi = min(stop, start + reach) + 1  # the shortest known not to (or one past the reach)
    guess = start + max(1, round((limit - (limit - enough) / 2) * chars_per_token))
    while True:
        x = min(max(guess, lo + 1), hi - 1, stop)
        cut = x
        if words:
            cut = _word_end_at_or_before(text, lo, x, stop) or _next_word_end(text, x, hi, stop) or 0
            if not lo < cut < hi:
                return lo, lo_n  # no word end left between the two
        elif x <= lo:
            return lo, lo_n
        n = count([text[start:cut]])[0]
        if n <= limit:
            lo, lo_n = cut, n
            if cut == stop or n >= enough:
                return lo, lo_n
        else:
            hi = cut
        if hi - lo <= 1:
            return lo, lo_n
        # Interpolate at this prefix's density, aiming between `enough` and the limit.
        target = (enough + limit) / 2
        guess = start + round((cut - start) * target / n) if n else start + 2 * (cut - start)
        if not lo < guess < hi:
            guess = (lo + hi) // 2


def _word_end_at_or_before(text: str, lo: int, x: int, stop: int) -> int | None:
    """The last word end in ``(lo, x]``, where a word end is a position after a non-space
    character and before a space or at ``stop``; None if there is none."""
    i = x
    if i < stop and not text[i].isspace():
        while i > lo and not text[i - 1].isspace():  # back to the start of the word x is in
            i -= 1
    while i > lo and text[i - 1].isspace():
        i -= 1
    return i if i > lo else None


def _next_word_end(text: str, x: int, hi: int, stop: int) -> int | None:
    """The first word end after ``x`` and before ``hi`` (see :func:`_word_end_at_or_before`)."""
    bound = min(hi, stop)
    word = _NON_SPACE.search(text, x, bound)
    if word is None:
        return None
    space = _SPACE.search(text, word.start(), bound)
    i = space.start() if space is not None else bound
    if i == bound and bound < stop and not text[bound].isspace():
        return None  # the word goes on past hi
    return i if x < i < hi else None


_SPACE = re.compile(r"\s")
_NON_SPACE = re.compile(r"\S")


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
            if j == i + 1:  # one unit: counted already
                n = units[i].n_tokens
                break
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
