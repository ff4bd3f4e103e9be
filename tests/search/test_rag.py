"""RAG adapters: context text with citations (the LangChain adapters: test_langchain.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from search import Index, build_index
from search.hit import Hit
from search.rag import ELLIPSIS, MIN_PART, context, format_context
from store.errors import InvalidInput
from tests.helpers import MULTILINGUAL_DOCS, write_files

HEADER = re.compile(
    r"^\[(\d+)\] source: (\S+) \| doc_id: (\S+) \| chars (\d+)-(\d+)(?: \| lang: (\w+))? \| score: (-?\d\.\d{3})$"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_files(tmp_path_factory.mktemp("rag") / "corpus", MULTILINGUAL_DOCS)


@pytest.fixture(scope="module")
def index(corpus, use_model):
    path = corpus.parent / "rag.idx"
    build_index(corpus, path, model=use_model)
    with Index.open(path, model=use_model) as ix:
        yield ix


def blocks(text: str) -> list[tuple[re.Match, str]]:
    """``(header match, passage)`` of each block of a context text."""
    out = []
    for block in text.split("\n\n["):
        header, _, passage = block.lstrip("[").partition("\n")
        match = HEADER.match("[" + header)
        assert match, header
        out.append((match, passage))
    return out


def test_context_numbers_and_cites_the_top_passages(index, corpus):
    text = context(index, "Wie bricht ein Vulkan aus?", k=3)
    parsed = blocks(text)
    hits = index.search("Wie bricht ein Vulkan aus?", k=3)
    assert [int(m[1]) for m, _ in parsed] == [1, 2, 3]
    assert [(m[2], m[3], int(m[4]), int(m[5]), m[6]) for m, _ in parsed] == [
        (h.source, h.doc_id, h.start, h.end, h.lang) for h in hits
    ]
    assert [float(m[7]) for m, _ in parsed] == [round(h.score, 3) for h in hits]
    assert parsed[0][0][2] == "de/vulkan.md"
    assert [p for _, p in parsed] == [h.text for h in hits]
    # The offsets cite the passage exactly in a plain-text document.
    source = next((m, p) for m, p in parsed if m[2].endswith(".txt"))
    assert (corpus / source[0][2]).read_text(encoding="utf-8")[int(source[0][4]) : int(source[0][5])] == source[1]


def test_context_accepts_a_path_and_search_arguments(index):
    assert context(index.path, "Schach", k=2) == context(index, "Schach", k=2, nprobe=4)


def test_max_chars_keeps_whole_passages_then_cuts_one(index, corpus):
    full = context(index, "Vulkan", k=3)
    first_two = full[: full.index("\n\n[3]")]
    assert context(index, "Vulkan", k=3, max_chars=len(first_two)) == first_two
    budget = len(first_two) + 2 + 150
    cut = context(index, "Vulkan", k=3, max_chars=budget)
    assert len(cut) <= budget and cut.startswith(first_two + "\n\n[3]") and cut.endswith(ELLIPSIS)
    match, passage = blocks(cut)[2]
    third = index.search("Vulkan", k=3)[2]
    kept = passage.removesuffix(ELLIPSIS)
    assert int(match[4]) == third.start and int(match[5]) == third.start + len(kept)
    assert third.text.startswith(kept) and len(kept) >= MIN_PART and not kept.endswith(" ")


def test_max_chars_too_small_for_a_useful_passage_gives_nothing(index):
    assert context(index, "Vulkan", k=3, max_chars=60) == ""
    with pytest.raises(InvalidInput, match="max_chars must be a positive number"):
        context(index, "Vulkan", max_chars=0)


def test_format_context_of_given_hits():
    hit = Hit(
        score=0.5,
        text="Alpha beta.",
        doc_id="d.jsonl#2",
        chunk_id=7,
        source="d.jsonl",
        lang=None,
        start=10,
        end=21,
        metadata={"year": 2020},
    )
    assert format_context([hit]) == "[1] source: d.jsonl | doc_id: d.jsonl#2 | chars 10-21 | score: 0.500\nAlpha beta."
    assert format_context([]) == ""
