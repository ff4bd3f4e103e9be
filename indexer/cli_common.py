"""What the ``indexer`` commands share: the common options, progress bars, error translation."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from indexer.choices import PRECISIONS
from indexer.progress import Progress
from store.errors import BabelIndexError

__all__ = [
    "ALLOW_HOST_OPTION",
    "EXCLUDE_OPTION",
    "INDEX_OPTION",
    "MMAP_OPTION",
    "PRECISION_OPTION",
    "TOKEN_ENV",
    "WAIT_OPTION",
    "Bars",
    "fail",
    "precision_notices",
    "read_token",
    "token_options",
    "with_progress",
]

TOKEN_ENV = "BABELINDEX_TOKEN"
"""The environment variable of the token (the same name as ``search.server.TOKEN_ENV``)."""

INDEX_OPTION = click.option(
    "--index",
    "index_path",
    required=True,
    envvar="BABELINDEX_INDEX",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Index directory.",
)

MMAP_OPTION = click.option(
    "--mmap",
    is_flag=True,
    help="Memory-map the FAISS file instead of reading it into memory, for an index larger "
    "than RAM (IVF types: lists stay on disk; flat and hnsw: vectors). Its checksum is still verified first.",
)

EXCLUDE_OPTION = click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERN",
    help="Leave out files and folders matching PATTERN, written as in .gitignore (repeatable): "
    "'drafts/', '*.log', '/build'. Hidden and editors' temporary files are always left out.",
)
"""``--exclude`` of the commands that read a corpus (build, watch, serve --watch)."""

WAIT_OPTION = click.option(
    "--wait",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="While another process writes the index (a server's upserts, another build), keep trying for the "
    "writer lock this long instead of failing at once.",
)

PRECISION_OPTION = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    envvar="BABELINDEX_PRECISION",
    show_envvar=True,
    help="Arithmetic of the model: auto (default: the fastest that agrees with fp32 on this CPU, "
    "measured once and cached), fp32, bf16 (torch), ov-bf16 (OpenVINO) or int8.",
)

_TOKEN_OPTIONS = [
    click.option(
        "--token",
        default=None,
        envvar=TOKEN_ENV,
        show_envvar=True,
        help="Require 'Authorization: Bearer TOKEN' on every request (16+ characters; `indexer serve` leaves "
        "/health open). Prefer the environment variable or --token-file: options show in process listings.",
    ),
    click.option(
        "--token-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="Read the token from this file (its first line).",
    ),
]

ALLOW_HOST_OPTION = click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests whose Host header is NAME (repeatable; '*' for any). Default: loopback "
    "names and the listening address.",
)
"""``--allow-host`` of the HTTP servers (``indexer serve``, ``indexer mcp --http``): the guard against DNS rebinding."""


def token_options(command: Any) -> Any:
    """``--token`` (or ``BABELINDEX_TOKEN``) and ``--token-file`` of the HTTP servers; read
    them with :func:`read_token`."""
    for option in reversed(_TOKEN_OPTIONS):
        command = option(command)
    return command


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token that ``--token`` / ``BABELINDEX_TOKEN`` or ``--token-file`` give, or ``None``
    for none. An empty one (an empty variable, an empty file or a blank first line) comes back
    as ``""``, which the server refuses: it is an error, never "no token"."""
    if token is None and os.environ.get(TOKEN_ENV) == "":
        token = ""  # click reads an empty variable as unset; here it is an empty token
    if token_file is not None:
        if token is not None:
            raise click.UsageError(f"give --token (or {TOKEN_ENV}) or --token-file, not both.")
        lines = token_file.read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
    return token


QUERY_PROMPT_OPTION = click.option(
    "--query-prompt",
    default=None,
    metavar="TEXT",
    help="Text put before each query instead of the model's own query prompt ('' for none). "
    "Default: the index's recorded prompt, else the model's (e.g. 'query: ' for multilingual-e5).",
)
DOCUMENT_PROMPT_OPTION = click.option(
    "--document-prompt",
    default=None,
    metavar="TEXT",
    help="Text put before each document chunk instead of the model's own document prompt ('' for none); "
    "its tokens count in the chunk limit. Default: the index's recorded prompt, else the model's "
    "(e.g. 'passage: ' for multilingual-e5).",
)


def PROMPT_OPTIONS(f: Any) -> Any:
    """``--query-prompt`` and ``--document-prompt``, for every command that loads a model: the
    command receives ``query_prompt`` and ``document_prompt`` (None when not given)."""
    return QUERY_PROMPT_OPTION(DOCUMENT_PROMPT_OPTION(f))


class Bars(Progress):
    """tqdm bars for a build on stderr: files read (with the total, a percentage and an ETA
    once the files are counted; documents where they are not) and chunks embedded. Each bar
    appears with its first figure, so that nothing sits at zero while the model loads."""

    def __init__(self) -> None:
        self.read: Any = None
        self.embed: Any = None

    def _bar(self, desc: str, unit: str, position: int, total: int | None = None) -> Any:
        from tqdm import tqdm

        return tqdm(desc=desc, unit=unit, total=total, position=position, leave=False, dynamic_ncols=True)

    def files_total(self, n: int) -> None:
        if self.read is None:
            self.read = self._bar("reading", " files", 0, total=n)

    def file_read(self) -> None:
        if self.read is not None and self.read.total is not None:
            self.read.update(1)

    def document_read(self) -> None:
        if self.read is None:  # no file count (an import): count documents
            self.read = self._bar("reading", " docs", 0)
        if self.read.total is None:
            self.read.update(1)

    def chunks_embedded(self, n: int) -> None:
        if self.embed is None:
            self.embed = self._bar("embedding", " chunks", 1)
        self.embed.update(n)

    def close(self) -> None:
        for bar in (self.embed, self.read):
            if bar is not None:
                bar.close()
        if self.read is not None or self.embed is not None:
            sys.stderr.write("\r")  # tqdm leaves the cursor where the lower bar ended
            sys.stderr.flush()


class _TqdmLines(logging.Handler):
    """Writes log lines above the bars (``tqdm.write``), on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


@contextmanager
def precision_notices() -> Iterator[None]:
    """Show ``auto``'s measurements on stderr (a model's first ``auto`` load on a machine takes
    seconds and says so), for commands that do not show the model's loading otherwise."""
    logger = logging.getLogger("babelindex.models.precision")
    handler = _TqdmLines()
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


@contextmanager
def with_progress(wanted: bool) -> Iterator[Bars | None]:
    """When ``wanted``: progress bars on a terminal, and babelindex's log lines (the model
    loaded, precisions measured) on stderr. Library errors become ClickExceptions."""
    bars = Bars() if wanted and sys.stderr.isatty() else None
    logger = logging.getLogger("babelindex")
    handler = _TqdmLines() if wanted else None
    if handler is not None:
        before = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield bars
    except BabelIndexError as exc:
        raise fail(exc) from None
    finally:
        if bars:
            bars.close()
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(before[0])
            logger.propagate = before[1]


def fail(exc: BabelIndexError) -> click.ClickException:
    return click.ClickException(str(exc))
