"""The figures of every chapter and lab follow the course's figure rules (issue 26).

* Every figure is a high-density PNG shown at its logical size: the picture has twice
  the pixels of the ``width``/``height`` in its output metadata (``utils.viz``'s
  style, applied when a notebook imports ``utils``).
* Every HTML animation is at least ``MIN_FRAME_WIDTH`` pixels wide on screen, with
  frames of twice that many pixels, and its ``<img>`` has alt text.
* Every code cell that draws a figure has alt text in its cell metadata
  (``{"mystnb": {"image": {"alt": "..."}}}``), which MyST-NB puts on the site's
  ``<img>``; on the built site (``_build/html``, skipped when absent) every image of a
  notebook output carries a non-empty ``alt`` and its logical width.
* All notebooks together stay below ``MAX_TOTAL_MB`` (high-density figures cost bytes).

Failures name the notebook and the cell ("Cell N" counts code cells from 0, as nbval).
"""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import nbformat
import pytest
from course_env import REPO_ROOT
from PIL import Image

from utils import interactive

NOTEBOOKS = sorted(REPO_ROOT.glob("chapters/*.ipynb")) + sorted(REPO_ROOT.glob("labs/*.ipynb"))
IDS = [path.relative_to(REPO_ROOT).as_posix() for path in NOTEBOOKS]
SITE = REPO_ROOT / "_build" / "html"
MAX_TOTAL_MB = 40
IMAGE_MIMES = ("image/png", "image/jpeg")
_FRAME = re.compile(r'frames\[\d+\] = "data:image/png;base64,([^"]*)"')
_ANIMATION_IMG = re.compile(r'<img id="_anim_img[^"]*"[^>]*>')


def _code_cells(path):
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _html(output) -> str:
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def test_all_notebooks_together_stay_below_the_size_limit():
    sizes = {path.relative_to(REPO_ROOT).as_posix(): path.stat().st_size
             for path in NOTEBOOKS}
    total = sum(sizes.values()) / 2**20
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    assert total <= MAX_TOTAL_MB, (
        f"the notebooks hold {total:.1f} MB together, more than {MAX_TOTAL_MB} MB; "
        "largest: " + ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in largest))


def picture_problems(cell) -> list[str]:
    """What breaks the high-density rule in one cell's picture outputs."""
    problems = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" not in data:
            continue
        logical = output.get("metadata", {}).get("image/png", {})
        width, height = logical.get("width"), logical.get("height")
        picture = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
        if width is None or height is None:
            problems.append(f"a {picture.size[0]}×{picture.size[1]} PNG without logical "
                            "width/height: not high-density (re-execute the notebook)")
        elif abs(picture.size[0] - 2 * width) > 1 or abs(picture.size[1] - 2 * height) > 1:
            problems.append(f"a {picture.size[0]}×{picture.size[1]} PNG shown at "
                            f"{width}×{height}: expected twice the pixels")
    return problems


def animation_problems(cell) -> list[str]:
    """What breaks the legibility rules in one cell's HTML animations."""
    problems = []
    for output in cell.get("outputs", []):
        html = _html(output)
        tag = _ANIMATION_IMG.search(html)
        if tag is None:
            continue
        width = re.search(r'width="(\d+)"', tag.group())
        if not re.search(r'alt="[^"]*\S[^"]*"', tag.group()):
            problems.append("an animation without alt text")
        if width is None or int(width.group(1)) < interactive.MIN_FRAME_WIDTH:
            problems.append(f"an animation narrower than {interactive.MIN_FRAME_WIDTH} px "
                            f"on screen ({tag.group()[:120]}…)")
            continue
        for data in _FRAME.findall(html)[:1]:
            payload = data.replace("\\\n", "").replace("\\n", "").replace("\n", "")
            frame = Image.open(io.BytesIO(base64.b64decode(payload)))
            if frame.size[0] != 2 * int(width.group(1)):
                problems.append(f"animation frames {frame.size[0]} px wide, shown at "
                                f"{width.group(1)} px: expected twice the pixels")
    return problems


def alt_text_problems(cell) -> list[str]:
    has_picture = any(mime in output.get("data", {})
                      for output in cell.get("outputs", []) for mime in IMAGE_MIMES)
    alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
    if has_picture and not (isinstance(alt, str) and alt.strip()):
        return ['a figure without alt text (cell metadata {"mystnb": {"image": '
                '{"alt": "..."}}})']
    return []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_figures_are_high_density_legible_and_described(path):
    name = path.relative_to(REPO_ROOT).as_posix()
    problems = [f"{name}::Cell {number}: {problem}"
                for number, cell in enumerate(_code_cells(path))
                for check in (picture_problems, animation_problems, alt_text_problems)
                for problem in check(cell)]
    assert not problems, "figures that break the figure rules:\n" + "\n".join(problems)


