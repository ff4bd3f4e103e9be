"""The MCP server (``indexer mcp``): one index as tools for agents, on the official ``mcp`` SDK.

Tools (each with a typed input schema and, for its result, an output schema):

====================  =====================================================================
``search``            the passages nearest a query in any language, cited as
                      :func:`search.rag.format_context` cites them
``get_document``      a document's text (a part at a time), metadata and chunks
``index_info``        model, languages with their counts, documents, chunks, version, type
``upsert_documents``  add or replace documents (only with ``allow_writes``)
``delete_documents``  delete documents by id (only with ``allow_writes``)
====================  =====================================================================

Transports: stdio (:func:`serve_stdio`, what desktop agents start) and streamable HTTP
(:func:`serve_http`: loopback by default, a bearer token as for ``indexer serve``, the SDK's
Host and Origin checks against DNS rebinding). Every library error reaches the agent as a
tool error (``isError: true``) carrying the library's message; nothing an agent sends stops
the server. The model is loaded before the server answers, and on stdio nothing but the
protocol is written to stdout (logs go to stderr).

This module does not use ``from __future__ import annotations``: the SDK reads the tools'
signatures, whose ``Annotated`` schemas hold this server's limits, when they are registered.
"""

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from search.choices import GROUP_BY, MODES
from search.filters import parse_langs, parse_where
from search.hit import Hit
from search.index import Index
from search.rag import format_context
from search.server import SOME_TEXT, Limits, check_exposure, default_allowed_hosts
from store.errors import BabelIndexError, InvalidInput

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger("babelindex.mcp")

READ_TOOLS = ("search", "get_document", "index_info")
WRITE_TOOLS = ("upsert_documents", "delete_documents")
"""Registered only when writes are allowed (``indexer mcp --allow-writes``)."""
HTTP_PATH = "/mcp"
"""Where the streamable HTTP transport answers."""

INSTRUCTIONS = (
    "babelindex: cross-lingual semantic search over one index of documents. Ask `search` in any "
    "language: passages in other languages are found by meaning. Cite passages by their [n] header "
    "(source, doc_id, character offsets); read more of a document with `get_document`. `index_info` "
    "tells which languages, documents and filters the index holds."
)


@dataclass(frozen=True)
class McpSettings:
    """What :func:`create_server` offers.

    ``allow_writes``: also register ``upsert_documents`` and ``delete_documents``.
    ``limits``: the bounds of the HTTP service (:class:`search.server.Limits`: ``max_k``,
    ``max_query_chars``, ``max_documents``, ``max_ids``; ``max_body_bytes`` bounds HTTP
    request bodies). ``max_document_chars``: the most characters of a document's text that
    one ``get_document`` call returns (a longer one comes in parts).
    """

    allow_writes: bool = False
    limits: Limits = field(default_factory=Limits)
    max_document_chars: int = 20_000


# -- the tools' results (their output schemas) -------------------------------------------------
class Passage(BaseModel):
    """One passage found, with what cites it: its text is characters start to end of the document's text."""

    number: int = Field(description="Its rank, from 1: the [n] of its header in the text content.")
    source: str = Field(description="The file (or label) the document came from.")
    doc_id: str = Field(description="The document's id: pass it to get_document.")
    chunk_id: int = Field(description="The passage's id; stable, never reused.")
    start: int = Field(description="Character offset of the passage's start in the document's text.")
    end: int = Field(description="Character offset of the passage's end (exclusive).")
    lang: str | None = Field(description="The passage's language (ISO 639-1), or null if unknown.")
    score: float = Field(description="How well it matches; higher is better (cosine for dense).")
    text: str
    metadata: dict[str, Any] = Field(description="The document's metadata (record fields, a title).")


class SearchOutput(BaseModel):
    query: str
    mode: str
    version: int = Field(description="The index version searched (grows with every publish).")
    passages: list[Passage] = Field(description="Best first.")


class ChunkInfo(BaseModel):
    chunk_id: int
    ord: int = Field(description="The chunk's position in the document, from 0.")
    start: int
    end: int
    lang: str | None


