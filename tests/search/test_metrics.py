"""``GET /metrics`` (search/metrics.py): parsed with prometheus-client's own parser, its
counters move with the requests made, it is behind the token, and it can be turned off."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from search.metrics import CONTENT_TYPE
from search.server import ServerSettings

TOKEN = "metrics-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:8000"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` as ``{(name, sorted labels): value}``."""
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert CONTENT_TYPE.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_requests_and_the_index_figures_are_current(client_for):
    client = client_for(ServerSettings(token=TOKEN))
    before = scrape(client)
    assert value(before, "babelindex_index_documents") > 0
    assert value(before, "babelindex_index_chunks") >= value(before, "babelindex_index_documents")
    first_version = value(before, "babelindex_index_version")
    assert first_version >= 1
    assert value(before, "babelindex_index_last_publish_timestamp_seconds") > 1.7e9
    assert value(before, "babelindex_index_size_bytes", part="meta_db") > 0
    assert any(
        name == "babelindex_index_language_documents" and dict(labels)["lang"] == "de" for name, labels in before
    )
    assert any(name == "process_resident_memory_bytes" for name, _ in before)

    for _ in range(3):
        assert client.get("/search", params={"q": "Bienen und Blumen", "k": 2}, headers=AUTH).status_code == 200
    response = client.post("/search", json={"queries": ["coffee", "café", "Kaffee"], "mode": "hybrid"}, headers=AUTH)
    assert response.status_code == 200
    assert client.get("/search", params={"q": "bees", "mode": "lexical"}, headers=AUTH).status_code == 200
    assert client.get("/search", params={"q": "x", "k": 0}, headers=AUTH).status_code == 422
    assert client.get("/search", params={"q": "x"}).status_code == 401  # no token: counted, refused
    assert client.get("/documents/no/such/doc", headers=AUTH).status_code == 404
    assert client.get("/no-such-path-1", headers=AUTH).status_code == 404
    assert client.get("/no-such-path-2", headers=AUTH).status_code == 404
    upserted = client.post(
        "/documents", json={"documents": [{"id": "m1", "text": "Ein neues Dokument."}]}, headers=AUTH
    )
    assert upserted.status_code == 200
    assert client.delete("/documents/m1", headers=AUTH).json() == {"deleted": 1}

    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "babelindex_http_requests_total"
    assert moved(requests, method="GET", route="/search", status="200") == 4
    assert moved(requests, method="POST", route="/search", status="200") == 1
    assert moved(requests, method="GET", route="/search", status="422") == 1
    assert moved(requests, method="GET", route="/search", status="401") == 1
    assert moved(requests, method="GET", route="/documents/{doc_id:path}", status="404") == 1
    assert moved(requests, method="GET", route="<unmatched>", status="404") == 2  # one series for any path
    assert moved(requests, method="GET", route="/metrics", status="200") == 1  # the first scrape
    assert moved("babelindex_http_request_duration_seconds_count", method="GET", route="/search") == 6
    assert value(after, "babelindex_http_request_duration_seconds_sum", method="GET", route="/search") > 0
    assert moved("babelindex_searches_total", mode="dense") == 3
    assert moved("babelindex_searches_total", mode="hybrid") == 3
    assert moved("babelindex_searches_total", mode="lexical") == 1
    # Every dense or hybrid query was embedded in some model call; lexical ones never are.
    assert moved("babelindex_query_embedding_batch_size_sum") == 6
    assert moved("babelindex_query_embedding_batch_size_count") >= 2
    assert moved("babelindex_query_embedding_seconds_count") == moved("babelindex_query_embedding_batch_size_count")
    assert moved("babelindex_writes_total", operation="upsert") == 1
    assert moved("babelindex_writes_total", operation="delete") == 1
    assert value(after, "babelindex_index_version") == first_version + 2  # the upsert and the delete published
    assert value(after, "babelindex_http_requests_in_progress") == 1  # the scrape itself
    info = [dict(labels) for name, labels in after if name == "babelindex_info"]
    assert len(info) == 1 and info[0]["model"] and info[0]["index_type"]


def test_metrics_are_behind_the_token(client_for):
    client = client_for(ServerSettings(token=TOKEN))
    response = client.get("/metrics")
    assert response.status_code == 401
    assert "babelindex_" not in response.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401


def test_no_metrics_turns_the_route_off(client_for):
    client = client_for(ServerSettings(metrics=False))
    assert client.get("/metrics").status_code == 404
    assert client.get("/search", params={"q": "coffee"}).status_code == 200
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_two_servers_in_one_process_keep_their_counts_apart(client_for):
    first, second = client_for(ServerSettings(token=TOKEN)), client_for(ServerSettings(token=TOKEN))
    for _ in range(2):
        first.get("/search", params={"q": "coffee"}, headers=AUTH)
    counted = value(scrape(second), "babelindex_http_requests_total", method="GET", route="/search", status="200")
    assert counted == 0
