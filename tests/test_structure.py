"""The shape of the code: cheap package imports, store/ as the bottom layer, no private
names imported across modules, no import cycles between the packages' modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "search", "store")
HEAVY = ("faiss", "torch", "pandas", "sentence_transformers", "transformers", "sqlite_utils", "pyarrow")


def _loaded_after(statement: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import store.errors",
        "import store",
        "from store import InvalidInput, BabelIndexError",
        "import search",
        "from search import InvalidInput, ModelMismatch",
        "import search.choices",
        "import indexer.cli",
    ],
)
def test_importing_the_packages_and_their_errors_loads_no_heavy_library(statement):
    assert _loaded_after(statement) == []


def test_the_lazy_names_still_load_what_they_name():
    assert "faiss" in _loaded_after("from search import Index")
    assert "faiss" in _loaded_after("from store import IndexDir")


def _modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in ``tree``, at any depth (lazy ones too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_store_imports_nothing_above_it():
    offenders = [
        (name, module)
        for name, tree in _modules().items()
        if name.split(".")[0] == "store"
        for module, _ in _imports(tree)
        if module.split(".")[0] in ("indexer", "search")
    ]
    assert offenders == []


COMPOSITION_ROOTS = ("indexer.cli", "indexer.mcp_cli")
"""The command-line modules that open an index and hand it to the query side (``indexer mcp``'s
command is a companion of ``indexer.cli``, which registers it)."""


def test_indexer_imports_nothing_of_search_but_in_the_cli():
    offenders = [
        (name, module)
        for name, tree in _modules().items()
        if name.startswith("indexer.") and name not in COMPOSITION_ROOTS
        for module, _ in _imports(tree)
        if module.split(".")[0] == "search"
    ]
    assert offenders == []


def test_no_module_imports_a_private_name_of_another():
    trees = _modules()
    for path in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py")):
        trees[str(path.relative_to(ROOT))] = ast.parse(path.read_text(encoding="utf-8"))
    offenders = [
        (name, module, imported)
        for name, tree in trees.items()
        for module, names in _imports(tree)
        if module.split(".")[0] in PACKAGES
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert offenders == []


def test_the_modules_import_each_other_without_a_cycle():
    import graphlib

    trees = _modules()
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        targets = set()
        for module, names in _imports(tree):
            if module in trees:
                targets.add(module)
            targets |= {f"{module}.{n}" for n in names if f"{module}.{n}" in trees}
        # A package's __init__ re-exporting its own modules is not a cycle of theirs.
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle
