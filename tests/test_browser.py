"""The website works in a real browser: headless Chromium driven by Playwright.

``_build/html`` (``make book``) is served on 127.0.0.1 and every page is opened:

* no console errors, no uncaught JavaScript exceptions, no failed requests;
* no broken images and no broken internal links (pages and #anchors);
* each notebook page's Colab button opens that notebook in the repository of
  ``_config.yml``;
* chapter 1's sliding-window animation steps and plays, a collapsed solution opens on
  click, and the search page finds "Sobel".

Full-page screenshots land in ``test-artifacts/screenshots/`` (git-ignored) for a look.

The site is (re)built with ``jupyter-book build`` first when a page is missing or older
than its source. The only request that may leave 127.0.0.1 is Font Awesome from its
CDN (``ALLOWED_EXTERNAL_HOSTS``); external requests are blocked, so pages behave the
same offline and online, and any other external dependency fails the test. MathJax is
served by the site itself (``sphinx-mathjax-offline``), and the maths of chapter 1 must
be typeset with the network blocked.

Chromium: Playwright's own browser download needs the internet, so the test uses an
installed Chromium (``COURSE_CHROMIUM``, else Debian's ``chromium`` package, else
``chromium-browser``/``google-chrome`` on ``PATH``, else Playwright's download). Without
one the tests are skipped, unless ``COURSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``),
which makes that a failure.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml
from repo_scripts import load_script

REPO_ROOT = Path(__file__).resolve().parent.parent
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
        (REPO_ROOT / "_ext").glob("*.py"))
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
        result = subprocess.run([str(jupyter_book), "build", str(REPO_ROOT), "-n",
                                 "--keep-going"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"jupyter-book build failed:\n{result.stdout[-4000:]}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def site_url(chromium_path):
    build_site()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme not in ("http", "https") or parsed.hostname in ("127.0.0.1",
                                                                         "localhost")


class PageVisit:
    """One page opened in a fresh tab, with everything that went wrong recorded."""

    def __init__(self, browser, url: str):
        self.url = url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
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
})"""


def site_pages() -> list[str]:
    """Every HTML page of the site, relative to ``_build/html``."""
    skip = ("_static/", "_sources/", "_images/")
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if not path.relative_to(SITE).as_posix().startswith(skip))


@pytest.fixture(scope="module")
def crawl(browser, site_url) -> dict[str, dict]:
    """Open every page once; what each one showed and linked to."""
    results = {}
    for name in site_pages():
        visit = PageVisit(browser, site_url + name)
        try:
            facts = visit.page.evaluate(PAGE_FACTS_JS)
            facts.update(
                final_url=visit.page.url,
                broken_images=visit.page.evaluate(BROKEN_IMAGES_JS),
                console_errors=visit.console_errors,
                failed_requests=visit.failed_requests,
                external=visit.external,
            )
        finally:
            visit.close()
        results[name] = facts
    return results


def _problems(crawl: dict, key: str) -> dict[str, list]:
    return {page: facts[key] for page, facts in crawl.items() if facts[key]}


# --------------------------------------------------------------------------------------
# Every page
# --------------------------------------------------------------------------------------

def test_every_toc_page_was_built(crawl):
    missing = [doc for doc in toc_documents() if f"{doc}.html" not in crawl]
    assert not missing, f"pages of _toc.yml missing from _build/html: {missing}"


def test_no_console_errors(crawl):
    assert _problems(crawl, "console_errors") == {}


def test_no_failed_requests(crawl):
    assert _problems(crawl, "failed_requests") == {}


def test_only_allowed_external_requests(crawl):
    hosts = {urlparse(url).hostname for facts in crawl.values()
             for url in facts["external"]}
    assert hosts <= ALLOWED_EXTERNAL_HOSTS, (
        f"pages load resources from {sorted(hosts - ALLOWED_EXTERNAL_HOSTS)}; "
        f"the site should work from 127.0.0.1 (only {ALLOWED_EXTERNAL_HOSTS} allowed)")


def test_no_broken_images(crawl):
    assert _problems(crawl, "broken_images") == {}


def test_no_broken_internal_links(crawl, site_url):
    ids = {page: set(facts["ids"]) for page, facts in crawl.items()}
    broken = {}
    for page, facts in crawl.items():
        for link in facts["links"]:
            if not link.startswith(site_url):
                continue
            target, fragment = urldefrag(link)
            relative = unquote(urlparse(target).path).lstrip("/")
            if relative == "" or relative.endswith("/"):
                relative += "index.html"
            if not (SITE / relative).is_file():
                broken.setdefault(page, []).append(f"{link} (no such file)")
            elif (fragment and relative in ids
                  and unquote(fragment) not in ids[relative]):
                broken.setdefault(page, []).append(f"{link} (no such anchor)")
    assert broken == {}


