"""The built website served on 127.0.0.1 and opened in headless Chromium: helpers
shared by the browser tests (``test_browser.py``, ``test_explorer.py``,
``test_accessibility.py``); their fixtures are in ``tests/conftest.py``.

The site is (re)built with ``jupyter-book build`` first when a page is missing or older
than its source, or a book-wide input (``_config.yml``, ``_static/``, ``_ext/``…) is
newer. The only request that may leave 127.0.0.1 is Font Awesome from its CDN
(``ALLOWED_EXTERNAL_HOSTS``); external requests are blocked, so pages behave the same
offline and online.

Chromium: Playwright's own browser download needs the internet, so the tests use an
installed Chromium (``COURSE_CHROMIUM``, else Debian's ``chromium`` package, else
``chromium-browser``/``google-chrome`` on ``PATH``, else Playwright's download). Without
one the tests are skipped, unless ``COURSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
which makes that a failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from course_env import REPO_ROOT
from repo_scripts import load_script

SITE = REPO_ROOT / "_build" / "html"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
REQUIRE_ENV = "COURSE_REQUIRE_BROWSER"
CHROMIUM_ENV = "COURSE_CHROMIUM"
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",  # Debian's binary (/usr/bin/chromium is a wrapper)
    "/usr/lib/chromium-browser/chromium-browser",
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable")
ALLOWED_EXTERNAL_HOSTS = {
    # Font Awesome 4 for the buttons of matplotlib's HTML animations (chapters 1-2):
    # needed in JupyterLab and Colab; on the website the theme's own Font Awesome
    # draws the same icons, so the page works when it is blocked.
    "maxcdn.bootstrapcdn.com",
}
BUILD_INPUTS = ("_config.yml", "_toc.yml", "references.bib", "execution_times.json")
SCREENSHOT_PAGES = {
    "intro": "intro.html",
    "chapter01": "chapters/01_convolution_operation.html",
    "chapter02": "chapters/02_classic_kernels.html",
}
ANIMATION_PAGE = "chapters/01_convolution_operation.html"
TIMEOUT_MS = 30_000
FILE_IDLE_MS = 3_000


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def _missing(reason: str):
    """Skip, or fail when the browser test is required (CI)."""
    if browser_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}. Install Chromium "
                    f"(`apt-get install chromium`, as .ci/run does) or set "
                    f"{CHROMIUM_ENV} to a Chromium binary.", pytrace=False)
    pytest.skip(f"{reason} (install Chromium, or set {CHROMIUM_ENV}, to run it)")


def find_chromium() -> str | None:
    """An installed Chromium binary, or ``None``."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return named if Path(named).is_file() else None
    for path in CHROMIUM_CANDIDATES:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------------------
# The site: built when stale, served on 127.0.0.1
# --------------------------------------------------------------------------------------

def toc_documents() -> list[str]:
    """Documents of ``_toc.yml`` (without suffix) that exist as .md or .ipynb files."""
    return [doc for doc in load_script("scripts/execute_notebooks.py").toc_documents()
            if source_of(doc) is not None]


