"""Real semantics with real offline models: cross-lingual (use-multilingual) and English (MiniLM)."""

from __future__ import annotations

import pytest

from indexer.build import build_index
from search import Index
from tests.helpers import MULTILINGUAL_DOCS, write_files

# Each query is in a language other than its relevant document's.
CROSS_LINGUAL = [
    ("Wie bestäuben Bienen Blumen?", "en/bees.txt"),  # de -> en
    ("How does a volcano erupt?", "de/vulkan.md"),  # en -> de
    ("¿Cómo convierten las plantas la luz en energía?", "fr/photosynthese.txt"),  # es -> fr
    ("How is coffee grown and prepared?", "es/cafe.html"),  # en -> es
    ("Qu'est-ce qui provoque les marées?", "ja/kaiyo.txt"),  # fr -> ja
    ("国际象棋的规则是什么？", "ru/shakhmaty.txt"),  # zh -> ru
    ("Как растения производят кислород?", "fr/photosynthese.txt"),  # ru -> fr
]


@pytest.fixture(scope="module")
def use_index(tmp_path_factory, use_model):
    corpus = write_files(tmp_path_factory.mktemp("corpus"), MULTILINGUAL_DOCS)
    path = tmp_path_factory.mktemp("idx") / "i.idx"
    build_index(corpus, path, model=use_model)
    return Index.open(path, model=use_model)


@pytest.mark.parametrize(("query", "relevant"), CROSS_LINGUAL)
def test_cross_lingual_query_ranks_the_relevant_document_first(use_index, query, relevant):
    hits = use_index.search(query, k=3)
    assert hits[0].doc_id == relevant, [(h.doc_id, round(h.score, 3)) for h in hits]


def test_minilm_english_search_ranks_the_relevant_passage_first(tmp_path, minilm_dir):
    corpus = write_files(
        tmp_path / "c",
        {
            "astronomy.txt": "A black hole is a region of spacetime where gravity is so strong that nothing, "
            "not even light, can escape from it.",
            "cooking.txt": "To bake bread, mix flour, water, salt and yeast, knead the dough and let it rise.",
            "sports.txt": "The marathon is a long-distance foot race of 42.195 kilometres.",
            "finance.txt": "A bond is a loan that an investor makes to a company or a government.",
        },
    )
    build_index(corpus, tmp_path / "i.idx", model=str(minilm_dir))
    index = Index.open(tmp_path / "i.idx")  # reloads all-MiniLM from the recorded path
    assert index.search("What can't escape the pull of a collapsed star?", k=1)[0].doc_id == "astronomy.txt"
    assert index.search("How do I make a loaf at home?", k=1)[0].doc_id == "cooking.txt"
    assert index.search("running 42 km", k=1)[0].doc_id == "sports.txt"
    assert index.stats()["dimension"] == 384
