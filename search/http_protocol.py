"""uvicorn's h11 HTTP protocol with a deadline on reading headers.

uvicorn bounds the size of a request's headers (``h11_max_incomplete_event_size``) but not
the time a client takes to send them: a client that trickles a header a byte at a time
(slowloris) holds its connection open for as long as it likes. :class:`BoundedH11Protocol`
closes a connection whose request headers are not complete ``header_timeout`` seconds after
the connection opened or the previous response ended. (uvicorn's default httptools
protocol has no header size limit at all, so the server uses h11.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class BoundedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes connections slow to send their request headers."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived whole
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # the next request's headers are due; a pipelined one disarms it at once
        super().on_response_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %.0f s", self.header_timeout)
            self.transport.close()


def bounded_protocol(header_timeout: float) -> type[BoundedH11Protocol]:
    """A :class:`BoundedH11Protocol` class with its header deadline set (uvicorn takes a class)."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"header_timeout": float(header_timeout)})
