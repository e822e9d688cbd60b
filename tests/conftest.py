"""Fixtures of the browser tests: Chromium, the website served on 127.0.0.1, and one
browser for the whole session (helpers in ``tests/browser_site.py``)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from browser_site import SITE, _missing, _QuietHandler, build_site, find_chromium


@pytest.fixture(scope="session")
def chromium_path() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright is not installed")
    path = find_chromium()
    if path is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:  # Playwright's own download, if there is one
            own = p.chromium.executable_path
        path = own if own and Path(own).is_file() else None
    if path is None:
        _missing("no Chromium binary was found")
    return path


@pytest.fixture(scope="session")
def site_url(chromium_path):
    build_site()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()
