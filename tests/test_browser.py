"""The website works in a real browser: headless Chromium driven by Playwright.

``_build/html`` (``make book``) is served on 127.0.0.1 and every page is opened:

* no console errors, no uncaught JavaScript exceptions, no failed requests;
* no broken images and no broken internal links (pages and #anchors);
* each notebook page's Colab button opens that notebook in the repository of
  ``_config.yml``;
* chapter 1's sliding-window animation steps and plays, a collapsed solution opens on
  click, and the search page finds "Sobel".

Full-page screenshots land in ``test-artifacts/screenshots/`` (git-ignored) for a look.

MathJax is served by the site itself (``sphinx-mathjax-offline``), and the maths of
chapter 1 must be typeset with the network blocked. How the site is built, served and
opened (and which Chromium is used) is in ``tests/browser_site.py``.
"""

from __future__ import annotations

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
