"""The standing adversary: schemathesis over the server's own OpenAPI schema, with the token,
against a real ``indexer serve`` process, and the authentication matrix.

Every generated request must get an answer the schema allows: never a 500, a status code
the schema lists, a body that fits its response schema, a content type it declares.
Hypothesis is derandomised (the same examples on every run: no flaky fuzzing) and bounded
to :data:`EXAMPLES` per route.
"""

from __future__ import annotations

import itertools
import shutil
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from indexer.build import build_index
from tests.search.test_server_process import Server

TOKEN = "fuzz-token-0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 30
"""Examples per route (there are 9 routes and methods)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory, use_model):
    from tests.helpers import MULTILINGUAL_DOCS, write_files

    root = tmp_path_factory.mktemp("fuzz")
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "idx", model=use_model)
    shutil.copytree(root / "idx", root / "served")
    running = Server(root / "served", root / "server.log", token=TOKEN)
    yield running
    log = running.stop()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_every_generated_request_gets_an_answer_the_schema_allows(server):
    """For each operation, :data:`EXAMPLES` generated requests (valid ones, and schemathesis's
    edge cases); a failure names the operation and the request that broke it."""
    raw = httpx.get(server.url + "/openapi.json", headers=AUTH, timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: dict[str, str] = {}
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        counts[name] = 0
        try:
            _fuzz(operation, server.url, counts, name)
        except Exception as exc:  # collect every operation's first failure, then report them all
            failures[name] = str(exc)[:2000]
    print("fuzzed examples per operation:", counts)
    assert len(counts) >= 9 and all(n >= 1 for n in counts.values()), counts
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def _fuzz(operation: Any, base_url: str, counts: dict[str, int], name: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: schemathesis.Case) -> None:
        counts[name] += 1
        case.call_and_validate(
            base_url=base_url, headers=AUTH, timeout=60, excluded_checks=excluded, additional_checks=extra
        )

    # The rules the schema cannot state: the ids of one upsert are distinct (a request that
    # names an id twice is refused with 422), so schema-valid upserts may be refused; and a
    # search filter must name what this index holds, so schema-valid searches may be refused,
    # but only with 422 saying what the index lacks (checked instead).
    searches = name in ("GET /search", "POST /search", "GET /documents")  # listings take the search filters
    excluded = [positive_data_acceptance] if name == "POST /documents" or searches else []
    extra = [refused_only_for_what_the_index_lacks] if searches else []

    run()


INDEX_LACKS = (
    "names no language",
    "The index holds no",
    "No document's source matches",
    "No document has the metadata key",
)
"""The beginnings of the messages of :mod:`search.explain` (a filter naming what the index lacks)."""


def refused_only_for_what_the_index_lacks(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """A schema-valid search answered 422 must be refused for a language, source or metadata
    key this index does not hold, never for a filter the schema allows but the server cannot read."""
    if response.status_code != 422 or case.meta is None or not case.meta.generation.mode.is_positive:
        return
    detail = response.json().get("detail")
    assert isinstance(detail, str) and any(m in detail for m in INDEX_LACKS), f"schema-valid search refused: {detail}"


ROUTES = [
    ("GET", "/search?q=Vulkan"),
    ("POST", "/search"),
    ("POST", "/documents"),
    ("GET", "/documents"),
    ("GET", "/documents/de/vulkan.md"),
    ("DELETE", "/documents/nothing-here"),
    ("POST", "/documents/delete"),
    ("GET", "/chunks/1"),
    ("GET", "/stats"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/no-such-route"),
    ("PUT", "/search"),
]
BAD_AUTH = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": f"Token {TOKEN}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"bearer{TOKEN}"},
    {"Authorization": f"Bearer {TOKEN.upper()}"},
    {"X-Authorization": f"Bearer {TOKEN}"},
]
BAD_HOSTS = ["evil.com", "127.0.0.1.evil.com", "[::1]evil.com", "localhost.", "", "127.0.0.2"]


@pytest.mark.slow
def test_the_authentication_matrix(server):
    """Every route and method, with every wrong credential: 401; with every foreign Host: 400;
    only /health and the page's own files answer without the token; nothing is ever 5xx."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for (method, path), headers in itertools.product(ROUTES, BAD_AUTH):
            response = client.request(method, path, headers=headers, json={"query": "x"})
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert TOKEN not in response.text
        for (method, path), host in itertools.product(ROUTES, BAD_HOSTS):
            response = client.request(method, path, headers={**AUTH, "Host": host}, json={"query": "x"})
            assert response.status_code == 400, (method, path, host, response.status_code)
        assert client.get("/health").status_code == 200
        assert client.head("/health").status_code == 200
        for page in ("/", "/docs", "/static/page.js"):  # the page's files hold nothing of the index
            assert client.get(page).status_code == 200, page
        for method, path in ROUTES:
            response = client.request(method, path, headers=AUTH, json={"query": "x"})
            assert response.status_code < 500, (method, path, response.status_code, response.text[:200])
