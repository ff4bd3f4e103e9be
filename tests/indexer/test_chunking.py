"""Tests for indexer.chunking.chunk_text, counting tokens with a real model tokenizer (all-MiniLM-L6-v2)."""

from __future__ import annotations

import itertools
import random
import re
import time

import pytest
from tokenizers import Tokenizer

from indexer.chunking import Span, chunk_text

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "near",
    "the",
    "river",
    "while",
    "mountain",
    "science",
    "history",
    "language",
    "computer",
    "network",
    "garden",
    "window",
    "coffee",
    "morning",
    "evening",
    "music",
    "library",
    "student",
]


@pytest.fixture(scope="module")
def count(minilm_dir):
    """all-MiniLM-L6-v2's content-token counter (no special tokens, no truncation, no padding)."""
    path = minilm_dir / "tokenizer.json"
    assert path.is_file(), f"tokenizer missing: {path}"
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return lambda texts: [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def _sentence(rnd: random.Random, low: int = 5, high: int = 25) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(low, high))).capitalize() + "."


def _long_document(n_words: int = 5000, seed: int = 1) -> str:
    rnd = random.Random(seed)
    paragraphs, total = [], 0
    while total < n_words:
        paragraph = " ".join(_sentence(rnd) for _ in range(rnd.randint(3, 8)))
        total += len(paragraph.split())
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _check_invariants(text: str, spans: list[Span], count, limit: int) -> None:
    """Offsets exact, n_tokens exact, within the limit, in order, and full coverage."""
    assert spans, "expected at least one chunk"
    for span in spans:
        piece = text[span.start : span.end]
        assert 0 <= span.start < span.end <= len(text)
        assert piece == piece.strip(), f"chunk has surrounding whitespace: {piece!r}"
        recount = count([piece])[0]
        assert span.n_tokens == recount, f"n_tokens {span.n_tokens} != recount {recount} for {piece[:60]!r}"
        assert recount <= limit, f"{recount} tokens > limit {limit}: {piece[:60]!r}"
    starts = [s.start for s in spans]
    ends = [s.end for s in spans]
    assert starts == sorted(set(starts)), "starts must be strictly increasing"
    assert ends == sorted(set(ends)), "ends must be strictly increasing"
    _assert_covered(text, spans)


