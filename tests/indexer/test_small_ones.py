"""Issue 14's small ones: markup out of passages, settings the index cannot use are said,
a misspelled model name gets a suggestion."""

from __future__ import annotations

import pytest

from indexer.build import build_index
from indexer.embedding.registry import suggestion
from indexer.markup import markdown_text
from indexer.reading import read_corpus
from search import Index
from store.errors import InvalidInput
from tests.helpers import write_files

MARKDOWN = """---
title: "Vulkane"
year: 2024
tags: [geo, earth]
---
# Ausbrüche

Ein **Vulkan** bricht aus, wenn [Magma](https://example.org/magma) aufsteigt.

- Lava
- *Asche*

| Name | Höhe |
|---|---|
| Ätna | 3357 |

![Ein Krater](krater.png)
"""

HTML = """<html><head><title>Kaffee</title></head><body>
<header><a href="/">Home</a> <a href="/shop">Shop</a></header>
<nav><ul><li>Menu one</li><li>Menu two</li></ul></nav>
<main><article><header><h1>Wie Kaffee entsteht</h1></header>
<p>Die Bohnen werden geröstet und gemahlen.</p>
<footer>Von A. Autor</footer></article></main>
<aside>Related: tea</aside>
<div role="contentinfo">© 2026 Example GmbH · Impressum</div>
<form><input name="q"><button>Search</button></form>
<footer>Cookie settings · Privacy</footer>
</body></html>"""


def test_markdown_passages_hold_the_text_not_the_markup():
    text, metadata = markdown_text(MARKDOWN)
    assert text.startswith("Ausbrüche\n\nEin Vulkan bricht aus, wenn Magma aufsteigt.")
    for markup in ("#", "**", "](", "https://", "|---", "![", "---"):
        assert markup not in text, markup
    assert "Lava" in text and "Asche" in text and "Ätna | 3357" in text and "Ein Krater" in text
    assert metadata == {"title": "Vulkane", "year": 2024}  # front matter: simple values, numbers typed
    assert markdown_text("# Only a heading\n\nand text")[1] == {"title": "Only a heading"}


def test_html_passages_leave_out_navigation_headers_footers_and_forms(tmp_path):
    corpus = write_files(tmp_path / "c", {"kaffee.html": HTML, "links.html": "<nav><a>Only</a> <a>links</a></nav>"})
    docs = {d.doc_id: d for d in read_corpus(corpus)}
    text = docs["kaffee.html"].text
    assert "Wie Kaffee entsteht" in text and "Die Bohnen werden geröstet" in text  # the article's own header
    for furniture in ("Home", "Shop", "Menu one", "Related: tea", "Impressum", "Search", "Cookie settings", "Autor"):
        assert furniture not in text, furniture
    assert "Only" in docs["links.html"].text  # a page of nothing but furniture keeps it


def test_a_markdown_file_is_indexed_as_plain_text(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "c", {"vulkan.md": MARKDOWN})
    build_index(corpus, tmp_path / "idx", model=tiny_model)
    with Index.open(tmp_path / "idx") as index:
        document = index.get_document("vulkan.md")
        assert document["metadata"] == {"title": "Vulkane", "year": 2024}
        assert all("**" not in c["text"] and "](" not in c["text"] for c in document["chunks"])
        assert [h.doc_id for h in index.search("Magma", mode="lexical")] == ["vulkan.md"]


def test_chunk_tokens_above_the_models_limit_are_refused_before_anything_is_written(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "c", {"a.txt": "text"})
    with pytest.raises(InvalidInput, match=f"above what the model .* reads \\({tiny_model.max_tokens} tokens\\)"):
        build_index(corpus, tmp_path / "idx", model=tiny_model, chunk_tokens=tiny_model.max_tokens + 1)
    assert not (tmp_path / "idx").exists()
    with pytest.raises(InvalidInput, match="above what the model"):
        Index.create(tmp_path / "new", model=tiny_model, chunk_tokens=tiny_model.max_tokens + 1)
    assert not (tmp_path / "new").exists()
    build_index(corpus, tmp_path / "ok", model=tiny_model, chunk_tokens=tiny_model.max_tokens)


def test_a_pq_index_type_too_small_to_train_says_it_searches_exactly_meanwhile(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "c", {f"d{i}.txt": f"document {i}" for i in range(5)})
    report = build_index(corpus, tmp_path / "idx", model=tiny_model, index_type="ivf-pq")
    assert report.index_type == "IDMap2,SQfp16"
    assert any("ivf-pq needs at least 1,000 chunks" in w["warning"] for w in report.warnings), report.warnings


def test_a_misspelled_model_name_gets_a_suggestion():
    assert "Did you mean 'distilmbert'?" in suggestion("distilmbrt")
    assert "Did you mean 'use-multilingual'?" in suggestion("use-multilingal")
    assert suggestion("distilmbert") == "" and suggestion("completely-different-model") == ""
