"""utils.interactive: the explorers of chapters 1 and 2 build, have the expected
frames, give reproducible HTML, and reject bad inputs."""

import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.signal  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import interactive, kernels  # noqa: E402

PHOTO = np.linspace(0.0, 1.0, 24 * 24).reshape(24, 24) ** 2  # small, smooth "image"


def n_frames_in(html: str) -> int:
    return len(re.findall(r"frames\[\d+\] = \"data:image/png;base64,", html))


def expected_output_size(n: int, k: int, s: int, p: int) -> int:
    return math.floor((n + 2 * p - k) / s) + 1


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_sliding_window_positions_match_conv2d_output_size(stride, padding):
    positions = interactive.sliding_window_positions(7, 3, stride, padding)
    layer = torch.nn.Conv2d(1, 1, 3, stride=stride, padding=padding)
    out = layer(torch.zeros(1, 1, 7, 7)).shape[-1]
    expected = expected_output_size(7, 3, stride, padding)
    assert len(positions) == out * out == expected**2
    assert positions[0] == (0, 0)
    assert positions[-1] == ((out - 1) * stride, (out - 1) * stride)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)])
def test_sliding_window_animation_frames_and_html(stride, padding):
    animation = interactive.sliding_window_animation(stride, padding, dpi=40)
    assert isinstance(animation, FuncAnimation)
    out = expected_output_size(7, 3, stride, padding)
    assert animation.n_frames == out * out
    html = interactive.animation_html(animation)
    assert n_frames_in(html) == out * out
    assert "_anim_img" in html


def test_animation_html_is_reproducible_and_ids_are_stable():
    def html(stride, padding):
        animation = interactive.sliding_window_animation(stride, padding, dpi=40)
        return interactive.animation_html(animation)

    first, second = html(3, 0), html(3, 0)
    assert first == second  # no random id, identical frames
    other = html(3, 1)
    ids = {re.search(r'id="_anim_img(\w+)"', h).group(1) for h in (first, other)}
    assert len(ids) == 2  # two different animations never clash on one page
    named = interactive.animation_html(
        interactive.sliding_window_animation(3, 0, dpi=40), html_id="ch1_window")
    assert 'id="_anim_imgch1_window"' in named


def test_animation_html_validates_and_refuses_to_drop_frames():
    with pytest.raises(TypeError):
        interactive.animation_html("not an animation")
    animation = interactive.sliding_window_animation(3, 0, dpi=40)
    with pytest.raises(ValueError, match="default_mode"):
        interactive.animation_html(animation, default_mode="bounce")
    with pytest.raises(ValueError, match="html_id"):
        interactive.animation_html(animation, html_id="bad id!")
    with pytest.raises(ValueError, match="colors"):
        interactive.animation_html(animation, colors=1000)
    with pytest.raises(ValueError, match="embed_limit_mb"):
        interactive.animation_html(animation, embed_limit_mb=0.001)


def test_sliding_window_values_are_the_cross_correlation():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 10, (7, 7)).astype(float)
    kernel = rng.integers(-2, 3, (3, 3)).astype(float)
    for stride, padding in ((1, 0), (2, 1), (1, 2)):
        values = interactive.sliding_window_outputs(stride, padding, image=image,
                                                    kernel=kernel)
        reference = F.conv2d(torch.tensor(image)[None, None],
                             torch.tensor(kernel)[None, None],
                             stride=stride, padding=padding)[0, 0].numpy()
        np.testing.assert_allclose(values, reference)
    valid = scipy.signal.correlate2d(image, kernel, mode="valid")
    np.testing.assert_allclose(
        interactive.sliding_window_outputs(1, 0, image=image, kernel=kernel), valid)


@pytest.mark.parametrize("bad, error", [
    (dict(stride=0), ValueError), (dict(stride=-1), ValueError),
    (dict(padding=-1), ValueError), (dict(padding=3), ValueError),
    (dict(stride=1.5), TypeError), (dict(padding=True), TypeError),
    (dict(image=np.zeros((7, 6))), ValueError),
    (dict(kernel=np.zeros((3, 2))), ValueError),
    (dict(image=np.zeros((2, 2)), padding=0), ValueError),
    (dict(image=[[1, 2], [3, 4]]), TypeError),
])
def test_sliding_window_explorers_validate_inputs(bad, error):
    with pytest.raises(error):
        interactive.sliding_window_animation(**bad)
    with pytest.raises(error):
        interactive.sliding_window_figure(**bad)
    with pytest.raises(error):
        interactive.sliding_window_widget(**bad)
    with pytest.raises(error):
        interactive.sliding_window_outputs(**bad)


