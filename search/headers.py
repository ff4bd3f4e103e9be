"""Security headers on every answer of ``indexer serve``, errors and refusals included.

The Content-Security-Policy lets a page run only scripts and style sheets from this server
(no inline script, no other site) and be framed by none; the others keep browsers from
guessing content types, sending the page's address elsewhere, or caching the index's data.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
"""Scripts, style sheets, images and requests from this server only; no plugins, no
framing, no ``<base>``; forms post here only. No ``'unsafe-inline'`` anywhere."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
"""Set on every response (replacing any the application set)."""
_OURS = frozenset({name for name, _ in SECURITY_HEADERS} | {b"cache-control"})

STATIC_CACHE = b"no-cache"
"""Cache-Control of the page's files: kept, but revalidated (their ETag) before each use, so
an upgraded server is never shown with the old scripts."""
DATA_CACHE = b"no-store"
"""Cache-Control of every other answer (the index's data): never written to a cache."""


class SecurityHeadersMiddleware:
    """Add :data:`SECURITY_HEADERS` and a ``Cache-Control`` to every HTTP response: the
    paths in ``static_paths`` or under one of ``static_prefixes`` get :data:`STATIC_CACHE`,
    the others :data:`DATA_CACHE`. Outermost, so that refusals of the other middlewares get
    them too."""

    def __init__(self, app: ASGIApp, static_paths: frozenset[str] = frozenset(), static_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.static_paths = static_paths
        self.static_prefixes = static_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        static = path in self.static_paths or path.startswith(self.static_prefixes)
        cache = STATIC_CACHE if static else DATA_CACHE

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
                message["headers"] = [*kept, *SECURITY_HEADERS, (b"cache-control", cache)]
            await send(message)

        await self.app(scope, receive, with_headers)
