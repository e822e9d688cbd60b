"""The in-browser convolution explorer (``explorer.md``, ``_static/explorer/``) in
headless Chromium: its arithmetic against ``F.conv2d``, its kernels against
``utils.kernels``, and its controls driven as a reader would (a preset, the stride, a
file upload, the keyboard). Its update time is measured by
``benchmarks/explorer_bench.py``, not here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from browser_site import REPO_ROOT, PageVisit
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


@pytest.fixture(scope="module")
def explorer(browser, site_url):
    visit = PageVisit(browser, site_url + EXPLORER_PAGE)
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


def test_controls_preset_stride_upload_and_keyboard(browser, site_url, tmp_path):
    visit = PageVisit(browser, site_url + EXPLORER_PAGE)
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


def test_assets_are_the_generated_ones():
    from repo_scripts import load_script

    assets = load_script("scripts/make_explorer_assets.py")
    for name, pixels in assets.sample_images().items():
        committed = np.asarray(Image.open(REPO_ROOT / "_static" / "explorer" /
                                          f"{name}.png"))
        assert np.array_equal(committed, pixels), name