def test_sliding_window_figure_and_frame_bounds():
    fig = interactive.sliding_window_figure(2, 1, frame=15)
    assert isinstance(fig, Figure)
    assert "output[3, 3]" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="frame"):
        interactive.sliding_window_figure(2, 1, frame=16)


def test_sliding_window_widget_redraws_on_slider_changes():
    box = interactive.sliding_window_widget()
    controls, picture = box.children
    stride, padding, position = controls.children
    assert bytes(picture.value).startswith(b"\x89PNG")
    assert position.max == 25 - 1  # 5×5 outputs for 7×7, k=3, s=1, p=0
    before = bytes(picture.value)
    stride.value, padding.value = 2, 1
    assert position.max == 16 - 1
    assert bytes(picture.value) != before
    assert padding.max == 2  # full padding for a 3×3 kernel


def test_explorer_kernels_follow_the_documented_formulas():
    sobel_0 = interactive.explorer_kernel("sobel", theta=0)
    sobel_90 = interactive.explorer_kernel("sobel", theta=90)
    np.testing.assert_allclose(sobel_0, kernels.sobel_x().numpy(), atol=1e-12)
    np.testing.assert_allclose(sobel_90, kernels.sobel_y().numpy(), atol=1e-12)
    blur = interactive.explorer_kernel("gaussian", sigma=1.5)
    assert blur.shape == (2 * math.ceil(4.5) + 1,) * 2
    assert blur.sum() == pytest.approx(1.0)
    gabor = interactive.explorer_kernel("gabor", theta=30, sigma=2, lambd=8)
    assert gabor.shape == (2 * math.ceil(3 * 2 / 0.5) + 1,) * 2
    assert abs(gabor.sum()) < 1e-9  # zero mean: flat regions give 0
    with pytest.raises(ValueError, match="family"):
        interactive.explorer_kernel("laplacian")
    with pytest.raises(TypeError):
        interactive.explorer_kernel("sobel", theta="30")


def test_filter_image_is_float64_cross_correlation():
    rng = np.random.default_rng(1)
    image = rng.random((12, 12))
    kernel = rng.standard_normal((3, 3))
    ours = interactive.filter_image(image, kernel)
    padded = np.pad(image, 1, mode="reflect")  # numpy "reflect" = OpenCV reflect-101
    reference = scipy.signal.correlate2d(padded, kernel, mode="valid")
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, reference, atol=1e-12)


@pytest.mark.parametrize("family, values", [
    ("sobel", [0, 45, 90, 135]), ("gaussian", [0.5, 1.0, 2.0]), ("gabor", [0, 60, 120]),
])
def test_kernel_explorer_animation_frames(family, values):
    animation = interactive.kernel_explorer_animation(PHOTO, family, values, dpi=40)
    assert animation.n_frames == len(values)
    html = interactive.animation_html(animation)
    assert n_frames_in(html) == len(values)


def test_kernel_explorer_validates_inputs():
    with pytest.raises(ValueError, match="family"):
        interactive.kernel_explorer_animation(PHOTO, "box", [1])
    with pytest.raises(ValueError, match="at least one"):
        interactive.kernel_explorer_animation(PHOTO, "sobel", [])
    with pytest.raises(ValueError, match="sigma"):
        interactive.kernel_explorer_animation(PHOTO, "gaussian", [1.0, 0.0])
    with pytest.raises(ValueError, match="2-D"):
        interactive.kernel_explorer_animation(np.zeros((3, 8, 8)), "sobel", [0])
    with pytest.raises(ValueError, match="interval_ms"):
        interactive.kernel_explorer_animation(PHOTO, "sobel", [0], interval_ms=0)


def test_kernel_explorer_widget_switches_family_and_sliders():
    box = interactive.kernel_explorer_widget(torch.tensor(PHOTO))
    (family, theta), (sigma, lambd), picture = (
        box.children[0].children, box.children[1].children, box.children[2])
    assert bytes(picture.value).startswith(b"\x89PNG")
    assert not theta.disabled and sigma.disabled and lambd.disabled
    before = bytes(picture.value)
    family.value = "gaussian"
    assert theta.disabled and not sigma.disabled
    assert bytes(picture.value) != before
    family.value = "gabor"
    assert not (theta.disabled or sigma.disabled or lambd.disabled)
    with pytest.raises(ValueError):
        interactive.kernel_explorer_widget(np.zeros(5))


