"""Every page of the website in light and dark mode: axe-core finds no violation of
impact "serious" or "critical", and in dark mode every figure keeps a light backdrop,
so matplotlib's black text and axes stay readable.

axe-core is the copy bundled in the PyPI package ``axe-playwright-python`` (no CDN).
Each page is loaded once, checked in the theme's light mode, switched to dark mode the
way the theme's own button does it (the ``data-theme`` attribute of ``<html>``), and
checked again.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from browser_site import PageVisit, site_pages
from PIL import Image

BLOCKING_IMPACTS = ("serious", "critical")
# WCAG 2.1 AA contrast for text: black (matplotlib's text colour) on the backdrop
# must reach 4.5, i.e. the backdrop's relative luminance must be at least 0.175.
MIN_TEXT_CONTRAST = 4.5
# Figures of notebook outputs (matplotlib PNGs, animation frames). The explorer's
# canvases are opaque pictures of data, drawn with their own colours.
FIGURES = ".bd-content .cell_output img"
FIGURES_JS = """selector => Array.from(document.querySelectorAll(selector))
    .filter(el => el.offsetWidth > 0 && el.offsetHeight > 0).length"""
# Padding plus border of an element, in CSS pixels (top, right, bottom, left): the
# theme frames figures with a padding; the figure's own margin lies inside it.
INSETS_JS = """el => { const s = getComputedStyle(el);
    return ["Top", "Right", "Bottom", "Left"].map(side =>
        parseFloat(s["padding" + side])
        + parseFloat(s["border" + side + "Width"])); }"""
SET_MODE_JS = """mode => { document.documentElement.dataset.mode = mode;
                         document.documentElement.dataset.theme = mode; }"""


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB colours (values 0-255, last axis RGB)."""
    c = rgb[..., :3].astype(np.float64) / 255
    linear = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def black_text_contrast(screenshot: np.ndarray, frame: int = 2) -> float:
    """Contrast ratio of black text on a rendered figure's backdrop, estimated from the
    median luminance of its outer ``frame`` pixels (the figure's own margin: where a
    transparent figure shows the page behind it)."""
    border = np.concatenate([screenshot[:frame].reshape(-1, screenshot.shape[-1]),
                             screenshot[-frame:].reshape(-1, screenshot.shape[-1]),
                             screenshot[:, :frame].reshape(-1, screenshot.shape[-1]),
                             screenshot[:, -frame:].reshape(-1, screenshot.shape[-1])])
    background = float(np.median(relative_luminance(border)))
    return (background + 0.05) / 0.05


def test_black_text_contrast_tells_dark_from_light_backdrops():
    # The measure the dark-mode test relies on: a transparent figure shown on the dark
    # theme's background (#14181e) fails, one on a white backdrop passes.
    figure = np.zeros((40, 60, 3), dtype=np.uint8)
    figure[10:30, 10:50] = 40  # dark ink in the middle
    on_dark = figure + np.array([20, 24, 30], dtype=np.uint8)
    on_dark[10:30, 10:50] = 0
    on_white = np.full_like(figure, 255)
    on_white[10:30, 10:50] = 0
    assert black_text_contrast(on_dark) < 1.5
    assert black_text_contrast(on_white) == pytest.approx(21.0)


def _violations(axe, page) -> list[str]:
    results = axe.run(page).response
    return [f"{v['id']} ({v['impact']}): {len(v['nodes'])}× e.g. "
            f"{v['nodes'][0]['html'][:120]}"
            for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]


@pytest.fixture(scope="module")
def audit(browser, site_url) -> dict[str, dict]:
    """Open every page once: axe-core in light and in dark mode, and the dark-mode
    contrast of black text on each figure."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    results = {}
    for name in site_pages():
        visit = PageVisit(browser, site_url + name, mode="light")
        try:
            page = visit.page
            light = _violations(axe, page)
            page.evaluate(SET_MODE_JS, "dark")
            # the theme fades colours in; measure once the transitions have ended
            page.wait_for_function(
                "() => document.getAnimations().every(a => a.playState !== 'running')")
            dark = _violations(axe, page)
            contrasts = []
            for index in range(page.evaluate(FIGURES_JS, FIGURES)):
                figure = page.locator(FIGURES).locator("visible=true").nth(index)
                top, right, bottom, left = figure.evaluate(INSETS_JS)
                shot = np.asarray(Image.open(io.BytesIO(figure.screenshot())).convert(
                    "RGB"))
                picture = shot[round(top):shot.shape[0] - round(bottom),
                               round(left):shot.shape[1] - round(right)]
                contrasts.append(black_text_contrast(picture))
            results[name] = {"light": light, "dark": dark, "contrasts": contrasts,
                             "mode": page.evaluate(
                                 "document.documentElement.dataset.theme")}
        finally:
            visit.close()
    return results


def test_pages_were_audited_in_dark_mode(audit):
    assert len(audit) >= 15
    assert {facts["mode"] for facts in audit.values()} == {"dark"}
    assert sum(len(facts["contrasts"]) for facts in audit.values()) >= 50


def test_no_serious_accessibility_violations_in_light_mode(audit):
    found = {page: facts["light"] for page, facts in audit.items() if facts["light"]}
    assert found == {}


def test_no_serious_accessibility_violations_in_dark_mode(audit):
    found = {page: facts["dark"] for page, facts in audit.items() if facts["dark"]}
    assert found == {}


def test_figures_stay_readable_in_dark_mode(audit):
    unreadable = {page: [round(c, 1) for c in facts["contrasts"]
                         if c < MIN_TEXT_CONTRAST]
                  for page, facts in audit.items()}
    assert {page: c for page, c in unreadable.items() if c} == {}