def _cell(outputs, alt=None):
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    if alt is not None:
        cell.metadata["mystnb"] = {"image": {"alt": alt}}
    return cell


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_checks_catch_low_density_missing_alt_and_small_animations():
    retina = {"output_type": "display_data", "data": {"image/png": _png(200, 100)},
              "metadata": {"image/png": {"width": 100, "height": 50}}}
    plain = {"output_type": "display_data", "data": {"image/png": _png(100, 50)},
             "metadata": {}}
    assert picture_problems(_cell([retina])) == []
    assert "not high-density" in picture_problems(_cell([plain]))[0]
    stretched = dict(retina, metadata={"image/png": {"width": 150, "height": 50}})
    assert "twice the pixels" in picture_problems(_cell([stretched]))[0]
    assert alt_text_problems(_cell([retina], alt="A white square.")) == []
    assert "alt text" in alt_text_problems(_cell([retina], alt="  "))[0]
    frame = f'frames[0] = "data:image/png;base64,{_png(1200, 100)}"'
    small = {"output_type": "display_data", "metadata": {}, "data": {
        "text/html": f'<img id="_anim_imgX" alt="a" width="300">{frame}'}}
    assert "narrower" in animation_problems(_cell([small]))[0]
    good = {"output_type": "display_data", "metadata": {}, "data": {
        "text/html": f'<img id="_anim_imgX" alt="a" width="600">{frame}'}}
    assert animation_problems(_cell([good])) == []
    silent = {"output_type": "display_data", "metadata": {}, "data": {
        "text/html": f'<img id="_anim_imgX" width="600">{frame}'}}
    assert "alt text" in animation_problems(_cell([silent]))[0]


class _OutputImages(HTMLParser):
    """The ``<img>`` tags inside a page's notebook outputs (``div.cell_output``)."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # > 0 inside a cell_output div
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "div":
            classes = (attributes.get("class") or "").split()
            if self.depth or "cell_output" in classes:
                self.depth += 1
        elif tag == "img" and self.depth:
            self.images.append(attributes)

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1


def site_images_without_alt(html: str) -> list[str]:
    parser = _OutputImages()
    parser.feed(html)
    return [str(image.get("src", ""))[:80] for image in parser.images
            if not (image.get("alt") or "").strip()]


def site_images_without_logical_size(html: str) -> list[str]:
    """Output images shown at their pixel size: a high-density PNG would appear twice
    as large (MyST-NB writes the logical size as ``style="width: …px"``)."""
    parser = _OutputImages()
    parser.feed(html)
    return [str(image.get("src", ""))[:80] for image in parser.images
            if "width" not in (image.get("style") or "") and not image.get("width")]


def test_the_site_check_reads_output_images():
    page = ('<div class="cell_output docutils container"><div><img src="a.png" '
            'alt="A cat." style="width: 300px;"><img src="b.png"></div></div>'
            '<img src="logo.png">')
    assert site_images_without_alt(page) == ["b.png"]
    assert site_images_without_logical_size(page) == ["b.png"]


SITE_PAGES = sorted(SITE.glob("chapters/*.html")) + sorted(SITE.glob("labs/*.html"))


@pytest.mark.skipif(not SITE_PAGES, reason="the site is not built (_build/html)")
@pytest.mark.parametrize("page", SITE_PAGES,
                         ids=[page.relative_to(SITE).as_posix() for page in SITE_PAGES])
def test_site_output_images_have_alt_text_and_logical_size(page):
    html = page.read_text(encoding="utf-8")
    missing = site_images_without_alt(html)
    assert not missing, (f"{page.relative_to(SITE)}: {len(missing)} output image(s) "
                         f"without alt text: {missing[:5]}")
    unsized = site_images_without_logical_size(html)
    assert not unsized, (f"{page.relative_to(SITE)}: {len(unsized)} output image(s) "
                         f"without their logical width (shown at 2x): {unsized[:5]}")


@pytest.mark.skipif(not SITE_PAGES, reason="the site is not built (_build/html)")
def test_the_site_check_sees_the_notebook_figures():
    """The alt check above must not pass because it finds no image at all."""
    parser = _OutputImages()
    for page in SITE_PAGES:
        parser.feed(page.read_text(encoding="utf-8"))
    assert len(parser.images) >= 50, f"only {len(parser.images)} output images found"


def _render(dpi: int, shift: float = 0.0) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.imshow([[0.0, 1.0], [1.0, 0.0]], cmap="gray")
    ax.set_title("title", x=0.5 + shift)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def test_the_image_comparison_works_at_the_high_density_resolution():
    """nbval's picture check (tests/nbval_images.py, RMS ≤ 1.0) at 2 × 100 dpi: the
    same figure compares equal, a moved title fails, a 100-dpi copy is a size change."""
    from nbval_images import DEFAULT_TOLERANCE, image_difference

    retina = _render(200)
    assert image_difference(retina, _render(200)) == ("rms", 0.0)
    kind, rms = image_difference(retina, _render(200, shift=0.2))
    assert kind == "rms" and rms > DEFAULT_TOLERANCE
    assert image_difference(_render(100), retina)[0] == "size"
