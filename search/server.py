"""The HTTP API (``indexer serve``): one index over FastAPI, safe by default.

Endpoints (OpenAPI documentation at ``/docs`` and ``/openapi.json``; the search page at
``/``, see :mod:`search.page`):

=======  ===========================  =====================================================
GET      /health                      liveness; the only endpoint open without the token
GET      /search?q=…&k=…              one query; filters as query parameters
POST     /search                      one query or a batch, with every option
POST     /documents                   add or replace documents (id, text, metadata)
GET      /documents                   list the documents (filtered, a page at a time)
GET      /documents/{doc_id}          a document and its chunks
DELETE   /documents/{doc_id}          delete one document
POST     /documents/delete            delete several documents by id
GET      /chunks/{chunk_id}           one chunk
GET      /stats                       counts, model, index type, languages, server figures
GET      /metrics                     the same and more in the Prometheus text format
=======  ===========================  =====================================================

Safety: the server listens on loopback unless told otherwise and refuses any other
address without a token. With a token, every endpoint but ``/health`` requires
``Authorization: Bearer <token>``, compared in constant time and never logged (the page's
and the documentation's own files load without it: they hold nothing of the index). Every
answer carries the security headers of :mod:`search.headers`. Request
bodies, query lengths, ``k`` and batch sizes are bounded (:class:`Limits`), and requests
whose ``Host`` header is not on the allow-list are refused, which defeats DNS rebinding (a
web page in the user's browser reaching a loopback server through an attacker's domain).
Clients address documents by id only; nothing a client sends names a file.

Writes go through the same single-writer path as the CLI (the index's writer lock), one
at a time; searches keep being served from the last published version meanwhile, and a
version published by another process (``indexer build``) is picked up within
``refresh_seconds``. Query embeddings of concurrent requests are computed in shared
batches (:class:`search.batching.QueryBatcher`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer.update import as_document
from search.batching import QueryBatcher
from search.choices import GroupBy, Mode
from search.filters import parse_langs, parse_where
from search.headers import SecurityHeadersMiddleware
from search.hit import Hit
from search.index import Index
from search.metrics import CONTENT_TYPE, IndexFigures, MetricsMiddleware, ServerMetrics
from search.page import PAGE_PATHS, STATIC_PREFIX, add_page, is_open
from store.errors import (
    BabelIndexError,
    CorruptIndex,
    DimensionMismatch,
    DiskFull,
    IndexLocked,
    IndexNotFound,
    IndexNotReady,
    InvalidFilter,
    InvalidInput,
    MissingDependency,
    ModelError,
    ReadOnlyIndex,
)

if TYPE_CHECKING:
    from indexer.watch import Watcher

log = logging.getLogger("babelindex.server")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_ENV = "BABELINDEX_TOKEN"
MIN_TOKEN_CHARS = 16
OPEN_PATHS = frozenset({"/health"})
"""API paths served without the token (beside the page's files, :func:`search.page.is_open`)."""
BEARER_SCHEME = "bearer"
"""The name of the token's security scheme in the OpenAPI schema (with a token only)."""
INT32_MAX = 2**31 - 1
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask; a request over one gets a 4xx naming it."""

    max_body_bytes: int = 10 * 1024 * 1024
    """Request body size (bytes); 413 above it."""
    max_query_chars: int = 2_000
    """Characters per query text."""
    max_k: int = 1_000
    """Hits per query."""
    max_queries: int = 64
    """Queries per POST /search."""
    max_documents: int = 1_000
    """Documents per POST /documents."""
    max_ids: int = 10_000
    """Ids per POST /documents/delete."""


@dataclass(frozen=True)
class ServerSettings:
    """How :func:`create_app` serves an index.

    ``token``: required as ``Authorization: Bearer`` on every endpoint but ``/health``
    (``None``: no authentication, for loopback only). ``allowed_hosts``: the ``Host``
    header values accepted (names or addresses, without port; ``"*"`` accepts any).
    ``batch_size`` and ``batch_wait_ms``: micro-batching of query embeddings (``batch_size=1``
    turns it off). ``search_threads``: threads for the FAISS and SQLite part of searches (and other reads):
    more than the cores, so that a slow request never holds every one.
    ``refresh_seconds``: how often to look for a version published by
    another process.
    """

    token: str | None = None
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    limits: Limits = field(default_factory=Limits)
    batch_size: int = 8
    batch_wait_ms: float = 2.0
    refresh_seconds: float = 2.0
    search_threads: int = 4
    max_pending_writes: int = 16
    """Writes waiting for the writer at most; more are answered 503 with ``Retry-After``."""
    header_timeout_seconds: float = 10.0
    """How long a client may take to send a request's headers (slow clients are cut off)."""
    max_header_bytes: int = 64 * 1024
    """Size of a request's headers (all of them); larger requests get 400."""
    max_connections: int = 256
    """Open connections at most; a request beyond them gets 503."""
    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus text format) and keep its figures."""

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token)


# -- request and response bodies ------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error this server answers itself: what went wrong and what to do."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """A request that does not fit the schema: one issue per field (FastAPI's own form)."""

    detail: list[ValidationIssue]


# What the server accepts, stated in the schema so that a client (or a fuzzer) can know it:
# the server checks the same rules itself, with messages of its own.
NO_NUL = r"^[^\x00]*$"
SOME_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"
"""At least one character that is not white space, and no NUL."""
SOME_LANGS = r"^[^\x00]*[^\s,\x00][^\x00]*$"
GLOB = r"^[^*?\[\x00]*([*?\[][^*?\[\x00]*){0,16}$"
"""A source glob or prefix: no NUL, at most 16 wildcards (``search.filters.MAX_GLOB_WILDCARDS``)."""
KEY_RE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_IN_VALUE = r"[^,\x00]*[^\s,\x00][^,\x00]*"
CONDITION = (
    rf"^(\s*{KEY_RE}\s*(!=|<=|>=|==|=|<|>)\s*[^\s<>=!\x00][^\x00]*"
    rf"|\s*{KEY_RE}\s+in\s+{_IN_VALUE}(,{_IN_VALUE})*)$"
)
"""A ``where=`` condition as :func:`search.filters.parse_where` reads it: a value after an
operator that does not start with ``< > = !`` (``year>>2020`` is refused), no empty ``in`` value."""
_SCALAR: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": 4096, "pattern": NO_NUL},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        {"type": "number", "minimum": -(2**63), "maximum": 2**63 - 1},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
_ORDERED: dict[str, Any] = {"anyOf": [a for a in _SCALAR["anyOf"] if a["type"] != "null"]}
WHERE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 8,
    "propertyNames": {"pattern": f"^{KEY_RE}$", "maxLength": 256},
    "additionalProperties": {
        "anyOf": [
            _SCALAR,
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    **{op: _SCALAR for op in ("=", "==", "!=")},
                    **{op: _ORDERED for op in ("<", "<=", ">", ">=")},
                    "in": {"type": "array", "minItems": 1, "maxItems": 1024, "items": _SCALAR},
                },
            },
        ]
    },
}
"""The ``where`` object: at most 8 keys (of at most 8 operators: the 64 conditions of
:data:`search.filters.MAX_CONDITIONS`)."""


