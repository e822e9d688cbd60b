"""The website works in a real browser: headless Chromium driven by Playwright.

``_build/html`` (``make book``) is served on 127.0.0.1 and every page is opened:

* no console errors, no uncaught JavaScript exceptions, no failed requests;
* no broken images and no broken internal links (pages and #anchors);
* each notebook page's Colab button opens its plain-Markdown copy ``colab/<page>.ipynb``
  (``scripts/make_colab.py``) in the repository of ``_config.yml``, and its .ipynb
  download button hands out the same copy;
* chapter 1's sliding-window animation steps and plays, a collapsed solution opens on
  click, and the search page finds "Sobel".

Every page is opened from disk too (``file://``, as a reader who double-clicks
``_build/html/index.html``): no console errors, failed requests or broken images.

JupyterLab (``make lab``, with ``jupyterlab-myst``) is started on a free port with a
token, on a copy of a chapter: Run All finishes without an error, and the chapter's
exercises render as exercises with their solutions collapsed (no MyST source shows).

Full-page screenshots land in ``test-artifacts/screenshots/`` (git-ignored) for a look.

MathJax is served by the site itself (``sphinx-mathjax-offline``), and the maths of
chapter 1 must be typeset with the network blocked. How the site is built, served and
opened (and which Chromium is used) is in ``tests/browser_site.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
import yaml
from browser_site import (
    ALLOWED_EXTERNAL_HOSTS,
    ANIMATION_PAGE,
    BROKEN_IMAGES_JS,
    PAGE_FACTS_JS,
    REPO_ROOT,
    SCREENSHOT_PAGES,
    SCREENSHOTS,
    SITE,
    TIMEOUT_MS,
    PageVisit,
    is_local,
    site_file_url,
    site_pages,
    source_of,
    toc_documents,
)


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
    """Colab opening ``colab/<doc>.ipynb`` (the plain-Markdown copy) of the repository
    and branch of ``_config.yml``."""
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    repository = config["repository"]
    owner_repo = urlparse(repository["url"]).path.strip("/")
    book = repository.get("path_to_book", "").strip("/")
    path = f"{book}/colab/{doc}.ipynb" if book else f"colab/{doc}.ipynb"
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{repository['branch']}/{path}"


def notebook_docs() -> list[str]:
    return [doc for doc in toc_documents() if source_of(doc).suffix == ".ipynb"]


def test_colab_buttons_open_the_plain_markdown_copy(crawl):
    notebooks = notebook_docs()
    assert notebooks
    wrong = {}
    for doc in notebooks:
        found = crawl.get(f"{doc}.html", {}).get("colab")
        if found != [expected_colab_url(doc)]:
            wrong[doc] = found
        if not (REPO_ROOT / "colab" / f"{doc}.ipynb").is_file():
            wrong[doc] = "colab/{doc}.ipynb is missing (run `make colab`)"
    assert wrong == {}, f"expected e.g. {expected_colab_url(notebooks[0])}"


def test_download_buttons_hand_out_the_plain_markdown_copy(crawl, site_url):
    wrong = {}
    for doc in notebook_docs():
        found = crawl.get(f"{doc}.html", {}).get("downloads")
        expected = f"{site_url}colab/{doc}.ipynb"
        if found != [expected] or not (SITE / "colab" / f"{doc}.ipynb").is_file():
            wrong[doc] = found
    assert wrong == {}


# --------------------------------------------------------------------------------------
# The site opened from disk (file://)
# --------------------------------------------------------------------------------------

def test_every_page_works_from_disk(browser, site_url):
    """As a reader who opens _build/html/index.html: no console errors (e.g. a canvas
    "tainted by cross-origin data"), no failed requests, no broken images."""
    problems = {}
    for name in site_pages():
        visit = PageVisit(browser, site_file_url() + name)
        try:
            found = (visit.console_errors + visit.failed_requests
                     + visit.page.evaluate(BROKEN_IMAGES_JS))
        finally:
            visit.close()
        if found:
            problems[name] = found
    assert problems == {}


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


# --------------------------------------------------------------------------------------
# JupyterLab with jupyterlab-myst (make lab)
# --------------------------------------------------------------------------------------

LAB_CHAPTER = "chapters/03_convolution_types.ipynb"
# A fresh user's JupyterLab, made deterministic: every cell rendered (no windowing), no
# autosave (the copy is thrown away anyway), no news or update checks (offline).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}
LAB_RUN_TIMEOUT_MS = 300_000
RAW_MYST_TEXT = ("{exercise}", "{solution}", "{term}", "{doc}", "{cite}", "{ref}",
                 ":label:", ":class:")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, chromium_path):
    """JupyterLab on 127.0.0.1 (free port, random token) serving a copy of
    ``LAB_CHAPTER``, with the settings a test needs and the course's .venv."""
    if importlib.util.find_spec("jupyterlab_myst") is None:
        pytest.fail("jupyterlab-myst is not installed: `pip install -r requirements.txt "
                    "-c requirements-lock.txt` (make venv)", pytrace=False)
    root = tmp_path_factory.mktemp("jupyterlab")
    notebooks = root / "notebooks"
    (notebooks / LAB_CHAPTER).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / LAB_CHAPTER, notebooks / LAB_CHAPTER)
    for plugin, values in LAB_SETTINGS.items():
        path = root / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"))
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={notebooks}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = root / "jupyterlab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, cwd=notebooks, stdout=log,
                                  stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + log_path.read_text()[-3000:], pytrace=False)
                time.sleep(0.5)
        yield {"url": url, "token": token, "log": log_path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def source_count(directive: str) -> int:
    cells = json.loads((REPO_ROOT / LAB_CHAPTER).read_text())["cells"]
    return sum("".join(cell["source"]).count(f"{{{directive}}}")
               for cell in cells if cell["cell_type"] == "markdown")


def test_jupyterlab_runs_a_chapter_and_renders_its_exercises(browser, jupyterlab,
                                                             chromium_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    exercises, solutions = source_count("exercise"), source_count("solution")
    assert exercises >= 1 and solutions >= 1, f"{LAB_CHAPTER} has no exercise"
    # A Chromium of its own: after the site's tests the shared one holds many pages, and
    # in a full run JupyterLab's Run All then never finished (2 cores).
    own_browser = browser.browser_type.launch(executable_path=chromium_path,
                                              headless=True)
    context = own_browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", lambda route: route.continue_() if is_local(route.request.url)
                  else route.abort("blockedbyclient"))
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{jupyterlab['url']}lab/tree/{LAB_CHAPTER}?token={jupyterlab['token']}")
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-MarkdownCell aside.myst-exercise').length"
            " >= n", arg=exercises, timeout=120_000)

        # Run All from empty outputs: every code cell gets its number, none an error
        page.evaluate("() => window.jupyterapp.commands.execute("
                      "'notebook:clear-all-cell-outputs')")
        page.wait_for_function("""() => [...document.querySelectorAll(
            '.jp-CodeCell .jp-InputPrompt')].every(p => p.textContent.trim() === '[ ]:')""")
        # Run All once the kernel is idle; every code cell has run when the notebook's
        # model has an execution count for each (not the rendered prompts)
        page.wait_for_function("""() => {
            const notebook = window.jupyterapp.shell.currentWidget;
            const kernel = notebook && notebook.sessionContext
                && notebook.sessionContext.session && notebook.sessionContext.session.kernel;
            return !!kernel && kernel.status === 'idle'; }""", timeout=120_000)
        all_ran = """() => {
            const notebook = window.jupyterapp.shell.currentWidget;
            if (!notebook || !notebook.content || !notebook.content.widgets) return false;
            const code = notebook.content.widgets.filter(c => c.model.type === 'code');
            return code.length > 0
                && code.every(c => c.model.executionCount !== null); }"""
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function(all_ran, timeout=LAB_RUN_TIMEOUT_MS // 2)
        except PlaywrightTimeoutError:  # a Run All lost while the kernel connected
            page.evaluate("() => window.jupyterapp.commands.execute("
                          "'notebook:run-all-cells')")
            page.wait_for_function(all_ran, timeout=LAB_RUN_TIMEOUT_MS // 2)
        errors = page.evaluate("""() => [...document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => e.textContent).filter(t => t.includes('Traceback')
                                               || t.includes('Error'))
            .map(t => t.slice(0, 500))""")
        assert errors == [], f"Run All in JupyterLab raised: {errors}"

        # Exercises render as exercises; each solution is a closed <details>
        facts = page.evaluate("""() => ({
            exercises: document.querySelectorAll(
                '.jp-MarkdownCell aside.myst-exercise').length,
            solutions: [...document.querySelectorAll(
                '.jp-MarkdownCell details.myst-exercise')].map(d => ({
                    open: d.open, summary: d.querySelector('summary').innerText})),
            text: [...document.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown,'
                                                 + ' .jp-MarkdownCell .myst')]
                  .map(e => e.innerText).join('\\n'),
        })""")
        assert facts["exercises"] == exercises
        assert len(facts["solutions"]) == solutions
        assert all(not s["open"] and s["summary"].startswith("Solution")
                   for s in facts["solutions"]), facts["solutions"]
        raw = [token for token in RAW_MYST_TEXT if token in facts["text"]]
        assert raw == [], f"JupyterLab shows MyST source: {raw}"

        solution = page.locator(".jp-MarkdownCell details.myst-exercise").first
        solution.locator("summary").click()
        assert solution.evaluate("d => d.open")
        solution.locator(".details-body, .myst-exercise-body").first.wait_for(
            state="visible")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab.png"))
    finally:
        context.close()
        own_browser.close()