def _assert_covered(text: str, spans: list[Span]) -> None:
    covered = bytearray(len(text))
    for s in spans:
        covered[s.start : s.end] = b"\x01" * (s.end - s.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, (
        f"{len(missing)} characters in no chunk, first at {missing[0]}: {text[missing[0] : missing[0] + 40]!r}"
    )


def _inside_word(text: str, i: int) -> bool:
    """True if offset ``i`` falls between two word characters (a cut inside a word)."""
    return 0 < i < len(text) and text[i - 1].isalnum() and text[i].isalnum()


# --- Trivial inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000 \u00a0"])
def test_blank_text_gives_no_chunks(count, text):
    assert chunk_text(text, count, max_tokens=128) == []


def test_short_text_is_one_chunk_equal_to_the_stripped_text(count):
    text = "  \n The cat sat on the mat. It was happy.\n\n "
    spans = chunk_text(text, count, max_tokens=128)
    assert spans == [Span(4, 41, count(["The cat sat on the mat. It was happy."])[0])]
    assert text[spans[0].start : spans[0].end] == text.strip()


def test_single_word(count):
    assert chunk_text("hello", count, max_tokens=128) == [Span(0, 5, 1)]


# --- Long documents ----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "max_tokens", "overlap"), [(128, 256, 32), (256, 128, 16), (64, 512, 0)])
def test_long_document_invariants(count, target, max_tokens, overlap):
    text = _long_document()
    assert len(text.split()) >= 5000
    spans = chunk_text(text, count, max_tokens=max_tokens, target_tokens=target, overlap_tokens=overlap)
    limit = min(target, max_tokens)
    _check_invariants(text, spans, count, limit)
    total = count([text])[0]
    assert len(spans) >= total // limit  # no chunk can hold more than `limit` tokens


def test_long_document_chunks_end_at_sentence_ends(count):
    text = _long_document(1500, seed=2)
    spans = chunk_text(text, count, max_tokens=256, target_tokens=80, overlap_tokens=20)
    _check_invariants(text, spans, count, 80)
    for span in spans:
        assert text[span.end - 1] == ".", f"chunk ends mid-sentence: {text[span.end - 30 : span.end]!r}"
        assert text[span.start].isupper(), f"chunk starts mid-sentence: {text[span.start : span.start + 30]!r}"


def test_chunks_are_filled_up_to_the_target(count):
    """Greedy packing: each chunk plus the next sentence would exceed the limit."""
    rnd = random.Random(3)
    sentences = [_sentence(rnd, 8, 12) for _ in range(60)]
    text = " ".join(sentences)
    spans = chunk_text(text, count, max_tokens=512, target_tokens=60, overlap_tokens=0)
    _check_invariants(text, spans, count, 60)
    for span, following in itertools.pairwise(spans):
        next_sentence_end = text.index(".", following.start) + 1
        assert count([text[span.start : next_sentence_end]])[0] > 60


# --- Sentence boundaries ------------------------------------------------------------------


def test_two_sentences_per_chunk_never_split_mid_sentence(count):
    sentences = [
        "The library opens at nine in the morning.",
        "Students arrive early to find a quiet desk.",
        "Dr. Smith teaches history on Mondays.",
        "Her lectures are popular with everyone.",
        "The garden behind the building has old trees.",
        "Birds sing there every evening in spring.",
        "Coffee is served in the hall until noon.",
        "Nobody is allowed to eat near the books.",
    ]
    text = " ".join(sentences)
    per_sentence = count(sentences)
    target = max(a + b for a, b in zip(per_sentence[::2], per_sentence[1::2], strict=True))
    spans = chunk_text(text, count, max_tokens=512, target_tokens=target, overlap_tokens=0)
    _check_invariants(text, spans, count, target)
    starts = {text.index(s) for s in sentences}
    ends = {text.index(s) + len(s) for s in sentences}
    for span in spans:
        assert span.start in starts, text[span.start : span.end]
        assert span.end in ends, text[span.start : span.end]
    # "Dr." is an abbreviation, not a sentence end: that sentence is never cut after "Dr."
    dr = text.index("Dr. Smith")
    assert all(span.end != dr + 3 for span in spans)


def test_german_sentences_with_lang(count):
    text = (
        "Am 3. Oktober ist in Deutschland ein Feiertag. Die Geschäfte sind geschlossen. "
        "Viele Menschen gehen spazieren, z. B. im Park. Abends trifft man sich mit Freunden."
    )
    spans = chunk_text(text, count, max_tokens=512, target_tokens=30, overlap_tokens=0, lang="de")
    _check_invariants(text, spans, count, 30)
    for span in spans:
        assert text[span.end - 1] == "."
        assert not text[span.start : span.end].startswith(("Oktober", "B. im"))


# --- Sentences longer than the limit -------------------------------------------------------


def test_giant_sentence_without_punctuation_is_split_at_word_boundaries(count):
    rnd = random.Random(4)
    text = " ".join(rnd.choice(WORDS) for _ in range(3000))
    spans = chunk_text(text, count, max_tokens=256, target_tokens=64, overlap_tokens=16)
    _check_invariants(text, spans, count, 64)
    assert len(spans) >= count([text])[0] // 64
    for span in spans:
        assert not _inside_word(text, span.start), text[span.start - 10 : span.start + 10]
        assert not _inside_word(text, span.end), text[span.end - 10 : span.end + 10]
    # Pieces of one sentence do not overlap (overlap carries whole sentences only).
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize("separator", ["\n", "\t", "  "])
def test_giant_sentence_with_other_whitespace_is_split_at_word_boundaries(count, separator):
    """One word per line (a word list, a column): cuts fall on the newlines, not inside words."""
    rnd = random.Random(5)
    text = separator.join(rnd.choice(WORDS) for _ in range(1500))
    spans = chunk_text(text, count, max_tokens=256, target_tokens=32, overlap_tokens=0)
    _check_invariants(text, spans, count, 32)
    for span in spans:
        assert not _inside_word(text, span.start), repr(text[span.start - 10 : span.start + 10])
        assert not _inside_word(text, span.end), repr(text[span.end - 10 : span.end + 10])


@pytest.mark.parametrize("lang", [None, "zh"])
def test_chinese_without_spaces(count, lang):
    text = "我们今天去公园散步，天气非常好。他说这本书很有意思，值得一读。" * 60
    spans = chunk_text(text, count, max_tokens=128, target_tokens=40, overlap_tokens=10, lang=lang)
    _check_invariants(text, spans, count, 40)
    assert len(spans) > 1
    for span in spans:
        assert text[span.end - 1] == "。", text[span.start : span.end]


def test_japanese_without_spaces(count):
    text = "今日はとても良い天気です。公園に散歩に行きましょう。日本の文化は面白いです。" * 50
    spans = chunk_text(text, count, max_tokens=128, target_tokens=48, overlap_tokens=8, lang="ja")
    _check_invariants(text, spans, count, 48)
    assert len(spans) > 1


def test_cjk_sentence_longer_than_the_limit_is_cut_between_characters(count):
    text = "我们今天去公园散步天气非常好他说这本书很有意思值得一读" * 30 + "。"
    spans = chunk_text(text, count, max_tokens=128, target_tokens=25, overlap_tokens=0, lang="zh")
    _check_invariants(text, spans, count, 25)
    assert len(spans) >= count([text])[0] // 25
    assert "".join(text[s.start : s.end] for s in spans) == text  # no spaces: pieces tile the text


def test_extremely_long_word_of_one_letter(count):
    # WordPiece maps a word longer than 100 characters to a single [UNK]: one small chunk.
    text = "Intro sentence here. " + "a" * 3000 + " and the end."
    spans = chunk_text(text, count, max_tokens=128, target_tokens=16, overlap_tokens=4)
    _check_invariants(text, spans, count, 16)
    assert any(text[s.start : s.end].find("a" * 3000) >= 0 for s in spans)


def test_extremely_long_word_of_many_tokens_is_cut_inside_the_word(count):
    # Punctuation splits into tokens but not into words: 3,000 characters, 3,000 tokens, no space.
    word = "a-" * 1500
    text = f"Before it. {word} After it."
    assert count([word])[0] == 3000
    spans = chunk_text(text, count, max_tokens=256, target_tokens=100, overlap_tokens=0)
    _check_invariants(text, spans, count, 100)
    assert len(spans) >= 30
    assert text[spans[0].start : spans[0].end] == "Before it."
    assert text[spans[-1].start : spans[-1].end] == "After it."


def test_target_above_max_tokens_is_capped_by_max_tokens(count):
    text = _long_document(800, seed=6)
    spans = chunk_text(text, count, max_tokens=50, target_tokens=10_000, overlap_tokens=0)
    _check_invariants(text, spans, count, 50)
    assert max(s.n_tokens for s in spans) > 25  # the cap is max_tokens, not something smaller


# --- Overlap ------------------------------------------------------------------------------


def test_overlap_zero_gives_disjoint_chunks(count):
    text = _long_document(2000, seed=7)
    spans = chunk_text(text, count, max_tokens=256, target_tokens=100, overlap_tokens=0)
    _check_invariants(text, spans, count, 100)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    # Disjoint and complete: the chunks plus the whitespace between them rebuild the text.
    gaps = [text[a.end : b.start] for a, b in itertools.pairwise(spans)]
    assert all(not g.strip() for g in gaps)


@pytest.mark.parametrize("overlap", [10, 30])
def test_overlap_shares_at_most_overlap_tokens_of_whole_sentences(count, overlap):
    text = _long_document(2000, seed=8)
    sentence_starts = {m.start() for m in re.finditer(r"(?:^|(?<=\. )|(?<=\n))[A-Z]", text)}
    spans = chunk_text(text, count, max_tokens=256, target_tokens=100, overlap_tokens=overlap)
    _check_invariants(text, spans, count, 100)
    shared = 0
    for a, b in itertools.pairwise(spans):
        assert b.start in sentence_starts, text[b.start : b.start + 40]
        if b.start < a.end:
            shared += 1
            common = text[b.start : a.end]
            assert common.endswith("."), "overlap must be whole sentences"
            assert count([common])[0] <= overlap
    assert shared > 0, "expected some chunks to carry sentences forward"


def test_overlap_is_capped_at_half_the_limit(count):
    text = _long_document(1500, seed=9)
    spans = chunk_text(text, count, max_tokens=256, target_tokens=60, overlap_tokens=1000)
    _check_invariants(text, spans, count, 60)
    for a, b in itertools.pairwise(spans):
        if b.start < a.end:
            assert count([text[b.start : a.end]])[0] <= 30


def test_offsets_count_characters_not_bytes(count):
    text = "Ünïcödé wörds everywhere. 東京は大きい都市です。 Emoji 😀 here too. Last sentence."
    spans = chunk_text(text, count, max_tokens=128, target_tokens=8, overlap_tokens=0)
    _check_invariants(text, spans, count, 8)
    assert text[spans[0].start : spans[0].end].startswith("Ünïcödé")
    assert text[spans[-1].start : spans[-1].end].endswith("Last sentence.")


# --- Time: linear whatever the punctuation (issue 17) -----------------------------------------


@pytest.mark.parametrize("punctuated", [False, True])
def test_a_megabyte_of_words_is_chunked_in_seconds(tiny_model, punctuated):
    """Cutting a sentence by tokens used to re-tokenise every prefix: 320 KB without a sentence
    end took 75 s, 1 MB about 12 min. The bound is generous (about 1 s here)."""
    rnd = random.Random(7)
    words = [rnd.choice(WORDS) for _ in range(170_000)]
    if punctuated:
        words = [w + "." if i % 12 == 11 else w for i, w in enumerate(words)]
    text = " ".join(words)[:1_000_000]
    started = time.perf_counter()
    spans = chunk_text(text, tiny_model.count_tokens, max_tokens=tiny_model.max_tokens)
    seconds = time.perf_counter() - started
    assert seconds < 5, f"{seconds:.1f} s for 1 MB"
    assert all(s.n_tokens <= 256 for s in spans)
    _assert_covered(text, spans)


def test_a_long_sentence_is_cut_into_pieces_that_fill_the_limit(count):
    rnd = random.Random(8)
    text = " ".join(rnd.choice(WORDS) for _ in range(20_000))
    spans = chunk_text(text, count, max_tokens=256, target_tokens=100, overlap_tokens=0)
    _check_invariants(text, spans, count, 100)
    assert sum(s.n_tokens for s in spans[:-1]) >= 0.97 * 100 * (len(spans) - 1)


def test_a_tokenizer_that_adds_tokens_between_words_still_gets_pieces_within_the_limit():
    """Any TokenCounter works: here joining two words costs a token the words alone do not show."""

    def count(texts):
        return [len(t.split()) * 2 - 1 if t.strip() else 0 for t in texts]  # a separator token between words

    text = " ".join(["word"] * 1000)
    spans = chunk_text(text, count, max_tokens=512, target_tokens=31, overlap_tokens=0)
    assert all(count([text[s.start : s.end]])[0] == s.n_tokens <= 31 for s in spans)
    assert all(s.n_tokens >= 29 for s in spans[:-1])  # FILL: at least 95% of the limit
    _assert_covered(text, spans)


def test_a_single_word_of_a_million_tokens_is_cut_quickly(count):
    word = "a-" * 500_000
    started = time.perf_counter()
    spans = chunk_text(word, count, max_tokens=256, target_tokens=256, overlap_tokens=0)
    assert time.perf_counter() - started < 20
    assert "".join(word[s.start : s.end] for s in spans) == word
    assert all(s.n_tokens <= 256 for s in spans) and sum(s.n_tokens for s in spans) == 1_000_000