def expected_colab_url(doc: str) -> str:
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    repository = config["repository"]
    owner_repo = urlparse(repository["url"]).path.strip("/")
    book = repository.get("path_to_book", "").strip("/")
    path = f"{book}/{doc}.ipynb" if book else f"{doc}.ipynb"
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{repository['branch']}/{path}"


def test_colab_buttons_open_the_page_notebook(crawl):
    notebooks = [doc for doc in toc_documents() if source_of(doc).suffix == ".ipynb"]
    assert notebooks
    wrong = {}
    for doc in notebooks:
        found = crawl[f"{doc}.html"]["colab"]
        if found != [expected_colab_url(doc)]:
            wrong[doc] = found
    assert wrong == {}, f"expected e.g. {expected_colab_url(notebooks[0])}"


# --------------------------------------------------------------------------------------
# Interactive parts
# --------------------------------------------------------------------------------------

def test_sliding_window_animation_steps_and_plays(browser, site_url):
    visit = PageVisit(browser, site_url + ANIMATION_PAGE)
    try:
        page = visit.page
        animation = page.locator("div.animation").first
        animation.scroll_into_view_if_needed()
        image, slider = animation.locator("img"), animation.locator("input.anim-slider")
        first_src = image.get_attribute("src")
        assert first_src and first_src.startswith("data:image/png"), "no first frame"
        assert int(slider.get_attribute("max")) >= 2, "the animation has one frame"
        assert slider.input_value() == "0"
        animation.get_by_role("button", name="Next frame").click()
        assert slider.input_value() == "1"
        assert image.get_attribute("src") != first_src, "stepping did not change frame"
        animation.get_by_role("button", name="Play", exact=True).click()
        page.wait_for_function(
            "slider => parseInt(slider.value) >= 3", arg=slider.element_handle(),
            timeout=10_000)
        animation.get_by_role("button", name="Pause").click()
    finally:
        visit.close()


def test_maths_is_typeset_offline(browser, site_url):
    """Every formula of chapter 1 becomes a MathJax element, from the site's own copy
    of MathJax (external requests are blocked)."""
    visit = PageVisit(browser, site_url + ANIMATION_PAGE)
    try:
        page = visit.page
        formulas = page.locator(".math").count()
        assert formulas > 0, "no maths found on chapter 1"
        page.wait_for_function(
            "n => document.querySelectorAll('mjx-container').length >= n",
            arg=formulas, timeout=TIMEOUT_MS)
        sources = page.eval_on_selector_all(
            "script[src*='mathjax']", "scripts => scripts.map(s => s.src)")
        assert sources and all(is_local(src) for src in sources), sources
    finally:
        visit.close()


def test_collapsed_solution_opens_on_click(browser, site_url):
    visit = PageVisit(browser, site_url + ANIMATION_PAGE)
    try:
        solution = visit.page.locator(".solution.dropdown").first
        solution.scroll_into_view_if_needed()
        body = solution.locator(":scope > :not(.admonition-title)").first
        assert body.count() == 1
        assert not body.is_visible(), "the solution is not collapsed"
        solution.locator("button.toggle-button").click()
        body.wait_for(state="visible", timeout=5_000)
    finally:
        visit.close()


def test_search_finds_sobel(browser, site_url):
    visit = PageVisit(browser, site_url + "search.html?q=Sobel")
    try:
        results = visit.page.locator("#search-results ul.search li")
        results.first.wait_for(timeout=TIMEOUT_MS)
        links = results.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert any("chapters/02_classic_kernels.html" in link for link in links), links
    finally:
        visit.close()


def screenshot_pages() -> dict[str, str]:
    pages = dict(SCREENSHOT_PAGES)
    labs = sorted((SITE / "labs").glob("*.html"))
    if labs:
        pages["lab"] = labs[0].relative_to(SITE).as_posix()
    return pages


def test_full_page_screenshots(browser, site_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, page_name in screenshot_pages().items():
        visit = PageVisit(browser, site_url + page_name)
        try:
            target = SCREENSHOTS / f"{name}.png"
            visit.page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 10_000
        finally:
            visit.close()
