"""``indexer watch``: the command line of the ingestion worker (:mod:`indexer.watch`).

Also the pieces ``indexer serve --watch`` shares: the watch options, building a
:class:`~indexer.watch.Watcher` from them, and the log that prints its events.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from indexer.choices import INDEX_TYPES
from indexer.cli_common import EXCLUDE_OPTION, INDEX_OPTION, PRECISION_OPTION, PROMPT_OPTIONS, fail, with_progress
from store.errors import BabelIndexError

if TYPE_CHECKING:  # the worker (watchfiles, the model) is imported when a command runs
    from indexer.watch import Event, Watcher

__all__ = ["WATCH_OPTIONS", "EventLog", "make_watcher", "stop_on_signals", "watch", "watch_options"]


WATCH_OPTIONS: list[Callable[[Any], Any]] = [
    EXCLUDE_OPTION,
    click.option(
        "--poll",
        type=click.FloatRange(min=0.05),
        default=None,
        metavar="SECONDS",
        help="Look for changes every SECONDS instead of using filesystem events (for filesystems without "
        "them; network filesystems are polled every 2 s by default).",
    ),
    click.option(
        "--step-ms",
        type=click.IntRange(1),
        default=200,
        show_default=True,
        help="Quiet time that ends a burst of changes; the burst is applied as one batch.",
    ),
    click.option(
        "--debounce-ms",
        type=click.IntRange(1),
        default=2000,
        show_default=True,
        help="Longest time a batch gathers changes before it is applied.",
    ),
    click.option(
        "--rescan",
        type=click.FloatRange(0),
        default=600.0,
        show_default=True,
        metavar="SECONDS",
        help="Compare the whole folder with what was indexed this often, for changes that events missed (0: never).",
    ),
]


def watch_options(f: Any) -> Any:
    """Add the options of :data:`WATCH_OPTIONS` to a command."""
    for option in reversed(WATCH_OPTIONS):
        f = option(f)
    return f


def make_watcher(
    corpus: Path,
    index: Path,
    *,
    model: str | None = None,
    precision: str | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    index_type: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    exclude: tuple[str, ...] = (),
    poll: float | None = None,
    step_ms: int = 200,
    debounce_ms: int = 2000,
    rescan: float = 600.0,
    log: EventLog | None = None,
    progress: Any = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Watcher:
    """A :class:`Watcher` from the command line's options. Raises ``InvalidInput`` for bad ones."""
    from indexer.reading import RecordFields
    from indexer.watch import Watcher, WatchOptions

    return Watcher(
        corpus,
        index,
        model=model,
        precision=precision,
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
        index_type=index_type,
        fields=RecordFields(text_field, id_field),
        exclude=tuple(exclude),
        options=WatchOptions(
            step_ms=step_ms, debounce_ms=max(debounce_ms, step_ms), poll_seconds=poll, rescan_seconds=rescan
        ),
        on_event=log,
        progress=progress,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
    )


class EventLog:
    """Prints the worker's events: one line each (a batch's problems one line each too), or
    one JSON object per line with ``as_json``. ``quiet`` prints only warnings and errors."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False, err: bool = False):
        self.as_json, self.quiet, self.err = as_json, quiet, err
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        from indexer.watch import BatchReport, Notice

        with self._lock:
            if self.as_json:
                self._echo(json.dumps(event.to_dict(), ensure_ascii=False))
                return
            if isinstance(event, BatchReport):
                if not self.quiet:
                    self._echo(event.line())
                for source, reason in event.problems:
                    self._echo(Notice("warning", reason, source, time=event.time).line())
            elif not (self.quiet and event.level == "info"):
                self._echo(event.line())

    def _echo(self, line: str) -> None:
        click.echo(line, err=self.err)
        (sys.stderr if self.err else sys.stdout).flush()


def stop_on_signals(watcher: Watcher, log: EventLog) -> None:
    """SIGTERM or SIGINT: finish the batch being applied, publish it, stop (exit 0). A second
    SIGINT stops at once (KeyboardInterrupt): nothing is lost, the next start resumes."""

    from indexer.watch import Notice

    asked = {"n": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        asked["n"] += 1
        if asked["n"] > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if asked["n"] == 1:
            log(Notice("info", f"{signal.Signals(signum).name}: finishing the current batch, then stopping"))
        watcher.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@INDEX_OPTION
@click.option(
    "--model",
    default=None,
    help="Model: a name from `indexer models`, a Hub id or a local directory. Default: the index's model, "
    "else distilmbert.",
)
@PRECISION_OPTION
@PROMPT_OPTIONS
@click.option("--chunk-tokens", type=click.IntRange(8, 512), default=None, help="Chunk size in model tokens.")
@click.option("--overlap-tokens", type=click.IntRange(0, 256), default=None, help="Overlap between chunks in tokens.")
@click.option("--index-type", type=click.Choice(INDEX_TYPES), default=None, help="FAISS index type (as `build`).")
@click.option(
    "--text-field",
    default=None,
    help="Text field of .jsonl/.csv records (default: as the index records, else detected per file).",
)
@click.option(
    "--id-field", default=None, help="Id field of .jsonl/.csv records (default: as recorded, else file#record number)."
)
@watch_options
@click.option("--json", "as_json", is_flag=True, help="Log one JSON object per line (batches and notices).")
@click.option("--quiet", "-q", is_flag=True, help="Log only warnings and errors; no progress bars.")
def watch(
    corpus: Path,
    index_path: Path,
    model: str | None,
    precision: str | None,
    query_prompt: str | None,
    document_prompt: str | None,
    chunk_tokens: int | None,
    overlap_tokens: int | None,
    index_type: str | None,
    text_field: str | None,
    id_field: str | None,
    exclude: tuple[str, ...],
    poll: float | None,
    step_ms: int,
    debounce_ms: int,
    rescan: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Keep --index in step with CORPUS: build or resume it, then apply every change as it happens.

    New and changed files are embedded (only what changed), deleted ones removed, renamed
    ones moved without embedding their text again. Runs until SIGTERM or Ctrl-C, which finish
    and publish the batch being applied (exit 0); a second Ctrl-C stops at once. Killed in
    any way, the next start converges on the folder's contents.
    """

    from indexer.watch import Notice

    log = EventLog(as_json=as_json, quiet=quiet)
    try:
        with with_progress(not (quiet or as_json)) as bars:
            watcher = make_watcher(
                corpus,
                index_path,
                model=model,
                precision=precision,
                chunk_tokens=chunk_tokens,
                overlap_tokens=overlap_tokens,
                index_type=index_type,
                text_field=text_field,
                id_field=id_field,
                exclude=exclude,
                poll=poll,
                step_ms=step_ms,
                debounce_ms=debounce_ms,
                rescan=rescan,
                log=log,
                progress=bars,
                query_prompt=query_prompt,
                document_prompt=document_prompt,
            )
            stop_on_signals(watcher, log)
            watcher.start()
        log(Notice("info", f"watching {corpus} ({watcher.mode}); stop with Ctrl-C or SIGTERM"))
        watcher.loop()
    except BabelIndexError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        log(Notice("info", "stopped at once: nothing is lost, the next start resumes"))
        sys.exit(130)
    log(Notice("info", "stopped"))
