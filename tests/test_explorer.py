"""The in-browser convolution explorer (``explorer.md``, ``_static/explorer/``) in
headless Chromium: its arithmetic against ``F.conv2d``, its kernels against
``utils.kernels``, and its controls driven as a reader would (a preset, the stride, a
file upload, the keyboard, a click). Every browser test runs twice: on the site served
over http and on the site opened from disk (``file://``), where a page may not read
back an image file it drew on a canvas; the sample images are therefore embedded
(``samples.js``). The page's "Things to try" are checked against what it shows, and
input and output are drawn at the same pixel scale. Its update time is measured by
``benchmarks/explorer_bench.py``, not here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_site import REPO_ROOT, PageVisit, site_file_url
from explorer_cases import CASES_FILE, make_cases
from PIL import Image

from utils import kernels

EXPLORER_PAGE = "explorer.html"
TOLERANCE = 1e-4


def reference(case: dict) -> np.ndarray:
    """F.conv2d in float64 (after F.pad for reflect padding)."""
    image = torch.tensor(case["image"], dtype=torch.float64)[None, None]
    kernel = torch.tensor(case["kernel"], dtype=torch.float64)[None, None]
    padding = case["padding"]
    if case["paddingMode"] == "reflect" and padding:
        image = F.pad(image, (padding,) * 4, mode="reflect")
        padding = 0
    out = F.conv2d(image, kernel, stride=case["stride"], padding=padding,
                   dilation=case["dilation"])
    return out[0, 0].numpy()


@pytest.fixture(scope="module", params=["http", "file"])
def base_url(request, site_url) -> str:
    """The site over http, or opened from disk (``file://``)."""
    return site_url if request.param == "http" else site_file_url()


@pytest.fixture(scope="module")
def explorer(browser, base_url):
    visit = PageVisit(browser, base_url + EXPLORER_PAGE)
    visit.page.wait_for_function(
        "() => window.courseExplorer && window.courseExplorer.explorers.length === 1")
    visit.page.locator("[data-course-explorer] figcaption").first.wait_for()
    yield visit
    assert visit.console_errors == [], visit.console_errors
    visit.close()


def test_committed_cases_are_the_generated_ones():
    assert json.loads(CASES_FILE.read_text()) == json.loads(json.dumps(make_cases()))


def test_convolve_equals_conv2d_on_every_case(explorer):
    cases = json.loads(CASES_FILE.read_text())
    outputs = explorer.page.evaluate(
        """cases => cases.map(c => window.courseExplorer.convolve(c.image, c.kernel,
            {stride: c.stride, padding: c.padding, dilation: c.dilation,
             paddingMode: c.paddingMode}))""", cases)
    worst = 0.0
    for case, output in zip(cases, outputs, strict=True):
        expected = reference(case)
        got = np.array(output, dtype=np.float64)
        assert got.shape == expected.shape, case
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= TOLERANCE, f"largest difference from F.conv2d: {worst:.3g}"


def test_output_size_formula_matches_conv2d(explorer):
    settings = [(n, k, s, p, d) for n in (1, 5, 8, 28) for k in (1, 2, 3, 5)
                for s in (1, 2, 3) for p in (0, 1, 2) for d in (1, 2)]
    sizes = explorer.page.evaluate(
        "settings => settings.map(a => window.courseExplorer.outputSize(...a))",
        settings)
    for (n, k, s, p, d), size in zip(settings, sizes, strict=True):
        if n + 2 * p < d * (k - 1) + 1:
            assert size < 1
            continue
        out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s,
                       padding=p, dilation=d)
        assert size == out.shape[-1], (n, k, s, p, d)


@pytest.mark.parametrize("bad, message", [
    ("[[1, 2], [3]]", "rectangular"),
    ("[]", "non-empty array"),
    ("[[1, 'a']]", "finite number"),
])
def test_convolve_rejects_bad_images_with_a_clear_error(explorer, bad, message):
    error = explorer.page.evaluate(
        f"""() => {{ try {{ window.courseExplorer.convolve({bad}, [[1]]);
                        return null; }}
                 catch (e) {{ return e.message; }} }}""")
    assert error is not None and message in error


