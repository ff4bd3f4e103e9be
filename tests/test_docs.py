"""The manual in docs/ documents the whole public surface, and these tests fail when it does not.

Conventions the docs follow (and that the checks below rely on):

- docs/cli.md has one level-2 heading per command whose text, backticks removed, starts with
  ``indexer NAME`` (``## `indexer build CORPUS --index DIR` ``). That command's section runs
  from its heading (included) to the next level-2 heading. Every option string of the command (each of
  ``click.Option.opts`` and ``secondary_opts``: ``--index-type``, ``-k``, ``-q``) and every
  argument's name (``CORPUS``) appears in its section. The group's own options
  (``--version``) appear somewhere in the page.
- docs/python.md names every name of ``search.__all__`` as `` `Name` `` or in a heading; every
  public member of ``Index`` as ``Index.name`` or ``index.name``; and every field of ``Hit`` and
  ``BuildReport`` as `` `field` `` in the section (level-2 heading) named after the class.
- docs/http.md has one heading (level 2 or 3) per route of the FastAPI app, reading
  ``METHOD /path`` (path parameters as ``{name}``, without converters). That route's section
  runs to the next heading of any level, and names every query parameter and every top-level
  body field of the route as `` `name` ``. The routes outside the OpenAPI schema (the search
  page, ``/docs``, ``/openapi.json``, the static files as ``GET /static/{path}``) appear in it
  as `` `METHOD /path` ``.
- docs/mcp.md has one level-3 heading per tool of ``indexer mcp --allow-writes`` reading
  `` `name` ``; the tool's section runs to the next heading of level 2 or 3 and names every
  argument of the tool as `` `name` ``.

The checking functions return what is missing (empty when the docs are complete); the
self-tests remove one item from the real docs and assert that the checker reports it.
Nothing here loads a model or opens an index.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount

import search
from indexer.cli import cli
from search.server import create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _mentions(text: str, word: str) -> bool:
    """Whether ``word`` (an option such as ``--index``, or a name) occurs as a whole token:
    ``--index`` does not count inside ``--index-type``, nor ``-k`` inside ``--max-k``."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def _sections(text: str, levels: tuple[int, ...]) -> list[tuple[str, str]]:
    """``(heading text without '#' and backticks, section text)`` for every heading of one of
    ``levels``; a section (its heading included) ends at the next heading of those levels.
    Lines in fenced code blocks are never taken for headings."""
    heading = re.compile(r"^(#{1,6}) +(.*?)\s*$")
    found: list[tuple[str, list[str]]] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else heading.match(line)
        if m and len(m[1]) in levels:
            found.append((m[2].replace("`", "").strip(), [line]))
        elif found:
            found[-1][1].append(line)
    return [(title, "\n".join(body)) for title, body in found]


# -- the command line ---------------------------------------------------------------------------
def cli_surface(group: click.Group) -> dict[str, list[str]]:
    """``{command name: [its option strings and argument names]}`` of a click group."""
    surface = {}
    for name, command in sorted(group.commands.items()):
        items = []
        for param in command.params:
            if isinstance(param, click.Option):
                items += [*param.opts, *param.secondary_opts]
            elif isinstance(param, click.Argument):
                items.append(param.human_readable_name)
        surface[name] = items
    return surface


def group_options(group: click.Group) -> list[str]:
    return [opt for p in group.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)]


def undocumented_cli(text: str, surface: dict[str, list[str]], global_options: list[str]) -> list[str]:
    """What docs/cli.md (``text``) lacks: ``indexer NAME`` for a command without its own
    section, ``indexer NAME --option`` for an option missing from the command's section."""
    sections: dict[str, list[str]] = {}
    for title, body in _sections(text, (2,)):
        m = re.match(r"indexer ([\w-]+)(?:\s|$)", title)
        if m:
            sections.setdefault(m[1], []).append(body)
    missing = [f"indexer {opt}" for opt in global_options if not _mentions(text, opt)]
    for name, items in surface.items():
        bodies = sections.get(name, [])
        if len(bodies) != 1:
            missing.append(f"indexer {name}" + ("" if not bodies else f" (has {len(bodies)} sections, not 1)"))
            continue
        missing += [f"indexer {name} {item}" for item in items if not _mentions(bodies[0], item)]
    return missing


def test_every_command_and_option_is_in_docs_cli():
    surface = cli_surface(cli)
    assert {
        "build",
        "import",
        "search",
        "stats",
        "remove",
        "check",
        "repair",
        "reindex",
        "eval",
        "models",
        "serve",
    } <= set(surface)
    assert undocumented_cli(_read("cli.md"), surface, group_options(cli)) == []