class DocumentOutput(BaseModel):
    doc_id: str
    source: str
    lang: str | None
    metadata: dict[str, Any]
    n_chars: int = Field(description="Characters of the whole document's text.")
    updated_at: str = Field(description="When this version was written (UTC, ISO 8601).")
    start: int = Field(description="Offset of the first character of `text` in the document.")
    end: int = Field(description="Offset after the last character of `text`.")
    text: str = Field(
        description="The document's text from start to end, put together from its chunks (any character "
        "between two chunks, white space the chunker left out, reads as a space)."
    )
    next_start: int | None = Field(
        description="Where the rest begins (call again with start=next_start); null at the end."
    )
    chunks: list[ChunkInfo] = Field(description="The chunks that overlap start..end, in order.")


class ServerLimits(BaseModel):
    max_k: int
    max_query_chars: int
    max_documents: int
    max_ids: int
    max_document_chars: int


class IndexInfo(BaseModel):
    model: str = Field(description="The embedding model the index was built with.")
    dimension: int
    languages: dict[str, int] = Field(description="Documents per detected language, most frequent first.")
    documents: int
    chunks: int
    version: int = Field(description="The index version served (grows with every publish).")
    index_type: str = Field(description="The FAISS index factory string.")
    index_kind: str
    babelindex_version: str
    writes_allowed: bool
    limits: ServerLimits


class UpsertOutput(BaseModel):
    documents_added: int
    documents_updated: int
    documents_unchanged: int
    chunks_embedded: int
    chunks_total: int = Field(description="Chunks in the index afterwards.")
    version: int
    seconds: float
    warnings: list[dict[str, str]] = Field(description="One {source, warning} per document changed while read.")


class DeleteOutput(BaseModel):
    deleted: int = Field(description="How many of the ids named a document (now deleted).")
    version: int


class DocumentArg(BaseModel):
    """One document to add or replace."""

    id: str = Field(min_length=1, max_length=4096, description="Its id; a document with this id is replaced.")
    text: str = Field(description="Its text (not empty).", json_schema_extra={"pattern": SOME_TEXT})
    metadata: dict[str, Any] = Field(default_factory=dict, description="A JSON object (filterable with `where`).")
    source: str | None = Field(None, description="A label shown in hits (default: the id); never opened.")


