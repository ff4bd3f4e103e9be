"""`indexer search` with --mode, --lang, --source, --where, --group-by, and highlighted snippets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from indexer.build import build_index
from indexer.cli import cli
from search.snippet import columns, match_spans, snippet
from tests.helpers import MULTILINGUAL_DOCS, write_files

RECORDS = [
    {"id": f"r{y}", "text": f"Report of the year {y} on volcanoes.", "year": y, "tag": "ab"[y % 2]}
    for y in range(2017, 2024)
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("search-cli")
    files = dict(MULTILINGUAL_DOCS) | {"records.jsonl": "\n".join(json.dumps(r) for r in RECORDS) + "\n"}
    build_index(write_files(root / "c", files), root / "i.idx", model=tiny_model, id_field="id")
    return root / "i.idx"


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def search_json(built, *args):
    return json.loads(run("search", *args, "--index", built, "--json"))


def test_lexical_mode_highlights_the_matched_term_in_brackets_when_piped(built):
    lines = run("search", "Magma", "--index", built, "--mode", "lexical").splitlines()
    assert lines[0].split() == ["rank", "score", "lang", "source", "text"]
    assert len(lines) == 2 and "de/vulkan.md" in lines[1]
    assert "[[Magma]]" in lines[1] and lines[1].count("[[") == 1  # "Magma" occurs twice; the second is cut
    hits = search_json(built, "Magma", "--mode", "lexical")
    assert [(h["doc_id"], h["signals"]) for h in hits] == [("de/vulkan.md", ["lexical"])]


def test_hybrid_mode_and_signals(built):
    hits = search_json(built, "Magma", "--mode", "hybrid", "-k", "3")
    assert hits[0]["doc_id"] == "de/vulkan.md" and "lexical" in hits[0]["signals"]
    assert len(hits) == 3


def test_dense_mode_shows_the_start_of_the_chunk(built):
    lines = run("search", "Magma", "--index", built, "-k", "1", "--source", "en/").splitlines()
    assert lines[1].split()[3:5] == ["en/bees.txt", "Honeybees"] and "[[" not in lines[1]


def test_lang_source_and_where_options(built):
    hits = search_json(built, "anything", "-k", "50", "--lang", "de,fr")
    assert hits and {h["lang"] for h in hits} == {"de", "fr"}
    assert {h["doc_id"] for h in search_json(built, "x", "-k", "50", "--source", "*.txt")} == {
        "en/bees.txt",
        "fr/photosynthese.txt",
        "ja/kaiyo.txt",
        "ru/shakhmaty.txt",
    }
    hits = search_json(built, "volcano", "-k", "50", "--where", "year>=2020", "--where", "tag in a")
    assert sorted(h["doc_id"] for h in hits) == ["r2020", "r2022"]
    assert search_json(built, "volcano", "--where", "year=2019")[0]["metadata"] == {"year": 2019, "tag": "b"}


def test_group_by_document_option(built):
    hits = search_json(built, "volcano", "-k", "4", "--group-by", "document")
    assert len(hits) == 4 == len({h["doc_id"] for h in hits})


def test_bad_filters_exit_1_saying_what_is_allowed(built):
    out = run("search", "x", "--index", built, "--where", "year~2020", code=1)
    assert out == (
        "Error: cannot read the condition 'year~2020': unexpected '~' at position 4; conditions look like "
        "key=value, key>=number or 'key in a,b' (operators = != < <= > >= in; quote a value that starts with "
        "< > = or !: name='=x').\n"
    )
    out = run("search", "x", "--index", built, "--where", "year')OR(1=1)--", code=1)
    assert out.startswith('Error: cannot read the condition "year\')OR(1=1)--": unexpected "\'" at position 4')
    out = run("search", "x", "--index", built, "--where", "1year=1", code=1)
    assert out.startswith("Error: bad metadata key '1year': keys are letters, digits and underscores")
    assert "Invalid value for '--mode'" in run("search", "x", "--index", built, "--mode", "fuzzy", code=2)


def test_snippet_windows_and_spans():
    assert match_spans("Order XK-4471-B and xk-4471-b", ["xk-4471-b"]) == [(6, 15), (20, 29)]
    assert snippet("a  b\n c", [], 10) == [("a b c", False)]
    assert snippet("The code is XK-1.", ["xk-1"], 40) == [("The code is ", False), ("XK-1", True), (".", False)]
    long = "word " * 30 + "TARGET here " + "tail " * 30
    parts = snippet(long, ["target"], 30)
    assert parts[0] == ("…", False) and parts[-1] == ("…", False) and ("TARGET", True) in parts
    assert columns("".join(p for p, _ in parts)) <= 30
    assert columns("".join(p for p, _ in snippet("海の潮の満ち引きは月の引力", ["引力"], 10))) <= 10


def test_a_phrase_is_highlighted_as_one_and_an_excluded_term_not_at_all(tmp_path, tiny_model):
    corpus = write_files(tmp_path / "c", {"a.txt": "The red car is fast.", "b.txt": "A red car in a draft."})
    build_index(corpus, tmp_path / "i.idx", model=tiny_model)
    out = run("search", '"red car" -draft', "--index", tmp_path / "i.idx", "--mode", "lexical")
    assert "[[red car]]" in out  # the query's words, not its quotes
    assert "b.txt" not in out and "[[-draft]]" not in out