def test_convolve_rejects_bad_options(explorer):
    errors = explorer.page.evaluate("""() => [
        {stride: 0}, {padding: -1}, {dilation: 1.5}, {paddingMode: "circular"},
        {padding: 2, paddingMode: "reflect"}, {dilation: 3}].map(options => {
            try { window.courseExplorer.convolve([[1, 2], [3, 4]], [[1, 1], [1, 1]],
                                                 options); return null; }
            catch (e) { return e.message; } })""")
    assert [e is not None for e in errors] == [True] * 6
    assert "stride must be an integer >= 1" in errors[0]
    assert "reflect padding must be smaller than the image" in errors[4]
    assert "does not fit" in errors[5]


def test_presets_are_the_course_kernels(explorer):
    def preset(name, size=3, angle=0):
        return np.array(explorer.page.evaluate(
            "([n, k, a]) => window.courseExplorer.kernel(n, k, a)",
            [name, size, angle]))

    expected = {
        "sobel_x": kernels.sobel_x(), "sobel_y": kernels.sobel_y(),
        "prewitt_x": kernels.prewitt_x(), "prewitt_y": kernels.prewitt_y(),
        "laplacian4": kernels.laplacian(4), "laplacian8": kernels.laplacian(8),
        "sharpen": kernels.sharpen(), "box": kernels.box(3),
    }
    for name, kernel in expected.items():
        np.testing.assert_allclose(preset(name), kernel.numpy(), atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(preset("box", 5), kernels.box(5).numpy(), atol=1e-6)
    binomial = np.outer([1, 2, 1], [1, 2, 1]) / 16
    np.testing.assert_allclose(preset("gaussian"), binomial, atol=1e-12)
    for size in (3, 5):
        for degrees in (0, 45, 120):
            sigma, lambd = max(size / 3, 0.8), max(size, 3)
            gabor = kernels.gabor(size, sigma, math.radians(degrees), lambd, 1.0, 0.0)
            np.testing.assert_allclose(preset("gabor", size, degrees), gabor.numpy(),
                                       atol=1e-6, err_msg=f"gabor {size} {degrees}")
    # 5×5 versions of the 3×3 kernels carry a border of zeros
    sobel5 = preset("sobel_x", 5)
    assert np.array_equal(sobel5[1:4, 1:4], kernels.sobel_x().numpy())
    assert np.abs(sobel5).sum() == np.abs(kernels.sobel_x().numpy()).sum()


def grid_values(page, root) -> np.ndarray:
    values = root.locator(".cx-kernel input").evaluate_all(
        "inputs => inputs.map(i => Number(i.value))")
    size = math.isqrt(len(values))
    return np.array(values).reshape(size, size)


def test_controls_preset_stride_upload_and_keyboard(browser, base_url, tmp_path):
    visit = PageVisit(browser, base_url + EXPLORER_PAGE)
    try:
        page = visit.page
        root = page.locator("[data-course-explorer]")
        captions = root.locator("figcaption")
        captions.first.wait_for()
        assert "40 × 56" in captions.nth(1).inner_text()  # the rectangle, same padding

        root.get_by_label("Preset").select_option(label="Laplacian (8 neighbours)")
        np.testing.assert_array_equal(grid_values(page, root),
                                      kernels.laplacian(8).numpy())
        assert not root.locator("figure").nth(2).is_visible()  # no Sobel magnitude

        root.get_by_label("Stride").fill("2")
        root.get_by_label("Stride").dispatch_event("change")
        formula = root.locator(".cx-formula").inner_text()
        assert "/ 2⌋ + 1 = 20" in formula and "/ 2⌋ + 1 = 28" in formula, formula
        assert "Feature map: 20 × 28" in captions.nth(1).inner_text()

        pixels = np.zeros((20, 30), dtype=np.uint8)
        pixels[5:12, 8:20] = 200
        upload = tmp_path / "square.png"
        Image.fromarray(pixels).save(upload)
        root.locator("input[type=file]").set_input_files(str(upload))
        page.wait_for_function(
            "el => el.textContent.includes('20 × 30 pixels')",
            arg=captions.first.element_handle())
        assert root.get_by_label("Image", exact=True).input_value() == "upload"

        output = root.locator("canvas[tabindex='0']")
        output.focus()
        for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
            page.keyboard.press(key)
        details = root.locator(".cx-details")
        assert "Output (1, 2)" in details.locator("caption").inner_text()
        image = torch.from_numpy(pixels.astype(np.float64) / 255)[None, None]
        expected = F.conv2d(image, kernels.laplacian(8).double()[None, None], stride=2,
                            padding=1)[0, 0, 1, 2].item()
        shown = details.locator(".cx-sum").inner_text()
        assert f"Sum = {expected:.3f}".rstrip("0").rstrip(".") in shown.replace(
            "\u2212", "-"), (shown, expected)
        assert len(details.locator("td").all()) == 9

        root.get_by_label("Preset").select_option("gabor")
        root.get_by_label("Gabor angle").fill("45")
        gabor = kernels.gabor(3, 1.0, math.radians(45), 3.0, 1.0, 0.0).numpy()
        np.testing.assert_allclose(grid_values(page, root), gabor, atol=5e-4)
        assert visit.console_errors == []
    finally:
        visit.close()


def test_every_control_has_a_label(explorer):
    unlabelled = explorer.page.evaluate("""() => Array.from(
        document.querySelectorAll('[data-course-explorer] input, '
                                  + '[data-course-explorer] select'))
        .filter(el => !(el.labels && el.labels.length)
                      && !el.getAttribute('aria-label'))
        .map(el => el.outerHTML)""")
    assert unlabelled == []


def test_samples_are_the_generated_ones():
    from repo_scripts import load_script

    assets = load_script("scripts/make_explorer_assets.py")
    committed = (REPO_ROOT / "_static" / "explorer" / "samples.js").read_text()
    assert committed == assets.samples_script(assets.sample_images()), (
        "run scripts/make_explorer_assets.py")


def choose(root, label: str, value: str) -> None:
    """Set a select or number field as a reader does (the explorer listens to change)."""
    field = root.get_by_label(label, exact=True)
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)
        field.dispatch_event("change")