# -- the server -------------------------------------------------------------------------------
def create_server(index: Index, settings: McpSettings | None = None, log_level: str = "INFO") -> "MCPServer":
    """An ``MCPServer`` whose tools serve ``index`` (see the module doc); not yet running.

    The tools run on the SDK's worker threads; writes take a lock of their own, so they
    come one at a time, and every call first picks up a version another process published.
    """
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.tools import Tool
    from mcp.types import CallToolResult, TextContent, ToolAnnotations

    settings = settings or McpSettings()
    limits = settings.limits
    hidden = str(index.path)
    writing = threading.Lock()

    @contextmanager
    def tool_errors() -> Iterator[None]:
        """A library error as a tool error with its message (without the index's path)."""
        try:
            index.refresh()
            yield
        except BabelIndexError as exc:
            raise ToolError(str(exc).replace(hidden, "the index")) from None

    def reply(text: str, output: BaseModel) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=output.model_dump(mode="json")
        )

    def search(
        query: Annotated[
            str,
            Field(
                description="What to look for, in any language (a question, keywords, a sentence).",
                json_schema_extra={"minLength": 1, "maxLength": limits.max_query_chars, "pattern": SOME_TEXT},
            ),
        ],
        k: Annotated[
            int, Field(description="How many passages.", json_schema_extra={"minimum": 1, "maximum": limits.max_k})
        ] = 5,
        lang: Annotated[
            str | list[str] | None,
            Field(
                description="Only passages in these languages: a code or name ('de', 'German'), a list, or "
                "comma-separated codes ('de,fr'). index_info lists the languages held."
            ),
        ] = None,
        mode: Annotated[
            str,
            Field(
                description="dense: by meaning, across languages (default); lexical: by the exact words "
                '("a phrase", OR, +must, -not, E-2* for prefixes); hybrid: both, fused.',
                json_schema_extra={"enum": list(MODES)},
            ),
        ] = "dense",
        source: Annotated[
            str | None,
            Field(description="Only documents whose source matches this glob ('docs/*.md') or prefix ('docs/')."),
        ] = None,
        where: Annotated[
            dict[str, Any] | list[str] | None,
            Field(
                description='Conditions on document metadata: an object such as {"year": {">=": 2020}, '
                '"tag": {"in": ["a", "b"]}} (a plain value means =), or a list of conditions such as '
                '["year>=2020", "tag in a,b"]. Operators: = != < <= > >= in.',
                json_schema_extra={
                    "anyOf": [
                        {"type": "object", "maxProperties": 8},
                        {"type": "array", "items": {"type": "string", "maxLength": 1024}, "maxItems": 64},
                        {"type": "null"},
                    ]
                },
            ),
        ] = None,
        group_by: Annotated[
            str | None,
            Field(
                description="'document': the best passage of each of k documents, not several of one.",
                json_schema_extra={"anyOf": [{"type": "string", "enum": list(GROUP_BY)}, {"type": "null"}]},
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        with tool_errors():
            if isinstance(query, str) and len(query) > limits.max_query_chars:
                raise InvalidInput(
                    f"the query has {len(query)} characters; this server's limit is {limits.max_query_chars} "
                    "(server option --max-query-chars). Ask with fewer words."
                )
            if isinstance(k, int) and k > limits.max_k:
                raise InvalidInput(f"k={k} is over this server's limit of {limits.max_k} (server option --max-k).")
            langs = parse_langs(lang) if isinstance(lang, str) else lang
            conditions = parse_where(where) if isinstance(where, list) else where
            hits: list[Hit] = index.search(
                query, k, lang=langs, source=source, where=conditions, mode=mode, group_by=group_by
            )
            version = index.version
        passages = [
            Passage(
                number=n,
                source=h.source,
                doc_id=h.doc_id,
                chunk_id=h.chunk_id,
                start=h.start,
                end=h.end,
                lang=h.lang,
                score=h.score,
                text=h.text,
                metadata=dict(h.metadata),
            )
            for n, h in enumerate(hits, start=1)
        ]
        text = format_context(hits) or "No passage matches this query with these filters."
        return reply(text, SearchOutput(query=query, mode=mode, version=version, passages=passages))

    def get_document(
        doc_id: Annotated[str, Field(description="The document's id, as a search passage gives it.")],
        start: Annotated[
            int, Field(description="Offset of the first character to return (0: the beginning).", ge=0)
        ] = 0,
        max_chars: Annotated[
            int,
            Field(
                description="The most characters of text to return.",
                ge=1,
                le=settings.max_document_chars,
            ),
        ] = settings.max_document_chars,
    ) -> Annotated[CallToolResult, DocumentOutput]:
        with tool_errors():
            document = index.get_document(doc_id)
            if document is None:
                raise InvalidInput(f"no document with id {doc_id[:200]!r} in this index; take ids from search results.")
        n_chars = int(document["n_chars"])
        if start > n_chars:
            raise ToolError(f"start={start} is beyond the end of the document ({n_chars} characters).")
        end = min(n_chars, start + max_chars)
        chunks = [c for c in document["chunks"] if c["end"] > start and c["start"] < end] or []
        text = _stitched(chunks, start, end)
        output = DocumentOutput(
            doc_id=document["doc_id"],
            source=document["source"],
            lang=document["lang"],
            metadata=document["metadata"],
            n_chars=n_chars,
            updated_at=document["updated_at"],
            start=start,
            end=end,
            text=text,
            next_start=end if end < n_chars else None,
            chunks=[ChunkInfo(**{k: c[k] for k in ("chunk_id", "ord", "start", "end", "lang")}) for c in chunks],
        )
        header = f"doc_id: {output.doc_id} | source: {output.source} | chars {start}-{end} of {n_chars}"
        if output.lang:
            header += f" | lang: {output.lang}"
        if output.metadata:
            header += f"\nmetadata: {json.dumps(output.metadata, ensure_ascii=False)}"
        more = f"\n[… {n_chars - end} more characters: call get_document with start={end}]" if end < n_chars else ""
        return reply(f"{header}\n{text}{more}", output)

    def index_info() -> Annotated[CallToolResult, IndexInfo]:
        with tool_errors():
            stats = index.stats()
        info = IndexInfo(
            model=stats["model"],
            dimension=stats["dimension"],
            languages=stats["languages"],
            documents=stats["documents"],
            chunks=stats["chunks"],
            version=stats["faiss_version"],
            index_type=stats["index_type"],
            index_kind=stats["index_kind"],
            babelindex_version=_version(),
            writes_allowed=settings.allow_writes,
            limits=ServerLimits(
                max_k=limits.max_k,
                max_query_chars=limits.max_query_chars,
                max_documents=limits.max_documents,
                max_ids=limits.max_ids,
                max_document_chars=settings.max_document_chars,
            ),
        )
        return reply(json.dumps(info.model_dump(mode="json"), ensure_ascii=False, indent=2), info)

    def upsert_documents(
        documents: Annotated[
            list[DocumentArg],
            Field(description="The documents.", json_schema_extra={"minItems": 1, "maxItems": limits.max_documents}),
        ],
    ) -> Annotated[CallToolResult, UpsertOutput]:
        with tool_errors():
            if not documents:
                raise InvalidInput("no documents given; send at least one {id, text}.")
            if len(documents) > limits.max_documents:
                raise InvalidInput(
                    f"{len(documents)} documents in one call; the limit is {limits.max_documents} "
                    "(server option --max-documents). Send them in parts."
                )
            ids = [d.id for d in documents]
            if len(set(ids)) != len(ids):
                raise InvalidInput("a document id appears twice in this call; send each id once.")
            with writing:
                report = index.upsert([d.model_dump() for d in documents])
            output = UpsertOutput(
                documents_added=report.documents_added,
                documents_updated=report.documents_updated,
                documents_unchanged=report.documents_unchanged,
                chunks_embedded=report.chunks_embedded,
                chunks_total=report.chunks_total,
                version=index.version,
                seconds=report.seconds,
                warnings=report.warnings,
            )
        text = (
            f"{output.documents_added} added, {output.documents_updated} updated, {output.documents_unchanged} "
            f"unchanged; {output.chunks_embedded} chunks embedded, {output.chunks_total} in the index "
            f"(version {output.version}). They are searchable now."
        )
        return reply(text, output)

    def delete_documents(
        ids: Annotated[
            list[str],
            Field(
                description="The ids of the documents.", json_schema_extra={"minItems": 1, "maxItems": limits.max_ids}
            ),
        ],
    ) -> Annotated[CallToolResult, DeleteOutput]:
        with tool_errors():
            if len(ids) > limits.max_ids:
                raise InvalidInput(
                    f"{len(ids)} ids in one call; the limit is {limits.max_ids} (server option --max-ids). "
                    "Send them in parts."
                )
            with writing:
                deleted = index.delete(ids) if ids else 0
            output = DeleteOutput(deleted=deleted, version=index.version)
        return reply(f"{deleted} of {len(ids)} documents deleted (version {output.version}).", output)

    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    tools = [
        Tool.from_function(
            search,
            title="Search the index",
            description=(
                "Find the passages that best match a query, in any language: dense search is by meaning, so a "
                "German question finds French or English passages. Returns the passages best first, each under "
                "a header '[n] source: S | doc_id: D | chars START-END | lang: L | score: X' (the passage is "
                "characters START-END of document D): cite passages by [n] or by doc_id and offsets. Narrow "
                "with lang, source and where; get more of a document with get_document."
            ),
            annotations=read_only,
        ),
        Tool.from_function(
            get_document,
            title="Read a document",
            description=(
                "Read a document by its doc_id (from a search passage): its text, metadata and chunks with "
                "character offsets (a passage with chars START-END is text[START:END]). A long document comes in "
                f"parts of at most {settings.max_document_chars} characters: call again with start=next_start."
            ),
            annotations=read_only,
        ),
        Tool.from_function(
            index_info,
            title="Describe the index",
            description=(
                "What the index holds: its model, the languages with their document counts, the numbers of "
                "documents and chunks, its version and FAISS type, and this server's limits and whether writes "
                "are allowed. Call it first to learn which languages and filters make sense."
            ),
            annotations=read_only,
        ),
    ]
    if settings.allow_writes:
        tools += [
            Tool.from_function(
                upsert_documents,
                title="Add or replace documents",
                description=(
                    "Add documents to the index, or replace those whose id exists (unchanged ones are not "
                    "embedded again): each {id, text, metadata?, source?}, at most "
                    f"{limits.max_documents} per call. Returns when they are searchable."
                ),
                annotations=ToolAnnotations(
                    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
                ),
            ),
            Tool.from_function(
                delete_documents,
                title="Delete documents",
                description=(
                    f"Delete documents by id (at most {limits.max_ids} per call); 'deleted' counts the ids that "
                    "named a document. Once this returns, no search returns them."
                ),
                annotations=ToolAnnotations(
                    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
                ),
            ),
        ]
    return MCPServer(
        name="babelindex",
        title="babelindex",
        instructions=INSTRUCTIONS,
        version=_version(),
        tools=tools,
        log_level=log_level.upper(),  # type: ignore[arg-type]  # checked by the CLI's choice
    )


def _stitched(chunks: Sequence[Mapping[str, Any]], start: int, end: int) -> str:
    """Characters ``start`` to ``end`` of a document's text from its chunks (each ``text`` is
    ``document_text[chunk_start:chunk_end]``; chunks may overlap). A character no chunk holds
    (white space between two chunks) reads as a space, so that offsets stay exact."""
    out = [" "] * (end - start)
    for chunk in chunks:
        lo, hi = max(start, int(chunk["start"])), min(end, int(chunk["end"]))
        if lo < hi:
            out[lo - start : hi - start] = chunk["text"][lo - chunk["start"] : hi - chunk["start"]]
    return "".join(out)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("babelindex")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


# -- running it -------------------------------------------------------------------------------
@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to stdout (file descriptor 1: Python, C libraries, child
    processes) to stderr meanwhile: on stdio, stdout carries the protocol and nothing else."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with redirect_stdout(sys.stderr):  # sys.stdout may be another object than descriptor 1
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def warm_up(index: Index) -> None:
    """Load the model (a first query) before serving, so that an agent's first search does not
    wait for it; on stdio, with stdout sent to stderr meanwhile."""
    with stdout_to_stderr():
        if index.model_record.imported:
            return  # an index of imported vectors may have no model here; searches say so
        index.embed(["warm-up"])


def serve_stdio(server: "MCPServer") -> None:
    """Serve over this process's stdin and stdout until stdin closes (blocking). While it
    serves, the SDK points file descriptor 1 at stderr, so that stray output misses the wire."""
    server.run("stdio")


def serve_http(
    server: "MCPServer",
    host: str = "127.0.0.1",
    port: int = 8001,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int = Limits().max_body_bytes,
    log_level: str = "info",
) -> None:
    """Serve over streamable HTTP at ``http://host:port/mcp`` until interrupted (blocking).

    ``token``: required as ``Authorization: Bearer`` on every request (constant-time
    comparison, as :class:`search.server.TokenMiddleware` does for ``indexer serve``);
    anything but loopback without one is refused (:func:`search.server.check_exposure`).
    ``allowed_hosts``: the ``Host`` header names accepted (default
    :func:`search.server.default_allowed_hosts`; ``"*"`` turns the check off); the SDK's
    transport security checks them, and ``Origin`` headers against the same names.
    """
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from search.http_protocol import bounded_protocol
    from search.server import TokenMiddleware

    check_exposure(host, token)
    names = list(allowed_hosts) if allowed_hosts is not None else list(default_allowed_hosts(host))
    if "*" in names:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    else:
        hosts = [f"[{n}]" if ":" in n else n for n in (n.lower().strip("[]") for n in names)]
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*hosts, *(f"{h}:*" for h in hosts)],
            allowed_origins=[
                f"{scheme}://{h}{any_port}" for h in hosts for scheme in ("http", "https") for any_port in ("", ":*")
            ],
        )
    app: Any = server.streamable_http_app(
        streamable_http_path=HTTP_PATH, transport_security=security, max_request_body_size=max_body_bytes, host=host
    )
    if token is not None:
        app = TokenMiddleware(app, token=token)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=5,
        http=bounded_protocol(10.0),
        timeout_keep_alive=5,
    )


def list_tools(server: "MCPServer") -> list[dict[str, Any]]:
    """The tools as ``tools/list`` gives them to a client (JSON-ready dicts, camelCase keys)."""
    import anyio

    tools = anyio.run(server.list_tools)
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


__all__ = [
    "HTTP_PATH",
    "READ_TOOLS",
    "WRITE_TOOLS",
    "McpSettings",
    "create_server",
    "list_tools",
    "serve_http",
    "serve_stdio",
    "stdout_to_stderr",
    "warm_up",
]
