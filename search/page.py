"""The search page at ``/`` and the API documentation at ``/docs`` of ``indexer serve``.

Both are static files: the page's HTML, CSS and JavaScript modules ship in the package
(``search/static/``, no build step), and Swagger UI's script and style sheet come from the
``fastapi-offline`` package. Nothing loads from another site, so both work offline and under
a Content-Security-Policy of ``'self'`` (:mod:`search.headers`).

They hold nothing of the index, so they load without the token (:func:`is_open`); their
scripts learn from ``GET /health`` whether the server needs one, ask for it once per browser
tab (kept in ``sessionStorage``, sent as ``Authorization: Bearer``, never in a URL or a
cookie), and every request for the index's data goes through the API and its token check.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
"""The page's own files (HTML, CSS, JavaScript modules, the icon)."""
STATIC_PREFIX = "/static/"
"""Where the files of :data:`STATIC_DIR` and Swagger UI's are served."""
SWAGGER_PREFIX = "/static/swagger/"
"""Where Swagger UI's files (``swagger-ui-bundle.js``, ``swagger-ui.css``) are served."""
PAGE_PATHS = frozenset({"/", "/docs"})
"""The HTML pages: the search page and the API documentation."""


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's files in the installed ``fastapi-offline`` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def is_open(path: str) -> bool:
    """Whether ``path`` is one of the page's or the documentation's own files, served
    without the token: the pages and the static files (never a path with ``..`` in it)."""
    return path in PAGE_PATHS or (path.startswith(STATIC_PREFIX) and ".." not in path)


def add_page(app: FastAPI) -> None:
    """Serve the search page at ``/``, the API documentation at ``/docs`` and their files
    under :data:`STATIC_PREFIX` from ``app`` (none of them in the OpenAPI schema)."""
    # The more specific mount first: routes are tried in order.
    app.mount(SWAGGER_PREFIX.rstrip("/"), StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")
    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def search_page() -> FileResponse:
        """The search page."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    async def api_docs() -> FileResponse:
        """Swagger UI over ``/openapi.json``."""
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html; charset=utf-8")