def shown(page) -> dict:
    """What the explorer shows: sizes, CSS widths of the panels, the feature map."""
    return page.evaluate("""() => {
        const e = window.courseExplorer.explorers[0];
        const css = c => c.getBoundingClientRect().width;
        return {input: [e.padded.height, e.padded.width, css(e.inputCanvas)],
                output: [e.result.height, e.result.width, css(e.outputCanvas)],
                values: Array.from(e.result.data), message: e.message.textContent};
    }""")


@pytest.mark.parametrize("name, size, channel", [("digit", (28, 28), 0),
                                                  ("cat", (128, 128), None)])
def test_sample_images_load_and_match_the_course_data(explorer, name, size, channel):
    """The embedded samples are the course's images: the explorer's box blur of each
    equals F.conv2d on utils.data's pixels (grey weights 0.299, 0.587, 0.114)."""
    from repo_scripts import load_script

    page = explorer.page
    root = page.locator("[data-course-explorer]")
    choose(root, "Image", name)
    choose(root, "Preset", "box")
    choose(root, "Stride", "1")
    choose(root, "Padding", "1")
    choose(root, "Padding values", "zeros")
    choose(root, "Dilation", "1")
    caption = root.locator("figcaption").first.inner_text()
    assert f"{size[0]} × {size[1]} pixels" in caption, caption
    pixels = load_script("scripts/make_explorer_assets.py").sample_images()[name]
    values = pixels.astype(np.float64) / 255
    grey = values if values.ndim == 2 else values @ np.array([0.299, 0.587, 0.114])
    expected = F.conv2d(torch.from_numpy(grey)[None, None],
                        kernels.box(3).double()[None, None], padding=1)[0, 0].numpy()
    got = shown(page)
    assert got["message"] == ""
    np.testing.assert_allclose(np.array(got["values"]).reshape(expected.shape), expected,
                               atol=1e-9)
    assert explorer.console_errors == [], explorer.console_errors
    choose(root, "Image", "rectangle")


