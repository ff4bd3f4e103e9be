"""``GET /metrics`` of ``indexer serve``: the service's figures in the Prometheus text format.

Every figure lives in a registry of the server's own (:class:`ServerMetrics`), never in
prometheus-client's global one, so two servers in one process (tests, a notebook) keep
their counts apart. Request figures are labelled by the route's template
(``/documents/{doc_id:path}``), never by the path a client sent, so a scan of random URLs
cannot grow the number of series; paths that match no route share ``route="<unmatched>"``.

Figures (all names start with ``babelindex_``):

=====================================================  ==========  ===========================================
``http_requests_total{method,route,status}``           counter     requests answered, by route and status code
``http_request_duration_seconds{method,route}``        histogram   time from request to the end of the answer (s)
``http_requests_in_progress``                          gauge       requests being answered now
``searches_total{mode}``                               counter     queries searched (a batch of 3 counts 3)
``query_embedding_batch_size``                         histogram   query texts per model call (micro-batching)
``query_embedding_seconds``                            histogram   time of one model call for queries (s)
``writes_total{operation}``                            counter     documents upserted or deleted through the API
``index_version``                                      gauge       the FAISS version served
``index_documents`` / ``index_chunks``                 gauge       live documents and chunks
``index_language_documents{lang}``                     gauge       live documents per detected language
``index_last_publish_timestamp_seconds``               gauge       when the version served was published (Unix s)
``index_size_bytes{part}``                             gauge       bytes on disk: ``meta_db``, ``faiss``
``info{version,model,index_type}``                     gauge (1)   what is served
=====================================================  ==========  ===========================================

plus prometheus-client's standard ``process_*`` and ``python_*`` figures. The index figures
are read when ``/metrics`` is scraped, so they are never staler than the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of the text format prometheus-client writes (``text/plain; version=…``)."""
UNMATCHED = "<unmatched>"
"""The ``route`` label of requests whose path matches no route."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a search takes milliseconds, a write of many documents seconds."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Query texts per model call."""


@dataclass(frozen=True)
class IndexFigures:
    """What the index holds at one moment (for :meth:`ServerMetrics.observe_index`).

    ``languages``: live documents per language code; ``published_at``: Unix seconds of
    the version's publish (None if unknown); ``size_bytes``: bytes on disk by part.
    """

    version: int
    documents: int
    chunks: int
    languages: Mapping[str, int]
    published_at: float | None
    size_bytes: Mapping[str, int]
    model: str
    index_type: str

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], version: int, published_at: str | None) -> IndexFigures:
        """From :meth:`search.Index.stats` and the version served (``published_at`` an ISO
        8601 UTC time such as ``2026-12-01T14:00:00Z``)."""
        size = stats.get("size_bytes") or {}
        return cls(
            version=version,
            documents=int(stats["documents"]),
            chunks=int(stats["chunks"]),
            languages=dict(stats.get("languages") or {}),
            published_at=_unix_seconds(published_at),
            size_bytes={part: int(size[part]) for part in ("meta_db", "faiss") if part in size},
            model=str(stats.get("model") or ""),
            index_type=str(stats.get("index_type") or ""),
        )


class ServerMetrics:
    """The figures of one server, in a :class:`prometheus_client.CollectorRegistry` of its own."""

    def __init__(self, server_version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.server_version = server_version
        registry = self.registry
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        self.requests = Counter(
            "babelindex_http_requests",
            "HTTP requests answered, by route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "babelindex_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, in seconds.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "babelindex_http_requests_in_progress", "HTTP requests being answered now.", registry=registry
        )
        self.searches = Counter(
            "babelindex_searches",
            "Queries searched, by mode (a batch of 3 queries counts 3).",
            ("mode",),
            registry=registry,
        )
        self.batch_sizes = Histogram(
            "babelindex_query_embedding_batch_size",
            "Query texts embedded per model call (micro-batching of concurrent requests).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.embed_seconds = Histogram(
            "babelindex_query_embedding_seconds",
            "Time of one model call embedding queries, in seconds.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.writes = Counter(
            "babelindex_writes",
            "Documents written through the API, by operation (upsert, delete).",
            ("operation",),
            registry=registry,
        )
        self.version = Gauge("babelindex_index_version", "The FAISS version served.", registry=registry)
        self.documents = Gauge("babelindex_index_documents", "Live documents in the index.", registry=registry)
        self.chunks = Gauge("babelindex_index_chunks", "Live chunks (passages) in the index.", registry=registry)
        self.languages = Gauge(
            "babelindex_index_language_documents",
            "Live documents per detected language.",
            ("lang",),
            registry=registry,
        )
        self.published = Gauge(
            "babelindex_index_last_publish_timestamp_seconds",
            "When the version served was published, in Unix seconds.",
            registry=registry,
        )
        self.size = Gauge(
            "babelindex_index_size_bytes", "Bytes the index takes on disk, by part.", ("part",), registry=registry
        )
        self.info = Gauge(
            "babelindex_info",
            "What this server serves (always 1).",
            ("version", "model", "index_type"),
            registry=registry,
        )

    def observe_batch(self, texts: int, seconds: float) -> None:
        """One model call of the query batcher: ``texts`` queries in ``seconds``."""
        self.batch_sizes.observe(texts)
        self.embed_seconds.observe(seconds)

    def observe_search(self, mode: str, queries: int) -> None:
        self.searches.labels(mode=mode).inc(queries)

    def observe_write(self, operation: str, documents: int) -> None:
        self.writes.labels(operation=operation).inc(documents)

    def observe_index(self, figures: IndexFigures) -> None:
        """Set the index's gauges to ``figures`` (languages no longer present are dropped)."""
        self.version.set(figures.version)
        self.documents.set(figures.documents)
        self.chunks.set(figures.chunks)
        self.languages.clear()
        for lang, count in figures.languages.items():
            self.languages.labels(lang=lang).set(count)
        if figures.published_at is not None:
            self.published.set(figures.published_at)
        for part, size in figures.size_bytes.items():
            self.size.labels(part=part).set(size)
        self.info.clear()
        self.info.labels(version=self.server_version, model=figures.model, index_type=figures.index_type).set(1)

    def render(self) -> bytes:
        """Every figure in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request (outermost, so refused requests count too),
    labelled by the template of the route of ``routes`` its path matches."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application fails before answering
        metrics = self.metrics

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_progress.dec()
            method = str(scope.get("method", ""))
            route = self.route_of(scope)
            metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            metrics.latency.labels(method=method, route=route).observe(time.perf_counter() - started)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that served (or would serve) the request."""
        route = scope.get("route")
        if route is None:  # refused before routing (Host, token, body size): match it here
            partial = None
            for candidate in self.routes:
                match, _ = candidate.matches(scope)
                if match is Match.FULL:
                    route = candidate
                    break
                if match is Match.PARTIAL and partial is None:
                    partial = candidate
            route = route or partial
        return str(getattr(route, "path", UNMATCHED)) if route is not None else UNMATCHED


def _unix_seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
