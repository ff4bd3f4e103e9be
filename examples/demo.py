"""`make demo`: build the sample corpus and run three queries in three languages.

Uses the default model (distilbert-base-multilingual-cased) where it is cached or the Hub is
reachable, and otherwise the offline `use-multilingual`, and says which in one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from indexer.embedding import DEFAULT_MODEL, USE_MULTILINGUAL, is_available, resolve

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
INDEX = HERE.parent / "build" / "demo.idx"
QUERIES = [
    "How do bees pollinate flowers?",
    "¿Qué es la fotosíntesis?",
    "Wie bricht ein Vulkan aus?",
]


def run(*args: str) -> None:
    print("$ indexer " + " ".join(f'"{a}"' if " " in a else a for a in args), flush=True)
    subprocess.run([str(Path(sys.executable).with_name("indexer")), *args], check=True)
    print(flush=True)


def main() -> None:
    if is_available(DEFAULT_MODEL):
        model = DEFAULT_MODEL
        print(f"Model: {DEFAULT_MODEL} ({resolve(DEFAULT_MODEL)}, the default; found in the local cache or on the Hub)")
    else:
        model = USE_MULTILINGUAL
        print(
            f"Model: {USE_MULTILINGUAL} (the default, {resolve(DEFAULT_MODEL)}, is neither cached nor reachable here)"
        )
    shutil.rmtree(INDEX, ignore_errors=True)
    corpus, index = os.path.relpath(CORPUS), os.path.relpath(INDEX)
    run("build", corpus, "--index", index, "--model", model)
    for query in QUERIES:
        run("search", query, "--index", index, "-k", "3")


if __name__ == "__main__":
    main()
