"""Filters on Index.search: lang, source (glob and prefix), metadata where; k hits inside the search."""

from __future__ import annotations

import json

import pytest

import search.index as search_index
from indexer.build import build_index
from search import Index, InvalidFilter, InvalidInput
from search.filters import parse_where
from tests.fakes import HashingEmbedder
from tests.helpers import write_files

MODEL = HashingEmbedder()

RECORDS = [
    {"id": "r2018", "text": "Annual report on rivers and weather.", "year": 2018, "tag": "a", "author": "Ada"},
    {"id": "r2019", "text": "Annual report on rivers and weather.", "year": 2019, "tag": "b", "author": "Bob"},
    {"id": "r2020", "text": "Annual report on rivers and weather.", "year": 2020, "tag": "c", "author": "Ada"},
    {"id": "r2021", "text": "Annual report on rivers and weather.", "year": 2021, "tag": "a", "author": "x' OR '1'='1"},
    {
        "id": "r2022",
        "text": "Annual report on rivers and weather.",
        "year": 2022,
        "tag": "b",
        "meta": {"reviewed": True},
    },
]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """400 one-chunk documents: 380 English, 20 German (5% of the chunks)."""
    root = tmp_path_factory.mktemp("mixed")
    files = {
        f"en/{i:03d}.txt": f"Record {i} describes the weather in the northern city and the river that flows through it."
        for i in range(380)
    }
    files |= {
        f"de/{i:03d}.txt": f"Der Bericht {i} beschreibt das Wetter in der nördlichen Stadt und den Fluss, der "
        "durch sie fließt."
        for i in range(20)
    }
    write_files(root / "c", files)
    paths = {}
    for kind in ("flat", "ivf", "hnsw"):
        build_index(root / "c", root / kind, model=MODEL, index_type=kind)
        paths[kind] = root / kind
    return paths


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("filters")
    write_files(
        root / "c",
        {
            "docs/a.md": "Rivers carry water and weather shapes them.",
            "docs/b.txt": "Rivers carry water and weather shapes them.",
            "docs/sub/c.md": "Rivers carry water and weather shapes them.",
            "notes/d.md": "Rivers carry water and weather shapes them.",
            "records.jsonl": "\n".join(json.dumps(r) for r in RECORDS) + "\n",
        },
    )
    build_index(root / "c", root / "i", model=MODEL, id_field="id")
    with Index.open(root / "i", model=MODEL) as idx:
        yield idx


def ids(hits):
    return sorted(h.doc_id for h in hits)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("exact", [True, False])
def test_a_language_of_5_percent_still_gives_k_hits_all_in_it(mixed, kind, exact, monkeypatch):
    if not exact:  # force the FAISS ID selector path
        monkeypatch.setattr(search_index, "EXACT_MAX", 0)
        monkeypatch.setattr(search_index, "EXACT_FRACTION", 0.0)
    with Index.open(mixed[kind], model=MODEL) as idx:
        assert idx.stats()["languages"] == {"en": 380, "de": 20}
        hits = idx.search("weather in the city", k=10, lang="de")
        assert len(hits) == 10 and {h.lang for h in hits} == {"de"}
        assert len(idx.search("weather in the city", k=50, lang="de")) == 20
        assert len(idx.search("weather in the city", k=20, lang="de", nprobe=1)) == 20  # IVF: more lists
        both = idx.search("weather", k=30, lang=["de", "fr"])
        assert len(both) == 20 and {h.lang for h in both} == {"de"}
        with pytest.raises(InvalidFilter, match=r"holds no French \(fr\) passages; it holds: en \(380\), de \(20\)"):
            idx.search("weather", k=5, lang="fr")  # a language the index lacks is an error, not silence


def test_the_selector_path_agrees_with_exact_search(mixed, monkeypatch):
    with Index.open(mixed["flat"], model=MODEL) as idx:
        exact = idx.search("Wetter Stadt", k=8, lang="en")
        monkeypatch.setattr(search_index, "EXACT_MAX", 0)
        monkeypatch.setattr(search_index, "EXACT_FRACTION", 0.0)
        via_faiss = idx.search("Wetter Stadt", k=8, lang="en")
        assert [h.score for h in via_faiss] == pytest.approx([h.score for h in exact], abs=1e-5)
        assert {h.lang for h in via_faiss} == {"en"}


def test_source_glob_and_prefix(index):
    assert ids(index.search("rivers", k=20, source="docs/*.md")) == ["docs/a.md", "docs/sub/c.md"]
    assert ids(index.search("rivers", k=20, source="docs/?.txt")) == ["docs/b.txt"]
    assert ids(index.search("rivers", k=20, source="*.md")) == ["docs/a.md", "docs/sub/c.md", "notes/d.md"]
    assert ids(index.search("rivers", k=20, source="docs/")) == ["docs/a.md", "docs/b.txt", "docs/sub/c.md"]
    assert ids(index.search("rivers", k=20, source="docs/a")) == ["docs/a.md"]
    assert ids(index.search("rivers", k=20, source="docs/sub/")) == ["docs/sub/c.md"]
    assert len(index.search("rivers", k=20, source="records.jsonl")) == 5
    with pytest.raises(InvalidFilter, match=r"case-sensitive.*'docs/"):  # no match is an error naming the closest
        index.search("rivers", k=20, source="Docs/")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"year": 2020}, ["r2020"]),
        ({"year": {"=": 2020}}, ["r2020"]),
        ({"year": {"==": 2020}}, ["r2020"]),
        ({"year": {"!=": 2020}}, ["r2018", "r2019", "r2021", "r2022"]),
        ({"year": {"<": 2020}}, ["r2018", "r2019"]),
        ({"year": {"<=": 2020}}, ["r2018", "r2019", "r2020"]),
        ({"year": {">": 2020}}, ["r2021", "r2022"]),
        ({"year": {">=": 2020}}, ["r2020", "r2021", "r2022"]),
        ({"year": {">=": 2019, "<": 2022}}, ["r2019", "r2020", "r2021"]),
        ({"tag": {"in": ["a", "c"]}}, ["r2018", "r2020", "r2021"]),
        ({"tag": "b", "year": {">": 2019}}, ["r2022"]),
        ({"author": "Ada"}, ["r2018", "r2020"]),
        ({"author": None}, ["docs/a.md", "docs/b.txt", "docs/sub/c.md", "notes/d.md", "r2022"]),  # missing = None
        ({"author": {"!=": None}}, ["r2018", "r2019", "r2020", "r2021"]),
        ({"meta.reviewed": True}, ["r2022"]),
    ],
)
def test_each_where_operator(index, where, expected):
    hits = index.search("rivers", k=20, where=where)
    assert ids(hits) == expected
    assert ids(index.search("rivers", k=20, where=where, mode="lexical")) == expected
    assert ids(index.search("rivers", k=20, where=where, mode="hybrid")) == expected


def test_filters_combine(index):
    assert ids(index.search("rivers", k=20, lang="en", source="records.jsonl", where={"year": {"<": 2020}})) == [
        "r2018",
        "r2019",
    ]


@pytest.mark.parametrize("key", ["year') OR 1=1 --", 'year"', "$.year", "a[0]", "1year", "", "a..b", "a b"])
def test_injection_through_keys_is_refused(index, key):
    with pytest.raises(InvalidInput, match=r"bad metadata key .*letters, digits and underscores"):
        index.search("rivers", where={key: 1})


@pytest.mark.parametrize("value", ["x' OR '1'='1", "2020) OR (1=1", "'; DROP TABLE chunks; --"])
def test_injection_through_values_matches_only_that_literal_value(index, value):
    found = index.search("rivers", k=20, where={"author": value})
    assert ids(found) == (["r2021"] if value == "x' OR '1'='1" else [])
    assert ids(index.search("rivers", k=20, where={"year": {"in": [value, 2018]}})) == ["r2018"]
    with pytest.raises(InvalidFilter, match="names no language"):
        index.search("rivers", k=20, lang=value)
    with pytest.raises(InvalidFilter, match="No document's source matches"):
        index.search("rivers", k=20, source=value)
    assert len(index.search("rivers", k=20)) == 9  # nothing was dropped


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            {"year": {"~": 1}},
            r"unknown operator '~' for the metadata key 'year'; operators are =, !=, <, <=, >, >=, in",
        ),
        ({"year": {"LIKE": 1}}, r"unknown operator 'LIKE'"),
        ({"year": {}}, r"no condition for the metadata key 'year'"),
        ({"year": {"in": "ab"}}, r"'in' for the metadata key 'year' needs a non-empty list"),
        ({"year": {"in": []}}, r"needs a non-empty list"),
        ({"year": {"<": None}}, r"compared with None by = or !="),
        ({"year": [1, 2]}, r"is not a string, number, boolean or None"),
        (["year"], r"where must be a dict"),
    ],
)
def test_bad_where_says_what_is_allowed(index, where, message):
    with pytest.raises(InvalidInput, match=message):
        index.search("rivers", where=where)


def test_bad_lang_source_mode_group_by(index):
    with pytest.raises(InvalidInput, match="lang must be a language code"):
        index.search("rivers", lang=[])
    with pytest.raises(InvalidInput, match="source must be a non-empty glob"):
        index.search("rivers", source="")
    with pytest.raises(InvalidInput, match="mode must be one of dense, lexical, hybrid, not 'fuzzy'"):
        index.search("rivers", mode="fuzzy")
    with pytest.raises(InvalidInput, match="group_by must be None or 'document'"):
        index.search("rivers", group_by="source")


def test_parse_where_reads_cli_conditions():
    assert parse_where(
        [
            "year>=2020",
            "year<2024",
            "tag in a, b,3",
            "author=Ada",
            "score != 0.5",
            "name='x y'",
            "code==007",
            "n=-1.5e3",
        ]
    ) == {
        "year": {">=": 2020, "<": 2024},
        "tag": {"in": ["a", "b", 3]},
        "author": {"=": "Ada"},
        "score": {"!=": 0.5},
        "name": {"=": "x y"},
        "code": {"==": "007"},
        "n": {"=": -1500.0},
    }
    with pytest.raises(InvalidFilter, match=r"cannot read the condition 'year~2020': unexpected '~' at position 4"):
        parse_where(["year~2020"])


def test_filters_apply_in_lexical_and_hybrid_modes(mixed):
    with Index.open(mixed["flat"], model=MODEL) as idx:
        hybrid = idx.search("weather Wetter", k=10, lang="de", mode="hybrid")
        assert len(hybrid) == 10 and {h.lang for h in hybrid} == {"de"}
        assert all(h.signals == ("dense", "lexical") for h in hybrid)
        assert len(idx.search("Wetter", k=30, lang="de", mode="lexical")) == 20
        assert idx.search("Wetter", k=30, lang="en", mode="lexical") == []
        assert [h.doc_id for h in idx.search("Bericht", k=3, mode="hybrid", source="de/007")] == ["de/007.txt"]
