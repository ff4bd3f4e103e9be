"""Fixtures of the HTTP service's tests: a small multilingual index, and TestClients over copies of it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.build import build_index
from search import Index
from search.server import ServerSettings, create_app

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def server_index(tmp_path_factory, use_model) -> Path:
    """An index of :data:`tests.helpers.MULTILINGUAL_DOCS` built with ``use-multilingual`` (do not write to it)."""
    from tests.helpers import MULTILINGUAL_DOCS, write_files

    root = tmp_path_factory.mktemp("server")
    corpus = write_files(root / "corpus", MULTILINGUAL_DOCS)
    build_index(corpus, root / "idx", model=use_model)
    return root / "idx"


@pytest.fixture
def client_for(server_index, use_model, tmp_path) -> Iterator[Callable[..., TestClient]]:
    """``client_for(settings)``: a started TestClient over a fresh copy of :func:`server_index`."""
    clients = []

    def make(settings: ServerSettings | None = None) -> TestClient:
        path = tmp_path / f"idx{len(clients)}"
        shutil.copytree(server_index, path)
        client = TestClient(create_app(Index.open(path, model=use_model), settings or ServerSettings()), base_url=BASE)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
