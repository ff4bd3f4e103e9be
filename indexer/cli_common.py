"""What the ``indexer`` commands share: the common options, progress bars, error translation."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from indexer.choices import PRECISIONS
from indexer.progress import Progress
from store.errors import BabelIndexError

__all__ = ["INDEX_OPTION", "MMAP_OPTION", "PRECISION_OPTION", "WAIT_OPTION", "Bars", "fail", "with_progress"]

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
    "measured once and cached), fp32, bf16 or int8.",
)


class Bars(Progress):
    """tqdm bars for a build: documents read and chunks embedded (on stderr)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.read = tqdm(desc="reading", unit=" docs", position=0, leave=False, dynamic_ncols=True)
        self.embed = tqdm(desc="embedding", unit=" chunks", position=1, leave=False, dynamic_ncols=True)

    def document_read(self) -> None:
        self.read.update(1)

    def chunks_embedded(self, n: int) -> None:
        self.embed.update(n)

    def close(self) -> None:
        self.read.close()
        self.embed.close()


@contextmanager
def with_progress(wanted: bool) -> Iterator[Bars | None]:
    """Progress bars on a terminal when ``wanted``; library errors become ClickExceptions."""
    bars = Bars() if wanted and sys.stderr.isatty() else None
    try:
        yield bars
    except BabelIndexError as exc:
        raise fail(exc) from None
    finally:
        if bars:
            bars.close()


def fail(exc: BabelIndexError) -> click.ClickException:
    return click.ClickException(str(exc))
