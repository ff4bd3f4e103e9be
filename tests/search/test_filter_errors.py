"""Bad filters are errors, empty results are explained (issue 14, gap 1): language names and
codes, ``where`` parse errors, unknown metadata keys and sources that match nothing, through
the Python API, the CLI and HTTP (422)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from indexer.build import build_index
from indexer.cli import cli
from search import Index, InvalidFilter, InvalidInput
from search.filters import parse_where
from search.languages import resolve
from search.server import create_app
from store import holdings
from tests.helpers import MULTILINGUAL_DOCS, write_files

RECORDS = [
    {"id": f"r{y}", "text": f"Report of the year {y} on volcanoes.", "year": y, "author": {"name": "Ada"}}
    for y in range(2017, 2024)
]
GRAMMAR = "conditions look like key=value, key>=number or 'key in a,b'"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    """``(corpus root, index path)``: six documents in six languages and seven records."""
    root = tmp_path_factory.mktemp("filter-errors")
    files = dict(MULTILINGUAL_DOCS) | {"records.jsonl": "\n".join(json.dumps(r) for r in RECORDS) + "\n"}
    corpus = write_files(root / "corpus", files)
    build_index(corpus, root / "i.idx", model=tiny_model, id_field="id")
    return corpus, root / "i.idx"


@pytest.fixture(scope="module")
def index(built, tiny_model):
    with Index.open(built[1], model=tiny_model) as idx:
        yield idx


@pytest.fixture(scope="module")
def client(built, tiny_model):
    app = create_app(Index.open(built[1], model=tiny_model))  # closes its index on shutdown
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client


def cli_search(built, *args, code):
    result = CliRunner().invoke(cli, ["search", "volcano", "--index", str(built[1]), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


# -- languages ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["DE", "deu", "ger", "german", "German", "Deutsch", " de "])
def test_a_language_named_by_any_iso_code_or_name_in_any_case_finds_its_passages(index, name):
    assert [h.doc_id for h in index.search("Vulkan", k=5, lang="de")] == ["de/vulkan.md"]
    assert index.search("Vulkan", k=5, lang=name) == index.search("Vulkan", k=5, lang="de")


def test_codes_resolve_to_what_the_index_stores():
    assert resolve("cmn").code == "zh" and resolve("Mandarin").code == "zh"  # macrolanguage, as detected
    assert resolve("fre").codes == ("fr", "fra", "fre") and str(resolve("FRA")) == "French (fr)"
    assert resolve("ελληνικά").code == "el" and resolve("pt_br").code == "pt-BR"
    assert resolve("xx") is None and resolve("de,fr") is None


def test_a_language_the_index_lacks_is_an_error_naming_what_it_holds(index):
    with pytest.raises(InvalidFilter, match=r"holds no Italian \(it\) passages; it holds: en \(\d+\), .*ru \(1\)"):
        index.search("Vulkan", lang="italian")
    with pytest.raises(InvalidFilter, match=r"holds no Italian \(it\) or Chinese \(zh\) passages"):
        index.search("Vulkan", lang=["it", "zho"])
    assert isinstance(InvalidFilter("x"), InvalidInput)  # callers catching InvalidInput still do


def test_a_text_that_names_no_language_is_an_error_even_beside_a_good_one(index):
    with pytest.raises(InvalidFilter, match=r"'xx' names no language: give an ISO 639 code .* holds: en \("):
        index.search("Vulkan", lang="xx")
    with pytest.raises(InvalidFilter, match=r"'xx' names no language"):
        index.search("Vulkan", lang=["de", "xx"])  # de alone would find hits


# -- where --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("year>>2020", "unexpected '>' at position 5"),
        ("year=>2020", "unexpected '>' at position 5"),
        ("year>=", "a value is missing after '>=' at position 6"),
        ("year in a,,b", "a value is missing in the list after 'in' at position 10"),
        ("year", "an operator is missing after the key 'year' at position 4"),
    ],
)
def test_a_where_condition_that_does_not_read_names_the_position_and_the_grammar(condition, problem):
    with pytest.raises(InvalidFilter, match=f"cannot read the condition '{condition}': {problem}; {GRAMMAR}"):
        parse_where([condition])


def test_a_value_starting_with_an_operator_character_is_read_only_when_quoted():
    assert parse_where(["op='>=x'", "year >= 2020"]) == {"op": {"=": ">=x"}, "year": {">=": 2020}}
    with pytest.raises(InvalidFilter, match="unexpected '>' at position 3"):
        parse_where(["op=>=x"])


def test_an_unknown_metadata_key_is_an_error_listing_the_known_keys(index):
    message = r"No document has the metadata key 'yaer'. Did you mean 'year'\? The keys documents have: "
    with pytest.raises(
        InvalidFilter, match=message + r"author \(7\), author.name \(7\), year \(7\), title \(2\)\."
    ):  # the HTML page's and the Markdown file's
        index.search("volcano", where={"yaer": {">=": 2020}})
    with pytest.raises(InvalidFilter, match=r"metadata key 'author.nmae'. Did you mean 'author.name'"):
        index.search("volcano", where={"author.nmae": "Ada"})


def test_an_absent_key_compared_with_none_and_a_known_key_that_matches_nothing_are_not_errors(index):
    assert len(index.search("volcano", k=20, where={"colour": None})) == 13  # every document lacks it
    with pytest.raises(InvalidFilter, match="No document has the metadata key 'colour'"):
        index.search("volcano", k=20, where={"colour": {"!=": None}})  # ... so none has it
    assert index.search("volcano", k=20, where={"year": {">=": 3000}}) == []  # a real, empty answer
    assert index.search("volcano", k=20, lang="de", where={"year": 2020}) == []  # each part matches alone


# -- source -------------------------------------------------------------------------------------
def test_a_source_given_as_an_on_disk_path_suggests_the_stored_form(index, built):
    corpus = built[0]
    for given in (str(corpus / "en" / "bees.txt"), "corpus/en/bees.txt", "./corpus/en/bees.txt"):
        with pytest.raises(InvalidFilter, match=r"relative to the corpus root.*Did you mean 'en/bees.txt'\?"):
            index.search("bees", source=given)
    with pytest.raises(InvalidFilter, match=r"Did you mean 'en/'\?"):
        index.search("bees", source=f"{corpus}/en/")
    with pytest.raises(InvalidFilter, match=r"Did you mean 'de/\*.md'\?"):
        index.search("bees", source="corpus/de/*.md")


def test_a_source_that_matches_nothing_names_the_closest_sources(index):
    with pytest.raises(
        InvalidFilter, match=r"the prefix 'EN/' .*case-sensitive.*closest stored sources: 'en/bees.txt'"
    ):
        index.search("bees", source="EN/")
    with pytest.raises(InvalidFilter, match=r"'r2019': that is a document id; its source is 'records.jsonl'"):
        index.search("bees", source="r2019")


def test_filters_that_find_hits_never_read_what_the_index_holds(index, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("read on the path of a search that finds hits")

    for name in ("chunk_languages", "metadata_keys", "any_chunk", "any_document", "has_key", "sources_near"):
        monkeypatch.setattr(holdings, name, refuse)
    assert index.search("Vulkan", k=2, lang="Deutsch", source="de/", where={"colour": None})


def test_checks_over_the_time_budget_leave_the_answer_empty(index, monkeypatch):
    def slow(*args, **kwargs):
        raise InvalidInput("explaining this filter needs more than 2 s of work in the database")

    monkeypatch.setattr(holdings, "any_document", slow)
    assert index.search("bees", source="nowhere/") == []


# -- the CLI and HTTP ---------------------------------------------------------------------------
def test_the_cli_resolves_languages_and_refuses_bad_filters_with_their_message(built):
    hits = json.loads(cli_search(built, "--lang", "DEU,French", "--json", "-k", "10", code=0))
    assert {h["lang"] for h in hits} == {"de", "fr"}
    assert "'xx' names no language" in cli_search(built, "--lang", "xx", code=1)
    assert "holds no German" not in cli_search(built, "--lang", "german", code=0)
    assert "unexpected '>' at position 5" in cli_search(built, "--where", "year>>2020", code=1)
    assert "Did you mean 'year'?" in cli_search(built, "--where", "yaer>=2020", code=1)
    output = cli_search(built, "--source", str(built[0] / "en" / "bees.txt"), code=1)
    assert "Did you mean 'en/bees.txt'?" in output and "No hits." not in output


def test_http_answers_bad_filters_with_422_and_the_message(client, built):
    ok = client.get("/search", params={"q": "Vulkan", "lang": "deu,Deutsch", "k": 3})
    assert ok.status_code == 200 and [h["doc_id"] for h in ok.json()["hits"]] == ["de/vulkan.md"]
    for params, message in [
        ({"lang": "xx"}, "'xx' names no language"),
        ({"lang": "it"}, "holds no Italian (it) passages"),
        ({"where": "year>>2020"}, "unexpected '>' at position 5"),
        ({"where": "yaer>=2020"}, "Did you mean 'year'?"),
        ({"source": str(built[0] / "en" / "bees.txt")}, "Did you mean 'en/bees.txt'?"),
    ]:
        response = client.get("/search", params={"q": "Vulkan", **params})
        assert response.status_code == 422 and message in response.json()["detail"], (params, response.text)
    posted = client.post("/search", json={"query": "Vulkan", "where": {"yaer": {">=": 2020}}})
    assert posted.status_code == 422 and "Did you mean 'year'?" in posted.json()["detail"]
    posted = client.post("/search", json={"query": "Vulkan", "lang": ["GER", "french"], "k": 10})
    assert posted.status_code == 200 and {h["lang"] for h in posted.json()["hits"]} == {"de", "fr"}
