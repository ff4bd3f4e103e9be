"""Lexical queries mean what users think (issue 14, gap 7): whole tokens, "phrases", OR, +term,
-term, * wildcards, CJK substrings, ranking, and clear errors for bad syntax."""

from __future__ import annotations

import pytest

from indexer.build import build_index
from search import Index, InvalidInput
from store.lexical_query import MAX_TERM_CHARS, MAX_TERMS, Clause, Term, parse, terms
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder(dimension=16)
DOCS = {
    "support.txt": "Support for the product ends in May.",
    "choice.txt": "Take this or that, whichever you like.",
    "answer.txt": "No, it is not ok.",
    "e204.txt": "Error E-204 means the pump is dry.",
    "e2045.txt": "Error E-2045 means the valve is stuck.",
    "red.txt": "The red car stopped at the corner.",
    "redcars.txt": "Two red cars and a blue bike.",
    "crimson.txt": "A crimson car parked outside.",
    "paint.txt": "Red and crimson paint.",
    "draft.txt": "Draft report on the red car.",
    "wrapped.txt": "It was a red\n  car, they said.",
    "shredder.txt": "The shredder ate the memo.",
    "warehouse.txt": "The warehouse team checked the seals.",
    "ja.txt": "海の潮の満ち引きは、主に月の引力によって起こる。",
    "zh.txt": "光合作用是植物利用阳光把二氧化碳和水转化为有机物的过程。",
    "mixed.txt": "このライブラリはPythonで書かれ、2024年に公開された。",
    "ko.txt": "서울에서 회의가 열렸다.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("lexical-syntax")
    build_index(write_files(root / "c", DOCS), root / "i", model=MODEL)
    with Index.open(root / "i", model=MODEL) as idx:
        yield idx


def found(index, query: str) -> list[str]:
    return sorted(h.doc_id for h in index.search(query, k=len(DOCS), mode="lexical"))


def ranked(index, query: str) -> list[str]:
    return [h.doc_id for h in index.search(query, k=len(DOCS), mode="lexical")]


# -- whole tokens ------------------------------------------------------------------------------
def test_a_word_matches_whole_tokens_only(index):
    assert found(index, "or") == ["choice.txt"]  # not "Supp-or-t", "f-or", "c-or-ner", "rep-or-t"
    assert found(index, "red") == sorted(["red.txt", "redcars.txt", "paint.txt", "draft.txt", "wrapped.txt"])
    assert "shredder.txt" not in found(index, "red")


def test_an_identifier_is_not_a_prefix_of_a_longer_one(index):
    assert found(index, "E-2") == []
    assert found(index, "E-204") == ["e204.txt"]  # not E-2045
    assert found(index, "204") == ["e204.txt"]  # the hyphen is a boundary


def test_punctuation_at_the_edges_of_a_word_is_ignored(index):
    assert found(index, "(E-204),") == ["e204.txt"]
    assert ranked(index, "What does E-204? mean")[0] == "e204.txt"


# -- phrases -----------------------------------------------------------------------------------
def test_a_quoted_identifier_finds_its_chunk(index):
    assert found(index, '"E-204"') == ["e204.txt"]


def test_a_quoted_phrase_matches_that_token_sequence_across_any_white_space(index):
    assert found(index, '"red car"') == ["draft.txt", "red.txt", "wrapped.txt"]  # not "red cars"
    assert found(index, '"car red"') == []


# -- OR, +term, -term -------------------------------------------------------------------------
def test_or_joins_alternatives_and_is_not_a_term(index):
    assert found(index, "ok OR no") == ["answer.txt"]  # "or" of "Support" no longer counts
    assert found(index, "crimson OR blue") == ["crimson.txt", "paint.txt", "redcars.txt"]


def test_an_or_group_counts_once_in_the_ranking(index):
    order = ranked(index, "red OR crimson car")
    assert set(order[:4]) == {"red.txt", "crimson.txt", "draft.txt", "wrapped.txt"}  # the group and car
    assert order.index("paint.txt") > 3  # red and crimson: the group once, no car


def test_minus_excludes_chunks_containing_the_term(index):
    assert found(index, "car -draft") == ["crimson.txt", "red.txt", "wrapped.txt"]
    assert found(index, 'car -"red car"') == ["crimson.txt"]
    assert found(index, "E-2* -E-2045") == ["e204.txt"]


def test_plus_requires_a_term_and_the_others_only_rank(index):
    hits = index.search("+red car", k=len(DOCS), mode="lexical")
    assert sorted(h.doc_id for h in hits) == sorted(["red.txt", "redcars.txt", "paint.txt", "draft.txt", "wrapped.txt"])
    assert {h.doc_id for h in hits[:3]} == {"red.txt", "draft.txt", "wrapped.txt"}  # they also hold car


def test_chunks_with_more_of_the_terms_rank_first(index):
    hits = index.search("red car corner", k=len(DOCS), mode="lexical")
    assert hits[0].doc_id == "red.txt"
    assert {h.doc_id for h in hits[1:3]} == {"draft.txt", "wrapped.txt"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# -- substrings: wildcards and scripts without spaces ------------------------------------------
def test_a_star_keeps_substring_matching_available(index):
    assert found(index, "E-2*") == ["e204.txt", "e2045.txt"]
    assert found(index, "*204") == ["e204.txt"]
    assert found(index, "warehou*") == ["warehouse.txt"]
    assert found(index, "*arehou*") == ["warehouse.txt"]
    assert found(index, "*hred*") == ["shredder.txt"]
    assert found(index, "warehou") == []


def test_chinese_japanese_and_korean_still_match_as_substrings(index):
    assert found(index, "月の引力") == ["ja.txt"]
    assert found(index, "引力") == ["ja.txt"]  # 2 characters: read by a scan
    assert found(index, "二氧化碳") == ["zh.txt"]
    assert found(index, "阳光") == ["zh.txt"]
    assert found(index, "서울") == ["ko.txt"]  # a particle attached: 서울에서


def test_a_latin_word_or_number_next_to_cjk_keeps_its_boundaries(index):
    assert found(index, "Python") == ["mixed.txt"]
    assert found(index, "2024") == ["mixed.txt"]
    assert found(index, "Pyth") == []
    assert found(index, "Pyth*") == ["mixed.txt"]


def test_hybrid_mode_uses_the_same_syntax(index):
    hits = index.search('"E-204"', k=3, mode="hybrid")
    assert hits[0].doc_id == "e204.txt" and "lexical" in hits[0].signals
    assert all("lexical" not in h.signals for h in hits[1:])


# -- bad syntax --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, message",
    [
        ('say "hi', r'unbalanced " \(character 5\): close the phrase with a second "'),
        ('"E-204', r'unbalanced " \(character 1\)'),
        ("OR", r"OR must stand between two terms, as in `red OR crimson` \(character 1"),
        ("red OR", r"OR must stand between two terms.*character 5.*quote it"),
        ("red OR OR car", r"OR must stand between two terms.*character 8"),
        ("+red OR car", r"cannot join a required term \(\+term\)"),
        ("red OR -car", r"cannot join an excluded term \(-term\)"),
        ("-draft", r"only excludes terms \(-term\): add a term to search for"),
        ("-draft -memo", r"only excludes terms"),
        ("? !", r"has no term to search for"),
        ("*", r"has no term to search for"),
        ('""', r"has no term to search for"),
        ("draft -Draft", r"both searches for and excludes 'Draft'"),
    ],
)
def test_bad_syntax_is_an_error_that_says_what_to_write(index, query, message):
    for mode in ("lexical", "hybrid"):
        with pytest.raises(InvalidInput, match=message):
            index.search(query, k=3, mode=mode)


def test_syntax_characters_are_searched_for_inside_quotes(index):
    assert found(index, '"OR"') == ["choice.txt"]
    assert found(index, 'red "-car"') == sorted(["red.txt", "redcars.txt", "paint.txt", "draft.txt", "wrapped.txt"])


# -- the parser alone --------------------------------------------------------------------------
def test_the_parser_gives_typed_clauses():
    query = parse('+"red car" crimson OR E-2* -*draft')
    assert query.clauses == (
        Clause((Term("red car", phrase=True),), "required"),
        Clause((Term("crimson"), Term("E-2", open_end=True))),
        Clause((Term("draft", open_start=True),), "excluded"),
    )
    assert terms('+"red car" crimson OR E-2* -draft') == ["red car", "crimson", "E-2"]


def test_the_parser_bounds_the_terms_and_their_length():
    assert len(parse(" ".join(f"t{i}" for i in range(666))).clauses) == MAX_TERMS
    assert len(parse(" OR ".join(f"t{i}" for i in range(100))).clauses[0].terms) == MAX_TERMS
    assert parse("River river RIVER").clauses == (Clause((Term("River"),)),)
    (clause,) = parse("x" * 1000).clauses
    assert clause.terms == (Term("x" * MAX_TERM_CHARS, open_end=True),)  # cut: now a prefix
