"""Lexical (whole tokens, FTS5 trigram lookup) and hybrid (RRF) search, signals, CJK, FTS upkeep, group_by."""

from __future__ import annotations

import sqlite3

import pytest

from indexer.build import build_index
from search import Index, IndexNotReady, InvalidInput
from search.fusion import rrf
from store import IndexDir
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder(dimension=8)  # so few buckets that dense search is weak on purpose
WORDS = [
    "river",
    "stone",
    "cloud",
    "garden",
    "window",
    "bridge",
    "candle",
    "forest",
    "market",
    "letter",
    "engine",
    "winter",
]
TARGET = (
    "The shipment of replacement valves arrived on Tuesday with the order number XK-4471-B printed "
    "on every box, and the warehouse team checked the seals, counted the pallets and signed the forms."
)
CJK = {
    "ja/kaiyo.txt": "海の潮の満ち引きは、主に月の引力によって起こる。一日に二回の満潮と干潮が生じる。",
    "zh/guanghe.txt": "光合作用是植物利用阳光把二氧化碳和水转化为有机物的过程。",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    files = {f"short/{i:02d}.txt": f"{WORDS[i % 12]} {WORDS[(i * 5 + 1) % 12]}" for i in range(30)}
    files |= {"orders/shipment.txt": TARGET, **CJK}
    write_files(root / "c", files)
    build_index(root / "c", root / "i", model=MODEL)
    with Index.open(root / "i", model=MODEL) as idx:
        yield idx


def test_a_rare_code_is_first_in_lexical_and_hybrid_where_dense_misses_it(index):
    dense = index.search("XK-4471-B", k=40)
    assert dense[0].doc_id != "orders/shipment.txt"  # dense alone does not find it first
    lexical = index.search("XK-4471-B", k=5, mode="lexical")
    assert [h.doc_id for h in lexical] == ["orders/shipment.txt"]  # nothing else contains it
    assert lexical[0].signals == ("lexical",) and lexical[0].score > 0
    hybrid = index.search("XK-4471-B", k=5, mode="hybrid")
    assert hybrid[0].doc_id == "orders/shipment.txt"
    assert hybrid[0].signals == ("dense", "lexical")
    rank = [h.doc_id for h in dense].index("orders/shipment.txt") + 1
    assert hybrid[0].score == pytest.approx(1 / 61 + 1 / (60 + rank))
    assert all(h.signals == ("dense",) for h in hybrid[1:])
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert len(hybrid) == 5


def test_lexical_is_case_insensitive_and_matches_whole_tokens_or_wildcards(index):
    assert [h.doc_id for h in index.search("xk-4471", k=3, mode="lexical")] == ["orders/shipment.txt"]
    assert index.search("warehou", k=3, mode="lexical") == []  # a part of a word: no longer a match
    assert [h.doc_id for h in index.search("warehou*", k=3, mode="lexical")] == ["orders/shipment.txt"]
    assert index.search("nowhere-to-be-found", k=3, mode="lexical") == []


def test_cjk_substrings_are_found_lexically(index):
    assert [h.doc_id for h in index.search("月の引力", k=3, mode="lexical")] == ["ja/kaiyo.txt"]
    assert [h.doc_id for h in index.search("満潮と干潮", k=3, mode="lexical")] == ["ja/kaiyo.txt"]
    assert [h.doc_id for h in index.search("二氧化碳", k=3, mode="lexical")] == ["zh/guanghe.txt"]
    assert index.search("二氧化碳", k=10, mode="hybrid")[0].doc_id == "zh/guanghe.txt"


def test_terms_shorter_than_three_characters_fall_back_to_substring_counting(index):
    hits = index.search("引力", k=3, mode="lexical")  # 2 characters: no trigram
    assert [(h.doc_id, h.score) for h in hits] == [("ja/kaiyo.txt", 1.0)]
    assert [(h.doc_id, h.score) for h in index.search("月 潮", k=3, mode="lexical")] == [("ja/kaiyo.txt", 2.0)]


def test_lexical_ranks_by_bm25_with_any_term(index):
    hits = index.search("river stone", k=40, mode="lexical")
    texts = [h.text for h in hits]
    assert all("river" in t or "stone" in t for t in texts)
    both = [i for i, t in enumerate(texts) if "river" in t and "stone" in t]
    assert both and both == list(range(len(both)))  # chunks with both terms come first
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rrf_fuses_ranks():
    fused = rrf({"dense": [1, 2, 3], "lexical": [3, 4]})
    assert [i for i, _, _ in fused] == [3, 1, 2, 4]
    assert [s for _, s, _ in fused] == pytest.approx([1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62])
    assert [sig for _, _, sig in fused] == [("dense", "lexical"), ("dense",), ("dense",), ("lexical",)]


def test_fts_follows_deletes_and_upserts(tmp_path):
    build_index(write_files(tmp_path / "c", {"a.txt": TARGET, "b.txt": "river stone"}), tmp_path / "i", model=MODEL)
    with Index.open(tmp_path / "i", model=MODEL) as idx:
        idx.delete("a.txt")
        assert idx.search("XK-4471-B", k=3, mode="lexical") == []
        idx.upsert([{"id": "new", "text": "Order ZZ-9000 shipped."}])
        assert [h.doc_id for h in idx.search("ZZ-9000", k=3, mode="lexical")] == ["new"]
        idx.upsert([{"id": "new", "text": "Order YY-1234 shipped."}])
        assert idx.search("ZZ-9000", k=3, mode="lexical") == []
        assert [h.doc_id for h in idx.search("YY-1234", k=3, mode="lexical")] == ["new"]


def test_an_index_without_the_fts_table_gets_it_when_opened_for_writing(tmp_path):
    build_index(write_files(tmp_path / "c", {"a.txt": TARGET, "b.txt": "river stone"}), tmp_path / "i", model=MODEL)
    with sqlite3.connect(tmp_path / "i" / "meta.db") as conn:  # as an index of the first schema had it
        for name in ("TRIGGER chunks_fts_insert", "TRIGGER chunks_fts_delete", "TABLE chunks_fts"):
            conn.execute(f"DROP {name}")
    with Index.open(tmp_path / "i", model=MODEL) as idx:
        with pytest.raises(IndexNotReady, match=r"no full-text table yet .* `indexer build` or `indexer repair`"):
            idx.search("XK-4471-B", mode="lexical")
        assert len(idx.search("XK-4471-B", k=2)) == 2  # dense search works as before
    IndexDir.open_for_writing(tmp_path / "i").close()
    with Index.open(tmp_path / "i", model=MODEL) as idx:
        assert [h.doc_id for h in idx.search("XK-4471-B", k=3, mode="lexical")] == ["a.txt"]


def test_group_by_document_gives_the_best_chunk_of_k_documents(tmp_path):
    long = " ".join(f"river number {i} runs to the sea." for i in range(60))
    corpus = write_files(
        tmp_path / "c", {"long.txt": long, **{f"s{i}.txt": f"a river near the {WORDS[i + 1]}" for i in range(5)}}
    )
    build_index(corpus, tmp_path / "i", model=HashingEmbedder(), chunk_tokens=16, overlap_tokens=0)
    with Index.open(tmp_path / "i", model=HashingEmbedder()) as idx:
        assert len(idx) > 20
        for mode in ("dense", "lexical", "hybrid"):
            chunks = idx.search("river number runs to the sea", k=len(idx), mode=mode)
            grouped = idx.search("river number runs to the sea", k=4, mode=mode, group_by="document")
            assert len(grouped) == 4 and len({h.doc_id for h in grouped}) == 4
            firsts = list(dict.fromkeys(h.doc_id for h in chunks))[:4]
            assert [h.doc_id for h in grouped] == firsts
            assert grouped[0] == next(h for h in chunks if h.doc_id == grouped[0].doc_id)
        everything = idx.search("river", k=100, group_by="document")
        assert sorted(h.doc_id for h in everything) == sorted(["long.txt"] + [f"s{i}.txt" for i in range(5)])


SYNTAX_DOCS = {
    "a.txt": 'He said "NEAR(x y)" and a*b OR c; DROP TABLE chunks; -- 100% ^x col:val',
    "b.txt": "plain words here",
}


@pytest.fixture(scope="module")
def syntax_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("syntax")
    build_index(write_files(root / "c", SYNTAX_DOCS), root / "i", model=HashingEmbedder())
    with Index.open(root / "i", model=HashingEmbedder()) as idx:
        yield idx


@pytest.mark.parametrize(
    "query, found",
    [
        ('a"b"c', ["a.txt"]),  # the terms a, b and c around the phrase "b"
        ("NEAR(x", ["a.txt"]),
        ("a*b", ["a.txt"]),  # a * inside a term is an ordinary character
        ("DROP TABLE chunks; --", ["a.txt"]),
        ("100%", ["a.txt"]),  # punctuation at a term's edges is ignored
        ("_", []),  # a token character: searched for, found nowhere
        ("^x", ["a.txt"]),
        ("col:val", ["a.txt"]),
        ("AND NOT", ["a.txt"]),  # words, not FTS5 operators
        ("x' OR '1'='1", []),  # x OR 1'='1: x is too short to find chunks beside a longer term
        ("'1'='1' OR x'", []),
        ("NEAR(x OR '1'='1", ["a.txt"]),
        ('"OR"', ["a.txt"]),
        ("plain -said", ["b.txt"]),
    ],
)
def test_fts5_and_sql_syntax_in_queries_never_reaches_sqlite(syntax_index, query, found):
    """Queries are parsed by store.lexical_query; FTS5 and SQL see only quoted strings and
    bound parameters."""
    assert sorted(h.doc_id for h in syntax_index.search(query, k=3, mode="lexical")) == found
    assert len(syntax_index.search(query, k=3, mode="hybrid")) == 2
    assert len(syntax_index.search("plain", k=3)) == 2  # the tables are intact


@pytest.mark.parametrize("query", ['"', "*", "OR", "%", "'", '""', "-plain"])
def test_queries_with_nothing_to_search_for_are_errors_in_lexical_and_hybrid_modes(syntax_index, query):
    for mode in ("lexical", "hybrid"):
        with pytest.raises(InvalidInput, match="lexical query"):
            syntax_index.search(query, k=3, mode=mode)
    assert len(syntax_index.search(query, k=3)) == 2  # dense search has no syntax


def test_hybrid_ranking_does_not_depend_on_k(index):
    """Regression: with k=1 the exact-term match lay outside the dense candidates (4k deep);
    its fused score tied the dense rank-1 chunk's and the tie went to dense, so k=1 and k=2
    disagreed about the best hit. Lexical candidates are now ranked by the dense signal too."""
    tops = [index.search("XK-4471-B", k=k, mode="hybrid")[0] for k in (1, 2, 3, 5, 10)]
    assert {h.doc_id for h in tops} == {"orders/shipment.txt"}
    assert len({round(h.score, 9) for h in tops}) == 1
    assert tops[0].signals == ("lexical",)  # not found by the dense search at depth 4
    assert tops[1].signals == ("dense", "lexical")
