"""Micro-batching: queries from concurrent requests share one model call.

A transformer embeds 16 short queries in one forward pass in little more time than one
(the cost is in the weights, not the sequence), so a server that embeds each request on
its own wastes most of the CPU when clients arrive together. :class:`QueryBatcher` queues
the requests' texts, gathers what arrives within ``max_wait_ms`` of the first one (and
whatever queued while the previous batch ran) up to ``max_batch`` texts, embeds them in
one call on one worker thread, and hands each request its rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray] = field(repr=False)


class QueryBatcher:
    """Embed query texts from concurrent callers in shared batches.

    ``embed`` maps a list of n texts to float32 ``(n, dimension)`` vectors; it runs on one
    dedicated thread, one batch at a time. ``max_batch=1`` embeds every request on its own
    (no batching). Use inside a running event loop: ``await start()``, ``await embed(texts)``,
    ``await stop()``. ``on_batch(texts, seconds)`` is told of every model call that succeeded
    (for the server's metrics).
    """

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self._embed = embed
        self._on_batch = on_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._held: _Request | None = None
        self._last_requests = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="babelindex-embed")
        self.batches = 0
        """Model calls made so far (for statistics and tests)."""
        self.texts = 0
        """Texts embedded so far."""

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="babelindex-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts``, float32 ``(len(texts), dimension)``, embedded together
        with the texts of other requests waiting at the same time."""
        if self._queue is None:
            raise RuntimeError("QueryBatcher.start() was not awaited")
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        vectors: np.ndarray = await request.future
        return vectors

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(loop)
            texts = [t for r in batch for t in r.texts]
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self._executor, self._embed, texts)
            except Exception as exc:  # one bad query must not fail the others: embed them apart
                if len(batch) == 1:
                    _settle(batch[0], exc=exc)
                    continue
                for request in batch:
                    try:
                        _settle(request, await loop.run_in_executor(self._executor, self._embed, request.texts))
                    except Exception as single:
                        _settle(request, exc=single)
                continue
            self.batches += 1
            self.texts += len(texts)
            if self._on_batch is not None:
                self._on_batch(len(texts), time.perf_counter() - started)
            row = 0
            for request in batch:
                _settle(request, vectors[row : row + len(request.texts)])
                row += len(request.texts)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Request]:
        """The next batch: the first waiting request, then the others queued, until
        ``max_batch`` texts; under concurrent load, also those arriving within ``max_wait``
        seconds of the first."""
        assert self._queue is not None
        first, self._held = self._held or await self._queue.get(), None
        batch, size = [first], len(first.texts)
        deadline = loop.time() + (self.max_wait if self._last_requests > 1 else 0.0)
        while size < self.max_batch:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(request.texts) > self.max_batch:
                self._held = request  # it heads the next batch
                break
            batch.append(request)
            size += len(request.texts)
        self._last_requests = len(batch)
        return batch


def _settle(request: _Request, vectors: np.ndarray | None = None, exc: BaseException | None = None) -> None:
    if request.future.done():  # the caller went away (client disconnected)
        return
    if exc is not None:
        request.future.set_exception(exc)
    elif vectors is not None:
        request.future.set_result(vectors)