def test_things_to_try_match_what_the_page_shows(explorer):
    """explorer.md's "Things to try" 2 and 3, on the explorer's defaults (padding 1)."""
    page = explorer.page
    root = page.locator("[data-course-explorer]")
    text = (REPO_ROOT / "explorer.md").read_text()
    choose(root, "Image", "rectangle")
    choose(root, "Preset", "sobel_x")
    choose(root, "Padding", "1")
    choose(root, "Dilation", "1")
    choose(root, "Stride", "2")
    assert shown(page)["output"][:2] == [20, 28] and "20 × 28" in text
    choose(root, "Stride", "1")
    assert shown(page)["output"][:2] == [40, 56] and "40 × 56" in text
    choose(root, "Dilation", "2")
    assert shown(page)["output"][:2] == [38, 54] and "(38 × 54)" in text
    choose(root, "Dilation", "1")

    def blurred(image: str, mode: str) -> np.ndarray:
        choose(root, "Image", image)
        choose(root, "Preset", "box")
        choose(root, "Padding values", mode)
        got = shown(page)
        return np.array(got["values"]).reshape(got["output"][:2])

    cat_zeros, cat_reflect = blurred("cat", "zeros"), blurred("cat", "reflect")
    inner = (slice(1, -1), slice(1, -1))
    assert np.allclose(cat_zeros[inner], cat_reflect[inner])
    assert (cat_zeros[0] < cat_reflect[0] - 1e-9).mean() > 0.9, (
        "zero padding should darken the cat's border row")
    assert "on the cat" in text and "darken the border" in text
    np.testing.assert_array_equal(blurred("rectangle", "zeros"),
                                  blurred("rectangle", "reflect"))
    assert "same output there? (Its border is black.)" in text
    choose(root, "Padding values", "zeros")
    choose(root, "Preset", "sobel_x")


def test_input_and_output_share_one_pixel_scale(explorer):
    page = explorer.page
    root = page.locator("[data-course-explorer]")
    choose(root, "Image", "rectangle")
    choose(root, "Padding", "1")
    for stride, expected in (("1", (40, 56)), ("2", (20, 28))):
        choose(root, "Stride", stride)
        got = shown(page)
        assert got["output"][:2] == list(expected)
        per_input_pixel = got["input"][2] / got["input"][1]
        per_output_value = got["output"][2] / got["output"][1]
        assert abs(per_input_pixel - per_output_value) < 0.02, got
    # stride 2: the map is drawn half as wide as the (unpadded) input
    assert abs(got["output"][2] - got["input"][2] * 56 / 58 / 2) < 1.0
    choose(root, "Stride", "1")


def test_click_selects_an_output_pixel(explorer):
    """Pointer events: a click (or a tap) selects the output pixel under it."""
    page = explorer.page
    root = page.locator("[data-course-explorer]")
    choose(root, "Image", "rectangle")
    choose(root, "Stride", "1")
    output = root.locator("canvas[tabindex='0']")
    output.scroll_into_view_if_needed()
    box = output.bounding_box()
    # the middle of output pixel (row 10, column 14): the rectangle's corner
    page.mouse.click(box["x"] + (14.5 / 56) * box["width"],
                     box["y"] + (10.5 / 40) * box["height"])
    caption = root.locator(".cx-details caption").inner_text()
    assert "Output (10, 14)" in caption, caption