class SearchBody(BaseModel):
    """POST /search. Give ``query`` (one text) or ``queries`` (a list of texts)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["query"], "properties": {"query": {"type": "string"}}},
                {"required": ["queries"], "properties": {"queries": {"type": "array"}}},
            ]
        },
    )
    query: str | None = Field(
        None, min_length=1, description="One query text, in any language.", json_schema_extra={"pattern": SOME_TEXT}
    )
    queries: list[str] | None = Field(
        None,
        min_length=1,
        description="Several query texts (answered in order).",
        json_schema_extra={"items": {"type": "string", "pattern": SOME_TEXT}},
    )
    k: int = Field(10, ge=1, le=10_000, description="Hits per query (at most the server's max_k).")
    nprobe: int | None = Field(None, ge=1, le=INT32_MAX, description="IVF lists to visit (default: tuned at build).")
    mode: Mode = "dense"
    lang: str | list[str] | None = Field(
        None,
        description="Language code(s) of the chunks to search.",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": NO_NUL},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 256,
                    "items": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": NO_NUL},
                },
                {"type": "null"},
            ]
        },
    )
    source: str | None = Field(
        None,
        description="Glob ('docs/*.md') or prefix ('docs/') of the source.",
        json_schema_extra={
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": 1024, "pattern": GLOB}, {"type": "null"}]
        },
    )
    where: dict[str, Any] | None = Field(
        None,
        description='Metadata conditions, e.g. {"year": {">=": 2020}, "tag": {"in": ["a", "b"]}}.',
        json_schema_extra={"anyOf": [WHERE_SCHEMA, {"type": "null"}]},
    )
    group_by: GroupBy | None = Field(None, description="'document': the best chunk of each document.")
    min_score: float | None = Field(
        None, allow_inf_nan=False, description="Leave out hits scoring below this (in the mode's own score)."
    )


# The filter parameters of GET /search and GET /documents, with the schema patterns that
# mirror the filter rules (the fuzz test generates requests from them).
LangQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated language codes or names: de,fr.",
        json_schema_extra={"anyOf": [{"type": "string", "maxLength": 512, "pattern": SOME_LANGS}, {"type": "null"}]},
    ),
]
SourceQuery = Annotated[
    str | None,
    Query(
        description="Glob or prefix of the source.",
        json_schema_extra={
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": 1024, "pattern": GLOB}, {"type": "null"}]
        },
    ),
]
WhereQuery = Annotated[
    list[str] | None,
    Query(
        description="Metadata conditions, repeatable: year>=2020, 'tag in a,b'.",
        json_schema_extra={
            "anyOf": [
                {"type": "array", "maxItems": 64, "items": {"type": "string", "maxLength": 1024, "pattern": CONDITION}},
                {"type": "null"},
            ]
        },
    ),
]


class SearchResult(BaseModel):
    query: str
    hits: list[Hit]


class SearchResponse(SearchResult):
    version: int = Field(description="The FAISS version served when the answer left (grows with every publish).")
    took_ms: float


class BatchSearchResponse(BaseModel):
    results: list[SearchResult]
    version: int
    took_ms: float


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(
        min_length=1,
        max_length=4096,
        description="The document's id; an existing id is replaced.",
        json_schema_extra={"pattern": NO_NUL},
    )
    text: str = Field(min_length=1, json_schema_extra={"pattern": SOME_TEXT})
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object of at most 40 KiB, nested at most 16 levels."
    )
    source: str | None = Field(
        None,
        description="A label shown in hits (default: the id); never opened.",
        json_schema_extra={"anyOf": [{"type": "string", "maxLength": 4096, "pattern": NO_NUL}, {"type": "null"}]},
    )


class UpsertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn]


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str]


class ChunkModel(BaseModel):
    chunk_id: int
    ord: int
    text: str
    start: int
    end: int
    lang: str | None


class DocumentModel(BaseModel):
    doc_id: str
    source: str
    lang: str | None
    metadata: dict[str, Any]
    n_chars: int
    updated_at: str
    chunks: list[ChunkModel]


class DocumentSummaryModel(BaseModel):
    doc_id: str
    source: str
    lang: str | None
    metadata: dict[str, Any]
    n_chars: int
    chunks: int = Field(description="How many chunks the document has.")
    updated_at: str


class DocumentPageModel(BaseModel):
    total: int = Field(description="Documents matching the filters.")
    offset: int
    documents: list[DocumentSummaryModel]


# -- the application ------------------------------------------------------------------------
STATUS: dict[type[BabelIndexError], int] = {
    IndexNotFound: 404,
    IndexLocked: 409,
    InvalidFilter: 422,  # before InvalidInput, its base: the first match counts
    InvalidInput: 400,
    DimensionMismatch: 400,
    CorruptIndex: 503,
    IndexNotReady: 503,
    ModelError: 503,
    MissingDependency: 501,
    ReadOnlyIndex: 403,
    DiskFull: 507,
}
"""The HTTP status of each library error: 4xx for what the client sent, 5xx for the server's
own state (a damaged or unfinished index, a model that cannot be loaded, a missing library)."""


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "A bad argument, filter or Host header"),
        (401, "The token is missing or wrong"),
        (403, "A write to an index on a read-only filesystem"),
        (404, "No such document or chunk"),
        (409, "Another process is writing the index"),
        (413, "A request over one of the server's limits"),
        (503, "The index is not ready, damaged, or the writer's queue is full"),
        (501, "The server lacks a library this request needs"),
        (507, "The disk is full"),
    )
}
ERRORS[422] = {
    "model": ErrorBody | ValidationErrors,
    "description": "A request that does not fit its schema, or a filter naming what the index does not hold",
}
"""The error answers every route may give, for the OpenAPI schema."""


def create_app(index: Index, settings: ServerSettings | None = None, worker: Watcher | None = None) -> FastAPI:
    """A FastAPI application serving ``index`` (which it closes on shutdown).

    ``worker``: an ``indexer watch`` worker, already started (:meth:`Watcher.start`), whose
    loop runs on a thread of its own while the server runs and is stopped (its batch
    finished and published) on shutdown. It is the index's single writer beside the API's
    upserts: both take the writer lock per write.
    """
    settings = settings or ServerSettings()
    limits = settings.limits
    metrics = ServerMetrics(_version()) if settings.metrics else None
    batcher = QueryBatcher(
        index.embed,
        max_batch=settings.batch_size,
        max_wait_ms=settings.batch_wait_ms,
        on_batch=metrics.observe_batch if metrics is not None else None,
    )
    # FAISS and SQLite work of searches (and every other read) runs on a few threads of its own,
    # each with one OpenMP thread: FAISS's OpenMP teams spinning in many request threads would
    # starve the model. Writes run on one thread of their own, one at a time, so that a queue
    # of writes never takes the threads that health checks and reads need.
    readers = ThreadPoolExecutor(
        settings.search_threads, thread_name_prefix="babelindex-search", initializer=_single_threaded_faiss
    )
    writer = ThreadPoolExecutor(1, thread_name_prefix="babelindex-write")
    writes_waiting = 0
    figures = {"searches": 0, "writes": 0}
    hidden = str(index.path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(index.embed, ["warm-up"])  # load the model before the first request
        await batcher.start()
        refresher = asyncio.get_running_loop().create_task(refresh_loop(index, settings.refresh_seconds))
        watching = threading.Thread(target=worker.loop, name="babelindex-watch", daemon=True) if worker else None
        if watching is not None:
            watching.start()
        try:
            yield
        finally:
            if worker is not None and watching is not None:
                worker.stop()
                await run_in_threadpool(watching.join)
            refresher.cancel()
            await batcher.stop()
            writer.shutdown(wait=True)
            readers.shutdown(wait=True)
            index.close()

    app = FastAPI(
        title="babelindex",
        summary="Cross-lingual semantic search over one index.",
        version=_version(),
        lifespan=lifespan,
        responses=ERRORS,
        docs_url=None,  # served by search.page from files in the package, not from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    add_page(app)

    def private(text: str) -> str:
        """``text`` without the index's path on this machine (clients address the index by URL)."""
        return text.replace(hidden, "the index")

    @app.exception_handler(BabelIndexError)
    async def _babelindex_error(request: Request, exc: BabelIndexError) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        headers = {"Retry-After": "1"} if isinstance(exc, IndexLocked) else None
        return JSONResponse({"detail": private(str(exc))}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes the rejected input, which JSON may not be able to hold (NaN, 1e400).
        issues = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": jsonable(issues)}, status_code=422)

    async def read(call: Callable[[], T]) -> T:
        """Run a read on the readers' threads (never behind writes)."""
        return await asyncio.get_running_loop().run_in_executor(readers, call)

    async def run_search(queries: list[str], k: int, **options: Any) -> tuple[list[list[Hit]], int]:
        _check_queries(queries, k, limits)
        vectors = await batcher.embed(queries) if options.get("mode", "dense") != "lexical" else None

        def call() -> list[list[Hit]]:
            return index.search(queries, k, query_vectors=vectors, **options)

        hits = await read(call)
        figures["searches"] += len(queries)
        if metrics is not None:
            metrics.observe_search(str(options.get("mode", "dense")), len(queries))
        return hits, index.version

    @app.head("/health", include_in_schema=False)
    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: ``ok``, the version served and whether the other routes need the token
        (``auth``: ``"bearer"`` or ``"none"``). Open without the token; never waits."""
        auth = "none" if settings.token is None else "bearer"
        return {"status": "ok", "version": index.version, "chunks": len(index), "auth": auth}

    @app.get("/search", response_model=SearchResponse, tags=["search"])
    async def search_get(
        q: Annotated[
            str,
            Query(
                min_length=1, description="The query text, in any language.", json_schema_extra={"pattern": SOME_TEXT}
            ),
        ],
        k: Annotated[int, Query(ge=1, le=10_000, description="Hits (at most the server's max_k).")] = 10,
        mode: Mode = "dense",
        lang: LangQuery = None,
        source: SourceQuery = None,
        where: WhereQuery = None,
        group_by: GroupBy | None = None,
        nprobe: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
        min_score: Annotated[
            float | None, Query(allow_inf_nan=False, description="Leave out hits scoring below this.")
        ] = None,
    ) -> JSONResponse:
        """One query, with its filters as query parameters."""
        started = time.perf_counter()
        langs = parse_langs(lang)
        hits, version = await run_search(
            [q],
            k,
            nprobe=nprobe,
            mode=mode,
            lang=langs,
            source=source,
            where=parse_where(where) if where else None,
            group_by=group_by,
            min_score=min_score,
        )
        return JSONResponse(
            {"query": q, "hits": [h.as_json() for h in hits[0]], "version": version, "took_ms": _ms(started)}
        )

    @app.post("/search", response_model=SearchResponse | BatchSearchResponse, tags=["search"])
    async def search_post(body: SearchBody) -> JSONResponse:
        """One query (``query``: answered as by GET) or several (``queries``: ``results``, in order)."""
        started = time.perf_counter()
        if (body.query is None) == (body.queries is None):
            raise HTTPException(422, "give exactly one of 'query' (a text) or 'queries' (a list of texts).")
        queries = [body.query] if body.query is not None else list(body.queries or [])
        options = body.model_dump(exclude={"query", "queries", "k"})
        hits, version = await run_search(queries, body.k, **options)
        results = [{"query": q, "hits": [h.as_json() for h in hs]} for q, hs in zip(queries, hits, strict=True)]
        # Answered as built (the response model documents it; validating it again costs time).
        if body.query is not None:
            return JSONResponse({**results[0], "version": version, "took_ms": _ms(started)})
        return JSONResponse({"results": results, "version": version, "took_ms": _ms(started)})

    async def write(change: Callable[[], T]) -> T:
        """Run one change on the writer's thread, after those already waiting; 503 when
        :attr:`ServerSettings.max_pending_writes` wait already."""
        nonlocal writes_waiting
        if writes_waiting >= settings.max_pending_writes:
            raise HTTPException(
                503,
                f"{writes_waiting} writes are waiting for the writer; try again shortly.",
                headers={"Retry-After": "1"},
            )
        writes_waiting += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(writer, change)
        finally:
            writes_waiting -= 1
        figures["writes"] += 1
        return result

    @app.post("/documents", tags=["documents"])
    async def upsert(body: UpsertBody) -> dict[str, Any]:
        """Add documents, or replace those whose id exists (unchanged ones are not embedded
        again). Returns when they are published: the next search sees them."""
        if len(body.documents) > limits.max_documents:
            raise HTTPException(
                413,
                f"{len(body.documents)} documents in one request; the limit is "
                f"{limits.max_documents} (server option --max-documents). Send them in parts.",
            )
        ids = [d.id for d in body.documents]
        if len(set(ids)) != len(ids):
            raise HTTPException(422, "a document id appears twice in this request; send each id once.")
        docs = [d.model_dump() for d in body.documents]
        for doc in docs:  # checked here, so that a bad one is refused before any is embedded
            as_document(doc)
        report = await write(lambda: index.upsert(docs))
        if metrics is not None:
            metrics.observe_write("upsert", len(docs))
        result: dict[str, Any] = report.to_dict()
        result["index"] = "the index"
        return result

    @app.get("/documents", response_model=DocumentPageModel, tags=["documents"])
    async def list_documents(
        lang: LangQuery = None,
        source: SourceQuery = None,
        where: WhereQuery = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="Documents to return.")] = 100,
        offset: Annotated[int, Query(ge=0, le=INT32_MAX, description="Documents to skip first.")] = 0,
    ) -> dict[str, Any]:
        """The documents (without their text), ordered by id, a page at a time, with the total."""
        langs = parse_langs(lang)
        conditions = parse_where(where) if where else None
        page = await read(
            lambda: index.documents(lang=langs, source=source, where=conditions, limit=limit, offset=offset)
        )
        return page.to_dict()

    @app.get("/documents/{doc_id:path}", response_model=DocumentModel, tags=["documents"])
    async def get_document(doc_id: str) -> dict[str, Any]:
        """A document's metadata and its chunks (texts and character offsets)."""
        document = await read(lambda: index.get_document(doc_id))
        if document is None:
            raise HTTPException(404, f"no document with id {_short(doc_id)!r} in this index.")
        return document

    @app.delete("/documents/{doc_id:path}", tags=["documents"])
    async def delete_one(doc_id: str) -> dict[str, int]:
        """Delete one document. Once this returns, no search returns its chunks."""
        deleted = await write(lambda: index.delete([doc_id]))
        if metrics is not None:
            metrics.observe_write("delete", deleted)
        if not deleted:
            raise HTTPException(404, f"no document with id {_short(doc_id)!r} in this index.")
        return {"deleted": deleted}

    @app.post("/documents/delete", tags=["documents"])
    async def delete_many(body: DeleteBody) -> dict[str, int]:
        """Delete documents by id; ``deleted`` counts those that existed."""
        if len(body.ids) > limits.max_ids:
            raise HTTPException(
                413,
                f"{len(body.ids)} ids in one request; the limit is {limits.max_ids} "
                "(server option --max-ids). Send them in parts.",
            )
        deleted = await write(lambda: index.delete(body.ids)) if body.ids else 0
        if metrics is not None:
            metrics.observe_write("delete", deleted)
        return {"deleted": deleted}

    @app.get("/chunks/{chunk_id}", response_model=Hit, tags=["documents"])
    async def get_chunk(chunk_id: int) -> dict[str, Any]:
        """One chunk with its document's fields (``score`` 0, no signals)."""
        hit = await read(lambda: index.get_chunk(chunk_id))
        if hit is None:
            raise HTTPException(404, f"no chunk with id {_short(chunk_id)} in this index.")
        return hit.as_json()

    @app.get("/stats", tags=["service"])
    async def stats() -> dict[str, Any]:
        """The index's counts, model, type and languages, and this server's figures."""
        server = {
            **figures,
            "writes_waiting": writes_waiting,
            "model_calls": batcher.batches,
            "queries_embedded": batcher.texts,
            "batch_size": settings.batch_size,
            "batch_wait_ms": settings.batch_wait_ms,
        }
        figures_of_index = await read(index.stats)
        figures_of_index["path"] = Path(figures_of_index["path"]).name
        return {**figures_of_index, "server": server}

    if metrics is not None:
        server_metrics = metrics

        @app.get(
            "/metrics", tags=["service"], response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}}
        )
        async def prometheus_metrics() -> Response:
            """Requests, latencies, query batches, searches by mode and the index's figures in the
            Prometheus text format (see :mod:`search.metrics`). Off with ``--no-metrics``."""

            def figures_now() -> IndexFigures:
                return IndexFigures.from_stats(index.stats(), index.version, index.published_at)

            server_metrics.observe_index(await read(figures_now))
            return Response(server_metrics.render(), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        """The schema, with this server's own limits in it (k, query length, batch sizes)."""
        if app.openapi_schema is None:
            schema = with_limits(FastAPI.openapi(app), limits)
            app.openapi_schema = with_bearer(schema) if settings.token is not None else schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # Outermost first: the metrics, the security headers, the Host check, then authentication,
    # then the body size.
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    if settings.token is not None:
        app.add_middleware(TokenMiddleware, token=settings.token)
    if "*" not in settings.allowed_hosts:
        app.add_middleware(HostMiddleware, allowed=settings.allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware, static_paths=PAGE_PATHS, static_prefixes=(STATIC_PREFIX,))
    if metrics is not None:  # outermost: requests refused by the others count too
        app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def with_limits(schema: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """``schema`` (the app's OpenAPI document) stating ``limits``, so that what it allows is
    what the server accepts."""
    for parameter in schema["paths"]["/search"]["get"]["parameters"]:
        if parameter["name"] == "q":
            parameter["schema"]["maxLength"] = limits.max_query_chars
        elif parameter["name"] == "k":
            parameter["schema"]["maximum"] = limits.max_k
    bodies = schema["components"]["schemas"]
    search_body = bodies["SearchBody"]["properties"]
    search_body["k"]["maximum"] = limits.max_k
    search_body["query"]["maxLength"] = limits.max_query_chars
    search_body["queries"]["maxItems"] = limits.max_queries
    search_body["queries"]["items"]["maxLength"] = limits.max_query_chars
    bodies["UpsertBody"]["properties"]["documents"]["maxItems"] = limits.max_documents
    bodies["DeleteBody"]["properties"]["ids"]["maxItems"] = limits.max_ids
    return schema


def with_bearer(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` stating that every operation but ``GET /health`` needs the token as
    ``Authorization: Bearer`` (the Authorize button of ``/docs``)."""
    schema.setdefault("components", {})["securitySchemes"] = {
        BEARER_SCHEME: {"type": "http", "scheme": "bearer", "description": "The token the server was started with."}
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            operation["security"] = [] if path in OPEN_PATHS else [{BEARER_SCHEME: []}]
    return schema


def jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot hold (NaN, infinities, bytes, objects) as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return _short(value, 200) if isinstance(value, str) and len(value) > 200 else value
    return _short(value, 200)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _single_threaded_faiss() -> None:
    import faiss

    faiss.omp_set_num_threads(1)


def _check_queries(queries: Sequence[str], k: int, limits: Limits) -> None:
    if len(queries) > limits.max_queries:
        raise HTTPException(
            413,
            f"{len(queries)} queries in one request; the limit is {limits.max_queries} (server option --max-queries).",
        )
    if k > limits.max_k:
        raise HTTPException(422, f"k={k} is over this server's limit of {limits.max_k} (server option --max-k).")
    for q in queries:
        if not q.strip():
            raise HTTPException(422, "a query is empty; send some words.")
        if len(q) > limits.max_query_chars:
            raise HTTPException(
                413,
                f"a query of {len(q)} characters; the limit is {limits.max_query_chars} "
                "(server option --max-query-chars).",
            )


async def refresh_loop(index: Index, seconds: float) -> None:
    """Pick up versions published by other processes (``indexer build`` while serving)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(index.refresh)
        except BabelIndexError as exc:  # keep serving the loaded version
            log.warning("could not load the newest version: %s", exc)
        except Exception:  # whatever it was, the loop must live on: log it and try again
            log.exception("looking for a newer version failed; serving the loaded one and trying again")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("babelindex")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


# -- middleware (plain ASGI: cheap, and it also guards /docs and unknown paths) --------------
async def _reply(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class DuplicateHeader(Exception):
    """A request names a header that must be unique (``Host``, ``Authorization``) twice."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The value of header ``name``; :class:`DuplicateHeader` if the request sends it twice
    (which of two values counts would be a guess an attacker could exploit)."""
    found: bytes | None = None
    for key, value in scope.get("headers", ()):
        if key == name:
            if found is not None:
                raise DuplicateHeader(name.decode())
            found = bytes(value)
    return found


async def _duplicate(send: Send, exc: DuplicateHeader) -> None:
    await _reply(send, 400, f"the request sends the {exc.args[0]} header twice; send it once.")


class HostMiddleware:
    """Refuse requests whose ``Host`` header is not an allowed name (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]):
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                host = _host_name((_header(scope, b"host") or b"").decode("latin-1"))
            except DuplicateHeader as exc:
                await _duplicate(send, exc)
                return
            if host not in self.allowed:
                await _reply(
                    send,
                    400,
                    f"the Host header {_short(host)!r} is not one this server answers to "
                    "(a guard against DNS rebinding); start it with --allow-host "
                    f"{_short(host) or 'NAME'} to accept it.",
                )
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name in a Host header, lower case, without port or IPv6 brackets. A bracketed
    address may be followed by a port only (``[::1]evil.com`` names no allowed host)."""
    host = host.strip().lower()
    if host.startswith("["):
        inside, _, rest = host[1:].partition("]")
        return inside if rest == "" or (rest.startswith(":") and rest[1:].isdigit()) else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TokenMiddleware:
    """Require ``Authorization: Bearer <token>`` (constant-time comparison) except on
    :data:`OPEN_PATHS` and the page's own files. The header is never logged or echoed."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self._digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and not is_open(scope["path"]):
            try:
                given = _header(scope, b"authorization") or b""
            except DuplicateHeader as exc:
                await _duplicate(send, exc)
                return
            scheme, _, credential = given.partition(b" ")
            ok = hmac.compare_digest(hashlib.sha256(credential.strip()).digest(), self._digest)
            if not (ok and scheme.lower() == b"bearer"):
                await _reply(
                    send,
                    401,
                    "this server needs the header 'Authorization: Bearer <token>' with the token it was started with.",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, whether announced by
    ``Content-Length`` or streamed in chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = (
            f"the request body is over this server's limit of {self.max_bytes} bytes "
            "(server option --max-body-mb); send less per request."
        )
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _reply(send, 413, message)
            return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused, started
            if refused:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.max_bytes:
                    # Answer now, then tell the application the client has gone.
                    refused = True
                    if not started:
                        started = True
                        await _reply(send, 413, message)
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent
            if event["type"] == "http.response.start":
                started = True
            await send(event)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


# -- running it -----------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only listens on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(host: str) -> tuple[str, ...]:
    """The Host header values a server bound to ``host`` answers to by default: the loopback
    names, the bound address, and for a wildcard bind (0.0.0.0, ::) this machine's names."""
    names = list(LOOPBACK_NAMES)
    if not is_loopback(host):
        names.append(host.strip("[]").lower())
        if host in ("0.0.0.0", "::", ""):
            names += [socket.gethostname().lower(), socket.getfqdn().lower()]
            with suppress(OSError):
                names += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)]
    return tuple(dict.fromkeys(names))


def check_token(token: str) -> str:
    """``token`` if it can guard a server: at least :data:`MIN_TOKEN_CHARS` characters. An
    empty one is an error, never "no token" (an empty token file must not open the door)."""
    if not token.strip():
        raise InvalidInput(
            "the token is empty (an empty --token-file, a blank first line, or an empty "
            f"{TOKEN_ENV}); give a secret of at least {MIN_TOKEN_CHARS} characters, or no token at all "
            "to serve loopback without one."
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidInput(
            f"the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS}, e.g. one made by "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return token


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token, and refuse empty or short tokens."""
    if token is not None:
        check_token(token)
    if token is None and not is_loopback(host):
        raise InvalidInput(
            f"refusing to listen on {host} without a token: anyone who can reach it could read and change "
            f"the index. Set {TOKEN_ENV} (or --token-file) to a secret, or listen on 127.0.0.1."
        )


def serve(
    index: Index,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServerSettings | None = None,
    log_level: str = "info",
    worker: Watcher | None = None,
) -> None:
    """Serve ``index`` over HTTP until interrupted (blocking); with the ``worker`` of
    ``indexer serve --watch`` (see :func:`create_app`).

    The HTTP layer is uvicorn's h11 protocol with bounds of its own
    (:class:`search.http_protocol.BoundedH11Protocol`): headers are limited in size and in
    the time a client may take to send them, connections in number, all before a request
    reaches authentication.
    """
    import uvicorn

    from search.http_protocol import bounded_protocol

    settings = settings or ServerSettings(allowed_hosts=default_allowed_hosts(host))
    check_exposure(host, settings.token)
    app = create_app(index, settings, worker)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=10,
        http=bounded_protocol(settings.header_timeout_seconds),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
    )
