"""``indexer mcp``: the command line of the MCP server (:mod:`search.mcp_server`).

Like :mod:`indexer.cli`, a composition root: it parses options, opens the index and hands
it to the server; the SDK and the model load only when the command runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from indexer.cli_common import (
    ALLOW_HOST_OPTION,
    INDEX_OPTION,
    MMAP_OPTION,
    PRECISION_OPTION,
    PROMPT_OPTIONS,
    fail,
    read_token,
    token_options,
)
from store.errors import BabelIndexError

__all__ = ["mcp"]

HTTP_ONLY = {
    "host": "--host",
    "port": "--port",
    "token": "--token",
    "token_file": "--token-file",
    "allow_hosts": "--allow-host",
    "max_body_mb": "--max-body-mb",
}
"""Parameters that mean something with ``--http`` only (``--token`` given on the command
line; ``BABELINDEX_TOKEN`` in the environment is ignored on stdio)."""


@click.command()
@INDEX_OPTION
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Also offer the tools upsert_documents and delete_documents (default: read-only: search, "
    "get_document, index_info). On a path with no index yet, create an empty one.",
)
@click.option(
    "--http",
    is_flag=True,
    help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (stdio: what a desktop agent "
    "starts as a subprocess).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="With --http: the address to listen on. Anything but loopback needs a token.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="With --http: the TCP port."
)
@token_options
@ALLOW_HOST_OPTION
@click.option(
    "--max-k", type=click.IntRange(1, 10_000), default=1_000, show_default=True, help="Most passages per search."
)
@click.option(
    "--max-query-chars", type=click.IntRange(1), default=2_000, show_default=True, help="Longest query (characters)."
)
@click.option(
    "--max-documents",
    type=click.IntRange(1),
    default=1_000,
    show_default=True,
    help="Most documents per upsert_documents call.",
)
@click.option(
    "--max-ids", type=click.IntRange(1), default=10_000, show_default=True, help="Most ids per delete_documents call."
)
@click.option(
    "--max-document-chars",
    type=click.IntRange(1),
    default=20_000,
    show_default=True,
    help="Most characters of a document's text per get_document call (a longer one comes in parts).",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(0.001),
    default=10.0,
    show_default=True,
    help="With --http: the largest request body (MiB).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Log level (on stderr; tool errors are logged at info).",
)
@PRECISION_OPTION
@PROMPT_OPTIONS
@MMAP_OPTION
@click.option(
    "--model",
    default=None,
    help="Model for queries (and, with --allow-writes, for a new index): a name from `indexer models`, a Hub id "
    "or a local directory. Default: the index's model (an index built with another model is refused).",
)
@click.pass_context
def mcp(
    ctx,
    index_path,
    allow_writes,
    http,
    host,
    port,
    token,
    token_file,
    allow_hosts,
    max_k,
    max_query_chars,
    max_documents,
    max_ids,
    max_document_chars,
    max_body_mb,
    log_level,
    precision,
    query_prompt,
    document_prompt,
    mmap,
    model,
):
    """Serve the index to agents over the Model Context Protocol (stdio by default). Stop with Ctrl-C."""
    from search import Index
    from search.mcp_server import McpSettings, create_server, serve_http, serve_stdio, stdout_to_stderr, warm_up
    from search.server import Limits, check_exposure, default_allowed_hosts

    if not http:
        given = [
            option
            for name, option in HTTP_ONLY.items()
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(f"{', '.join(given)} apply to --http only; stdio needs no address or token.")
        token = None
    else:
        token = read_token(token, token_file)
    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = McpSettings(
        allow_writes=allow_writes,
        limits=Limits(
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_query_chars=max_query_chars,
            max_k=max_k,
            max_documents=max_documents,
            max_ids=max_ids,
        ),
        max_document_chars=max_document_chars,
    )
    with stdout_to_stderr():  # on stdio, stdout is the protocol's
        try:
            if http:
                check_exposure(host, token)  # before anything is opened
            if allow_writes and not Path(index_path).exists():
                from indexer.update import create_index

                model = create_index(
                    index_path,
                    model=model,
                    precision=precision,
                    query_prompt=query_prompt,
                    document_prompt=document_prompt,
                )
                click.echo(
                    f"Created a new, empty index at {index_path} (model {model.name}): add documents with "
                    "the tool upsert_documents.",
                    err=True,
                )
            index = Index.open(
                index_path,
                model=model,
                precision=precision,
                mmap=mmap,
                query_prompt=query_prompt,
                document_prompt=document_prompt,
            )
            warm_up(index)
            server = create_server(index, settings, log_level=log_level)
        except BabelIndexError as exc:
            raise fail(exc) from None
    tools = "search, get_document, index_info" + (", upsert_documents, delete_documents" if allow_writes else "")
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/mcp" if http else "stdio"
    auth = (" (token required)" if token else " (no token: loopback only)") if http else ""
    click.echo(
        f"MCP server for {index_path} ({len(index):,} chunks, model {index.model_name}) on {where}{auth}; "
        f"tools: {tools}",
        err=True,
    )
    try:
        if http:
            serve_http(
                server,
                host=host,
                port=port,
                token=token,
                allowed_hosts=default_allowed_hosts(host) + tuple(allow_hosts),
                max_body_bytes=settings.limits.max_body_bytes,
                log_level=log_level,
            )
        else:
            serve_stdio(server)
    except KeyboardInterrupt:
        pass
    finally:
        index.close()