def test_animation_html_has_alt_text_and_a_labelled_slider():
    animation = interactive.sliding_window_animation(stride=2, padding=1)
    described = interactive.animation_html(animation, alt='A "kernel" & its <window>')
    assert 'alt="A &quot;kernel&quot; &amp; its &lt;window&gt;"' in described
    assert 'type="range" aria-label="Animation frame"' in described
    default = interactive.animation_html(animation)
    assert re.search(r'<img id="_anim_img\w+" alt="Animation: [^"]+" width="\d+"', default)
    with pytest.raises(ValueError, match="alt"):
        interactive.animation_html(animation, alt="  ")


# --------------------------------------------------------------------------------------
# Legibility (issue 26): frame size, text size, bright ones, nothing clipped
# --------------------------------------------------------------------------------------

def _frame_sizes(html: str) -> list[tuple[int, int]]:
    import base64
    import io

    from PIL import Image

    sizes = []
    for data in re.findall(r'frames\[\d+\] = "data:image/png;base64,([^"]*)"', html):
        payload = data.replace("\\\n", "").replace("\\n", "").replace("\n", "")
        sizes.append(Image.open(io.BytesIO(base64.b64decode(payload))).size)
    return sizes


LEGIBLE_ANIMATIONS = {
    "sliding window, stride 1": lambda: interactive.sliding_window_animation(1, 0),
    "sliding window, stride 2, padding 1": lambda: interactive.sliding_window_animation(2, 1),
    "sobel explorer": lambda: interactive.kernel_explorer_animation(PHOTO, "sobel", [0, 90]),
    "gaussian explorer": lambda: interactive.kernel_explorer_animation(
        PHOTO, "gaussian", [1, 2]),
}


@pytest.mark.parametrize("name", list(LEGIBLE_ANIMATIONS))
def test_animation_frames_are_wide_sharp_and_their_text_legible(name):
    animation = LEGIBLE_ANIMATIONS[name]()
    fig = animation._fig
    width_px = round(fig.get_figwidth() * fig.dpi)
    assert width_px >= interactive.MIN_FRAME_WIDTH, f"{name}: {width_px} px wide"
    html = interactive.animation_html(animation, alt=name)
    assert f'width="{width_px}"' in html  # shown at its logical size
    sizes = _frame_sizes(html)
    assert len(sizes) == animation.n_frames
    assert {size[0] for size in sizes} == {2 * width_px}  # twice the pixels: sharp
    texts = [text for text in fig.findobj(matplotlib.text.Text)
             if text.get_visible() and text.get_text().strip()]
    assert texts
    smallest = min(text.get_fontsize() * fig.dpi / 72 for text in texts)
    assert smallest >= interactive.MIN_TEXT_PX, f"{name}: text {smallest:.1f} px tall"


def test_sliding_window_draws_one_bright_and_the_window_unclipped():
    fig = interactive.sliding_window_figure(1, 0)
    input_axes = fig.axes[0]
    picture = input_axes.images[0]
    assert picture.get_cmap().name == "gray"
    white, black = picture.to_rgba(1.0), picture.to_rgba(0.0)
    assert white[:3] == (1.0, 1.0, 1.0) and black[:3] == (0.0, 0.0, 0.0)
    outlines = [patch for ax in fig.axes for patch in ax.patches]
    assert len(outlines) == 2 and not any(patch.get_clip_on() for patch in outlines)
    # the numbers on the bright square are black, those on the dark background white
    colours = {text.get_text(): text.get_color() for text in input_axes.texts}
    assert colours == {"1": "black", "0": "white"}


def test_padding_numbers_stay_black_on_the_light_blue_ring():
    corner = interactive.sliding_window_figure(2, 1).axes[0].texts[0]  # (0, 0): padding
    assert corner.get_text() == "0" and corner.get_color() == "black"


def test_kernel_explorer_has_a_colour_bar_for_each_panel():
    fig = interactive.kernel_explorer_figure(PHOTO, "sobel", theta=45)
    bars = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [bar.get_ylabel() for bar in bars] == ["weight",
                                                 "response (one scale for all frames)"]
    kernel_image = fig.axes[0].images[0]
    assert kernel_image.get_clim()[0] == -kernel_image.get_clim()[1]


def test_animation_html_density_is_checked():
    animation = interactive.sliding_window_animation(3, 0, dpi=40)
    with pytest.raises(ValueError, match="density"):
        interactive.animation_html(animation, density=4)
    single = interactive.animation_html(animation, density=1)
    assert {size[0] for size in _frame_sizes(single)} == {
        round(animation._fig.get_figwidth() * 40)}


def test_gaussian_explorer_kernel_is_sequential_from_zero():
    fig = interactive.kernel_explorer_figure(PHOTO, "gaussian", sigma=2)
    kernel_image = fig.axes[0].images[0]
    assert kernel_image.get_cmap().name == "viridis" and kernel_image.get_clim()[0] == 0