def test_the_cli_check_reports_a_command_left_undocumented():
    text = _read("cli.md")
    heading = next(line for line in text.splitlines() if line.startswith("## `indexer reindex"))
    without = text.replace(heading, "")
    assert "indexer reindex" in undocumented_cli(without, cli_surface(cli), group_options(cli))


def test_the_cli_check_reports_an_option_missing_from_its_commands_section():
    # --mmap stays documented under search and serve: only the stats section loses it.
    text = _read("cli.md")
    start = text.index("## `indexer stats")
    end = text.index("\n## ", start + 1)
    section = re.sub(r"(?<![\w-])--mmap(?![\w-])", "--memory-map", text[start:end])
    without = text[:start] + section + text[end:]
    assert _mentions(without, "--mmap")
    missing = undocumented_cli(without, cli_surface(cli), group_options(cli))
    assert missing == ["indexer stats --mmap"]


def test_the_cli_check_reports_a_new_option_nobody_documented():
    surface = cli_surface(cli)
    surface["build"] = [*surface["build"], "--frobnicate"]
    assert undocumented_cli(_read("cli.md"), surface, group_options(cli)) == ["indexer build --frobnicate"]


# -- the Python API -----------------------------------------------------------------------------
def python_surface() -> dict[str, list[str]]:
    """The names docs/python.md must cover, by kind."""
    return {
        "exports": sorted(search.__all__),
        "index_members": sorted(n for n in vars(search.Index) if not n.startswith("_")),
        "Hit": [f.name for f in dataclasses.fields(search.Hit)],
        "BuildReport": [f.name for f in dataclasses.fields(search.BuildReport)],
    }


def undocumented_python(text: str, surface: dict[str, list[str]]) -> list[str]:
    headings = [title for title, _ in _sections(text, (1, 2, 3, 4))]
    missing = [
        name
        for name in surface["exports"]
        if f"`{name}`" not in text and not any(_mentions(title, name) for title in headings)
    ]
    missing += [
        f"Index.{name}" for name in surface["index_members"] if not re.search(rf"\b[Ii]ndex\.{re.escape(name)}\b", text)
    ]
    sections = dict(_sections(text, (2,)))
    for cls in ("Hit", "BuildReport"):
        body = sections.get(cls)
        if body is None:
            missing.append(f"section {cls}")
            continue
        missing += [f"{cls}.{field}" for field in surface[cls] if f"`{field}`" not in body]
    return missing


def test_every_public_python_name_is_in_docs_python():
    surface = python_surface()
    assert {"Index", "Hit", "build_index", "BabelIndexError"} <= set(surface["exports"])
    assert undocumented_python(_read("python.md"), surface) == []


def test_the_python_check_reports_a_name_left_undocumented():
    text = (
        _read("python.md")
        .replace("`DimensionMismatch`", "`WidthMismatch`")
        .replace("DimensionMismatch", "WidthMismatch")
    )
    assert undocumented_python(text, python_surface()) == ["DimensionMismatch"]


def test_the_python_check_reports_a_missing_hit_field_and_index_method():
    surface = python_surface()
    surface["Hit"] = [*surface["Hit"], "relevance"]
    surface["index_members"] = [*surface["index_members"], "compact"]
    assert undocumented_python(_read("python.md"), surface) == ["Index.compact", "Hit.relevance"]


# -- the HTTP API -------------------------------------------------------------------------------
class _BareIndex:
    """What ``create_app`` touches while building the app: ``index.embed``, kept for the query
    batcher, and ``index.path``, kept out of messages. The app's lifespan (which would call
    them) is never run here."""

    path = Path("bare.idx")

    def embed(self, queries: list[str]) -> object:
        raise AssertionError("the docs test must not embed anything")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(_BareIndex())  # type: ignore[arg-type]  # a stand-in for search.Index


def http_surface(app: FastAPI) -> dict[str, list[str]]:
    """``{"METHOD /path": [query parameter and body field names]}`` of the app's own routes."""
    spec = app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    surface: dict[str, list[str]] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue  # the pages and their files: page_surface
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {doc_id:path} -> {doc_id}
        for method in sorted(route.methods - {"HEAD"}):
            operation = spec["paths"][path][method.lower()]
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:
                names += list(schemas[body["$ref"].rsplit("/", 1)[-1]].get("properties", {}))
            surface[f"{method} {path}"] = names
    return surface