def source_of(doc: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (REPO_ROOT / f"{doc}{suffix}").exists():
            return REPO_ROOT / f"{doc}{suffix}"
    return None


def stale_pages() -> list[str]:
    """Pages missing from ``_build/html`` or older than their source; all pages when a
    book-wide input (``_config.yml``, ``_toc.yml``, …) is newer than every page."""
    docs = toc_documents()
    pages = {doc: SITE / f"{doc}.html" for doc in docs}
    stale = [doc for doc, page in pages.items() if not page.exists()
             or page.stat().st_mtime < source_of(doc).stat().st_mtime]
    if stale or not pages:
        return stale or ["(no pages)"]
    newest_page = max(page.stat().st_mtime for page in pages.values())
    inputs = [REPO_ROOT / name for name in BUILD_INPUTS] + list(
        (REPO_ROOT / "_ext").glob("*.py")) + [
        path for path in (REPO_ROOT / "_static").rglob("*") if path.is_file()]
    if any(path.exists() and path.stat().st_mtime > newest_page for path in inputs):
        return docs
    return []


def build_site() -> None:
    """``jupyter-book build`` (as ``make book``, without -W: warnings are make book's
    business), under a lock, when a page is stale."""
    SITE.parent.mkdir(parents=True, exist_ok=True)
    with open(SITE.parent / ".browser-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stale_pages():
            return
        jupyter_book = Path(sys.executable).with_name("jupyter-book")
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "COURSE_BLOCK_NETWORK")}
        # --all: Sphinx copies _static only when it rebuilds pages
        result = subprocess.run([str(jupyter_book), "build", str(REPO_ROOT), "--all",
                                 "-n", "--keep-going"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"jupyter-book build failed:\n{result.stdout[-4000:]}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme not in ("http", "https") or parsed.hostname in ("127.0.0.1",
                                                                         "localhost")


THEME_MODES = ("light", "dark")


class PageVisit:
    """One page opened in a fresh tab, with everything that went wrong recorded.

    ``mode`` is the theme's colour mode ("light" or "dark"), stored where
    pydata-sphinx-theme reads it before the page is drawn.
    """

    def __init__(self, browser, url: str, mode: str = "light"):
        if mode not in THEME_MODES:
            raise ValueError(f"mode must be one of {THEME_MODES}, got {mode!r}")
        self.url = url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(
            f"localStorage.setItem('mode', '{mode}');"
            f"localStorage.setItem('theme', '{mode}');")
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.external: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console_errors.append(
            f"uncaught exception: {error}"))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)
        self.page.goto(url, wait_until="load")
        if url.startswith("file:"):
            from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

            # Chromium does not always report "networkidle" for pages read from disk
            # (nothing is pending); give late scripts (MathJax) a moment instead.
            with contextlib.suppress(PlaywrightTimeoutError):
                self.page.wait_for_load_state("networkidle", timeout=FILE_IDLE_MS)
        else:
            self.page.wait_for_load_state("networkidle")

    def _route(self, route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort("blockedbyclient")

    def _console(self, message) -> None:
        if message.type != "error":
            return
        source = message.location.get("url", "") if message.location else ""
        if "Failed to load resource" in message.text and not is_local(source):
            return  # an external request this test blocked on purpose
        self.console_errors.append(f"{message.text} ({source})")

    def _request_failed(self, request) -> None:
        if is_local(request.url):
            self.failed_requests.append(f"{request.url}: {request.failure}")

    def _response(self, response) -> None:
        if is_local(response.url) and response.status >= 400:
            self.failed_requests.append(f"{response.url}: HTTP {response.status}")

    def close(self) -> None:
        self.context.close()


BROKEN_IMAGES_JS = """async () => {
    const images = Array.from(document.images).filter(img => img.getAttribute("src"));
    images.forEach(img => { img.loading = "eager"; });
    await Promise.all(images.filter(img => !img.complete).map(img => new Promise(
        done => { img.addEventListener("load", done);
                  img.addEventListener("error", done);
                  setTimeout(done, 10000); })));
    return images.filter(img => !img.complete || img.naturalWidth === 0)
                 .map(img => img.src.slice(0, 120));
}"""
PAGE_FACTS_JS = """() => ({
    links: Array.from(document.querySelectorAll("a[href]"), a => a.href),
    ids: Array.from(document.querySelectorAll("[id]"), e => e.id).concat(
         Array.from(document.querySelectorAll("a[name]"), a => a.name)),
    colab: Array.from(document.querySelectorAll("a[href*='colab.research.google.com']"),
                      a => a.href),
    downloads: Array.from(document.querySelectorAll("a.btn-download-source-button"),
                          a => a.href).filter(href => href.endsWith(".ipynb")),
})"""


def site_file_url() -> str:
    """The built site opened from disk, as a reader who double-clicks index.html."""
    return SITE.as_uri() + "/"


def site_pages() -> list[str]:
    """Every HTML page of the site, relative to ``_build/html``."""
    skip = ("_static/", "_sources/", "_images/")
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if not path.relative_to(SITE).as_posix().startswith(skip))


