"""The search page (``/``) and the API documentation (``/docs``) in a real headless Chromium
(Debian's ``chromium``, driven by Playwright) against real ``indexer serve`` processes, one
without a token and one with: a German query finds the French passage; passages are shown as
text, never as markup; errors and empty results are said; the token is asked for first, kept
in the tab's sessionStorage only; ``/docs`` loads its schema with the token and tries a route;
the browser logs no error and no Content-Security-Policy violation. And, without the browser:
the security headers on every answer, and the page's files open while the index's data is not.
The servers are ``indexer serve``'s application on uvicorn, in threads of the test process.

Screenshots (desktop and phone widths) are kept in ``build/test-artifacts/page/``.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.build import build_index
from search import Index
from search.headers import CONTENT_SECURITY_POLICY
from search.page import STATIC_DIR
from search.server import ServerSettings, create_app
from tests.helpers import MULTILINGUAL_DOCS, write_files

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no connections to the outside, which this machine refuses
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "page"
TOKEN = "page-test-token-0123456789abcdef"
GERMAN = "Wie verwandeln Pflanzen Sonnenlicht in Energie?"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadServer:
    """``indexer serve``'s application on uvicorn with its HTTP protocol (the bounded h11 of
    :func:`search.server.serve`), on a free loopback port, in a thread of this process: it
    shares the loaded model, so starting one takes a fraction of a second."""

    def __init__(self, index: Path, model: Any, token: str | None = None):
        import uvicorn

        from search.http_protocol import bounded_protocol

        settings = ServerSettings(token=token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(Index.open(index, model=model), settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            server_header=False,
            http=bounded_protocol(settings.header_timeout_seconds),
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"serve-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Servers:
    open: ThreadServer
    token: ThreadServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory, use_model) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("page")
    build_index(write_files(root / "corpus", MULTILINGUAL_DOCS), root / "idx", model=use_model)
    for name in ("open", "token"):
        shutil.copytree(root / "idx", root / name)
    running = Servers(ThreadServer(root / "open", use_model), ThreadServer(root / "token", use_model, token=TOKEN))
    yield running
    running.open.stop()
    running.token.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh, temporary profile (--user-data-dir) of its own.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()
    print(f"\nscreenshots of the search page: {ARTIFACTS}")


@dataclass
class Console:
    """What the page logged: errors (CSP violations among them) and uncaught exceptions."""

    messages: list[str] = field(default_factory=list)

    def problems(self, *allowed: str) -> list[str]:
        """The messages but those containing one of ``allowed`` (say an expected 401)."""
        return [m for m in self.messages if not any(a in m for a in allowed)]


@pytest.fixture
def tab(browser):
    """``tab(url, viewport=DESKTOP)``: a new page (its own context: no storage shared with
    other tests) at ``url``, with the :class:`Console` that collects its errors."""
    contexts = []

    def open_tab(url: str, viewport: dict[str, int] = DESKTOP):
        context = browser.new_context(viewport=viewport, device_scale_factor=2 if viewport == PHONE else 1)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        console = Console()
        page.on("console", lambda m: m.type in ("error", "warning") and console.messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.messages.append(f"uncaught: {e}"))
        page.goto(url)
        return page, console

    yield open_tab
    for context in contexts:
        context.close()


def _shot(page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def test_a_german_query_finds_the_french_passage(servers, tab):
    from playwright.sync_api import expect

    page, console = tab(servers.open.url + "/")
    expect(page.locator("#summary")).to_contain_text("6 documents")
    expect(page.locator("#token-form")).to_be_hidden()  # no token configured: nothing asked
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")  # focuses the query box
    page.keyboard.type(GERMAN)
    page.keyboard.press("Enter")

    first = page.locator(".hit").first
    expect(first.locator(".open")).to_have_text("fr/photosynthese.txt")
    expect(first.locator(".badge")).to_have_text("FR")
    expect(first.locator(".language")).to_have_text("French")
    expect(first.locator(".passage")).to_contain_text("La photosynthèse permet aux plantes")
    assert float(first.locator(".score-value").inner_text()) > 0.3
    expect(page.locator("#status")).to_contain_text("6 passages")
    assert "q=Wie+verwandeln" in page.url  # the query (never the token) is in the address
    _shot(page, "results-desktop", full_page=True)

    # Keyboard: ↓ from the box to the results, Enter opens the document, Escape closes it.
    page.locator("#q").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.textContent") == "fr/photosynthese.txt"
    page.keyboard.press("Enter")
    dialog = page.locator("#document")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#document-text")).to_contain_text("libèrent de l'oxygène")
    expect(dialog.locator("#document-fields")).to_contain_text("fr/photosynthese.txt")
    _shot(page, "document-desktop")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.textContent") == "fr/photosynthese.txt"

    # Readable on a phone: nothing wider than the screen.
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone, phone_console = tab(page.url, PHONE)  # the address restores the search
    expect(phone.locator(".hit").first.locator(".open")).to_have_text("fr/photosynthese.txt")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(phone, "results-phone")
    assert console.problems() == [] and phone_console.problems() == []


def test_passages_are_shown_as_text_and_problems_are_said(servers, tab):
    from playwright.sync_api import expect

    hostile = 'Beware <img src=x onerror="window.__xss=1"> and <script>window.__xss=2</script> in notes'
    added = httpx.post(
        servers.open.url + "/documents",
        json={"documents": [{"id": "xss/1", "text": hostile, "source": "<b>bold</b>.txt"}]},
        timeout=60,
    )
    assert added.status_code == 200, added.text
    try:
        page, console = tab(servers.open.url + "/?q=onerror&mode=lexical")  # a search from the address
        first = page.locator(".hit").first
        expect(first.locator(".passage")).to_contain_text('<img src=x onerror="window.__xss=1">')
        expect(first.locator(".open")).to_have_text("<b>bold</b>.txt")
        assert page.locator("#results img, #results script, #results b").count() == 0
        assert page.locator("#results mark").all_inner_texts() == ["onerror"]
        first.locator(".open").click()
        expect(page.locator("#document-text")).to_contain_text("<script>window.__xss=2</script>")
        page.keyboard.press("Escape")
        assert page.evaluate("window.__xss") is None

        page.fill("#q", "zebrafinch")
        page.press("#q", "Enter")
        expect(page.locator("#status")).to_contain_text("No passages match “zebrafinch”")
        expect(page.locator(".hit")).to_have_count(0)

        page.fill("#q", '"Vulkan')  # a lexical query with an unbalanced quote: 400 with the reason
        page.press("#q", "Enter")
        expect(page.locator("#problem")).to_be_visible()
        expect(page.locator("#problem")).to_contain_text("unbalanced")
        _shot(page, "problem-desktop")
        assert console.problems("status of 400") == []
    finally:
        httpx.delete(servers.open.url + "/documents/xss/1", timeout=60)


def test_with_a_token_the_page_asks_for_it_first_then_searches(servers, tab):
    from playwright.sync_api import expect

    page, console = tab(servers.token.url + "/")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#search")).to_be_hidden()
    expect(page.locator("#summary")).to_be_empty()  # nothing of the index without the token
    _shot(page, "token-desktop")

    page.fill("#token", "not-the-token-at-all")
    page.press("#token", "Enter")
    expect(page.locator("#token-error")).to_contain_text("refused")
    expect(page.locator("#search")).to_be_hidden()
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    expect(page.locator("#summary")).to_contain_text("6 documents")
    page.fill("#q", GERMAN)
    page.press("#q", "Enter")
    expect(page.locator(".hit").first.locator(".open")).to_have_text("fr/photosynthese.txt")

    storage = page.evaluate(
        "({session: sessionStorage.getItem('babelindex.token'), local: localStorage.length, cookie: document.cookie})"
    )
    assert storage == {"session": TOKEN, "local": 0, "cookie": ""}
    assert TOKEN not in page.url

    # A token refused later (the server restarted with another one): asked again, then answered.
    page.evaluate("sessionStorage.setItem('babelindex.token', 'an-old-token-0123456789')")
    page.press("#q", "Enter")
    expect(page.locator("#token-error")).to_contain_text("refused")
    expect(page.locator(".hit")).to_have_count(0)
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    expect(page.locator(".hit").first.locator(".open")).to_have_text("fr/photosynthese.txt")
    expect(page.locator("#summary")).to_contain_text("6 documents")

    page.reload()  # the same tab: not asked again
    expect(page.locator(".hit").first.locator(".open")).to_have_text("fr/photosynthese.txt")
    expect(page.locator("#token-form")).to_be_hidden()

    page.click("#forget")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator(".hit")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('babelindex.token')") is None
    assert console.problems("status of 401") == []


def test_docs_loads_its_schema_with_the_token_and_tries_a_route(servers, tab):
    from playwright.sync_api import expect

    page, console = tab(servers.token.url + "/docs")
    expect(page.locator("#token-form")).to_be_visible()
    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    expect(page.locator("button.authorize")).to_have_class(re.compile(r"\blocked\b"))  # authorized

    stats = page.locator("#operations-service-stats_stats_get")
    stats.locator(".opblock-summary").click()
    stats.locator("button.try-out__btn").click()
    stats.locator("button.execute").click()
    expect(stats.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    _shot(page, "docs-desktop")

    open_docs, open_console = tab(servers.open.url + "/docs")  # no token: no prompt
    expect(open_docs.locator(".opblock").first).to_be_visible()
    expect(open_docs.locator("#token-form")).to_be_hidden()
    assert console.problems() == [] and open_console.problems() == []


def test_security_headers_on_every_answer_and_only_the_page_files_open(servers):
    static = {"/", "/docs", "/static/page.js", "/static/page.css", "/static/swagger/swagger-ui-bundle.js"}
    expected = {
        **dict.fromkeys(static, 200),
        "/health": 200,
        "/stats": 401,
        "/openapi.json": 401,
        "/search?q=x": 401,
        "/no-such-path": 401,
        "/static/no-such-file.js": 404,
    }
    for path, status in expected.items():
        response = httpx.get(servers.token.url + path, timeout=30)
        assert response.status_code == status, path
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert (headers["x-content-type-options"], headers["x-frame-options"]) == ("nosniff", "DENY"), path
        assert headers["referrer-policy"] == "no-referrer", path
        files = path in static or path.startswith("/static/")
        assert headers["cache-control"] == ("no-cache" if files else "no-store"), path
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    refused = httpx.get(servers.token.url + "/health", headers={"Host": "evil.example"}, timeout=30)
    assert refused.status_code == 400 and refused.headers["x-frame-options"] == "DENY"

    # A path that climbs out of the static files is not a way around the token.
    connection = http.client.HTTPConnection("127.0.0.1", servers.token.port, timeout=30)
    connection.request("GET", "/static/../stats")
    assert connection.getresponse().status == 401
    connection.close()

    # The pages have no inline script and no event handler attributes (the CSP would refuse them).
    for page in ("index.html", "docs.html"):
        html = (STATIC_DIR / page).read_text(encoding="utf-8")
        assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html)), page
        assert not re.search(r"\son[a-z]+\s*=", html) and "style=" not in html, page
    for script in STATIC_DIR.glob("*.js"):
        assert "innerHTML" not in script.read_text(encoding="utf-8"), script.name