def undocumented_http(text: str, surface: dict[str, list[str]]) -> list[str]:
    sections: dict[str, list[str]] = {}
    for title, body in _sections(text, (1, 2, 3, 4)):
        m = re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE) (/\S*)", title)
        if m:
            sections.setdefault(f"{m[1]} {m[2]}", []).append(body)
    missing = []
    for route, names in surface.items():
        bodies = sections.get(route, [])
        if len(bodies) != 1:
            missing.append(route + ("" if not bodies else f" (has {len(bodies)} sections, not 1)"))
            continue
        missing += [f"{route} {name}" for name in names if f"`{name}`" not in bodies[0]]
    return missing


def test_every_http_route_is_in_docs_http(app):
    surface = http_surface(app)
    assert {"GET /search", "POST /search", "GET /health", "DELETE /documents/{doc_id}"} <= set(surface)
    assert "q" in surface["GET /search"] and "queries" in surface["POST /search"]
    text = _read("http.md")
    assert undocumented_http(text, surface) == []
    for route in surface:  # also in the overview table, as "METHOD /path"
        assert f"`{route}`" in text, route


def page_surface(app: FastAPI) -> list[str]:
    """``METHOD /path`` of the app's routes outside its OpenAPI schema (the search page,
    ``/docs``, the schema itself) and ``GET /prefix/{path}`` of its static files."""
    operations = set(app.openapi()["paths"])
    pages = []
    for route in app.routes:
        if isinstance(route, Mount):
            pages.append(f"GET {route.path}/{{path}}")
        elif re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path) not in operations:  # (HEAD /health: GET is in it)
            pages += [f"{method} {route.path}" for method in sorted(route.methods - {"HEAD"})]  # type: ignore[attr-defined]
    return pages


def test_the_pages_and_their_files_are_in_docs_http(app):
    pages = page_surface(app)
    assert {"GET /", "GET /docs", "GET /openapi.json", "GET /static/{path}"} <= set(pages)
    text = _read("http.md")
    assert [page for page in pages if f"`{page}`" not in text] == []


def test_the_http_check_reports_a_route_left_undocumented(app):
    text = _read("http.md").replace("### `DELETE /documents/{doc_id}`", "### Deleting one document")
    assert undocumented_http(text, http_surface(app)) == ["DELETE /documents/{doc_id}"]


def test_the_http_check_reports_a_parameter_left_undocumented(app):
    text = _read("http.md")
    start = text.index("### `GET /search`")
    end = text.index("\n### ", start + 1)
    without = text[:start] + text[start:end].replace("`group_by`", "grouping") + text[end:]
    assert undocumented_http(without, http_surface(app)) == ["GET /search group_by"]


# -- the MCP tools ------------------------------------------------------------------------------
def mcp_surface() -> dict[str, list[str]]:
    """``{tool name: [argument names]}`` of every tool of ``indexer mcp --allow-writes``, as
    ``tools/list`` gives them (the schemas do not depend on the index's content)."""
    from types import SimpleNamespace

    from search.mcp_server import McpSettings, create_server, list_tools

    server = create_server(SimpleNamespace(path=Path("no-index")), McpSettings(allow_writes=True))
    return {tool["name"]: list(tool["inputSchema"].get("properties", {})) for tool in list_tools(server)}


def undocumented_mcp(text: str, surface: dict[str, list[str]]) -> list[str]:
    """What docs/mcp.md (``text``) lacks: a tool without its own section, an argument its
    section does not name."""
    sections: dict[str, list[str]] = {}
    for title, body in _sections(text, (2, 3)):
        sections.setdefault(title, []).append(body)
    missing = []
    for tool, arguments in surface.items():
        bodies = sections.get(tool, [])
        if len(bodies) != 1:
            missing.append(tool + ("" if not bodies else f" (has {len(bodies)} sections, not 1)"))
            continue
        missing += [f"{tool} {name}" for name in arguments if f"`{name}`" not in bodies[0]]
    return missing


def test_every_mcp_tool_and_argument_is_in_docs_mcp():
    from search.mcp_server import READ_TOOLS, WRITE_TOOLS

    surface = mcp_surface()
    assert tuple(surface) == READ_TOOLS + WRITE_TOOLS
    assert undocumented_mcp(_read("mcp.md"), surface) == []


def test_the_mcp_check_reports_a_tool_or_an_argument_left_undocumented():
    text = _read("mcp.md")
    assert undocumented_mcp(text.replace("### `index_info`", "### Describing the index"), mcp_surface()) == [
        "index_info"
    ]
    start = text.index("### `search`")
    end = text.index("\n### ", start + 1)
    without = text[:start] + text[start:end].replace("`group_by`", "grouping") + text[end:]
    assert undocumented_mcp(without, mcp_surface()) == ["search group_by"]
