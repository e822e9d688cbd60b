"""Interactive explorers of the sliding window (chapter 1) and of classic kernels
(chapter 2), in two forms.

* **Static** (works on the website, no running kernel): a
  ``matplotlib.animation.FuncAnimation`` whose frames are embedded in the page as
  JavaScript/HTML by ``animation_html`` (like ``Animation.to_jshtml``, with palette
  PNG frames 3–4× smaller, rendered at twice the resolution they are shown at for
  high-density screens, and matplotlib's random element id replaced by a stable one
  so that re-running a notebook produces byte-identical output).

Legibility (issue 26): frames are at least ``MIN_FRAME_WIDTH`` pixels wide on screen and
every text is at least ``MIN_TEXT_PX`` pixels tall there (``FONT_PT`` points at
``FRAME_DPI``); the input grid is grey with 0 black and 1 white (a bright square is
bright), and the red window outline is drawn over the grid's edge, never clipped.
* **Live** (needs a running Jupyter kernel): an ``ipywidgets`` box with sliders and a
  dropdown that redraws a PNG on every change.

Explained and used in ``chapters/01_convolution_operation.ipynb`` (sliding window) and
``chapters/02_classic_kernels.ipynb`` (kernel explorer).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, HTMLWriter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from . import conv, kernels, validate

__all__ = [
    "sliding_window_positions", "sliding_window_outputs", "sliding_window_animation",
    "sliding_window_figure", "sliding_window_widget", "explorer_kernel", "filter_image",
    "kernel_explorer_animation", "kernel_explorer_figure", "kernel_explorer_widget",
    "animation_html", "KERNEL_FAMILIES",
]

KERNEL_FAMILIES = ("sobel", "gaussian", "gabor")
_PAD_COLOUR = "#cfe3f5"
FRAME_DPI = 100  # logical pixels per inch of the frames (as utils.viz.FIGURE_DPI)
FONT_PT = 9  # text size of numbers and titles: 12.5 px at FRAME_DPI
SMALL_PT = 8  # colour-bar ticks: 11 px at FRAME_DPI
MIN_FRAME_WIDTH = 560  # on-screen pixels
MIN_TEXT_PX = 10  # on-screen pixels


def _as_array(data, name: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{name} must be a tensor or array, got {type(data).__name__}")
    if data.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {data.shape}")
    return data.astype(np.float64)


# --------------------------------------------------------------------------------------
# Chapter 1: the sliding window
# --------------------------------------------------------------------------------------

def _default_input() -> np.ndarray:
    image = np.zeros((7, 7))
    image[2:5, 2:5] = 1.0  # a bright 3×3 square on a dark background
    return image


def sliding_window_positions(
    input_size: int = 7, kernel_size: int = 3, stride: int = 1, padding: int = 0
) -> list[tuple[int, int]]:
    """Top-left corners (row, col), in padded coordinates, of every window position.

    There are ``out × out`` positions with out = floor((n + 2p − k)/s) + 1, visited
    row by row: one frame of ``sliding_window_animation`` each. ``padding`` may be 0
    (valid) up to k − 1 (full); larger padding would only add windows that see nothing
    but zeros. Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    input_size = validate.integer(input_size, "input_size", 1)
    kernel_size = validate.integer(kernel_size, "kernel_size", 1)
    stride = validate.integer(stride, "stride", 1)
    padding = validate.integer(padding, "padding", 0)
    if padding > kernel_size - 1:
        raise ValueError(f"padding must be between 0 and kernel_size - 1 = "
                         f"{kernel_size - 1} (full padding), got {padding}")
    padded = input_size + 2 * padding
    if kernel_size > padded:
        raise ValueError(f"kernel_size {kernel_size} is larger than the padded input "
                         f"{padded}×{padded}")
    out = (padded - kernel_size) // stride + 1
    return [(r * stride, c * stride) for r in range(out) for c in range(out)]


def _draw_grid(ax, values: np.ndarray, title: str, *, mask=None, fmt="{:g}",
               cmap="gray", vmin=None, vmax=None, fontsize=FONT_PT):
    """Draw a small matrix as coloured cells with its numbers written inside.

    ``cmap="gray"`` (inputs) draws 0 black and ``vmax`` white; a diverging map
    (kernels, outputs) is centred on 0. Numbers are white on dark cells, black on
    light ones and on the light-blue padding (``mask``). Returns the image and an
    array of the number texts, so that a caller can update them frame by frame."""
    picture = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax,
                        interpolation="nearest")
    if mask is not None:
        overlay = np.zeros((*values.shape, 4))
        overlay[mask] = matplotlib.colors.to_rgba(_PAD_COLOUR)
        ax.imshow(overlay, interpolation="nearest")
    limit = max(abs(vmin or 0), abs(vmax or 1))
    texts = np.empty(values.shape, dtype=object)
    for (r, c), v in np.ndenumerate(values):
        if cmap == "gray":
            dark = v < 0.5 * (vmax if vmax is not None else 1)
        else:
            dark = abs(v) > 0.6 * limit
        if mask is not None and mask[r, c]:
            dark = False
        texts[r, c] = ax.text(c, r, fmt.format(v + 0.0), ha="center", va="center",
                              fontsize=fontsize, color="white" if dark else "black")
    ax.set_xticks(np.arange(-0.5, values.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, values.shape[0]), minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=FONT_PT)
    return picture, texts


class _SlidingWindow:
    """State shared by the animation and the widget: input, kernel, output values."""

    def __init__(self, image, kernel, stride: int, padding: int):
        self.image = _default_input() if image is None else _as_array(image, "image")
        self.kernel = (kernels.sobel_x().double().numpy() if kernel is None
                       else _as_array(kernel, "kernel"))
        if self.image.shape[0] != self.image.shape[1]:
            raise ValueError(f"image must be square, got shape {self.image.shape}")
        if self.kernel.shape[0] != self.kernel.shape[1]:
            raise ValueError(f"kernel must be square, got shape {self.kernel.shape}")
        n, k = self.image.shape[0], self.kernel.shape[0]
        self.positions = sliding_window_positions(n, k, stride, padding)
        self.stride, self.padding, self.k = stride, padding, k
        self.padded = np.pad(self.image, padding)
        self.pad_mask = np.ones_like(self.padded, dtype=bool)
        self.pad_mask[padding:padding + n, padding:padding + n] = False
        self.values = conv.conv2d_naive(
            torch.from_numpy(self.image)[None, None],
            torch.from_numpy(self.kernel)[None, None], stride=stride, padding=padding,
        )[0, 0].numpy()

    def figure(self, dpi: int) -> tuple[Figure, list]:
        cell = 0.36  # inches per matrix cell, the same in all three panels
        widths = [self.padded.shape[0], self.k, self.values.shape[0]]
        width = max(cell * sum(widths) + 1.2, MIN_FRAME_WIDTH / FRAME_DPI)
        fig = Figure(figsize=(width, cell * widths[0] + 1.0),
                     dpi=dpi, layout="constrained")
        axes = fig.subplots(1, 3, width_ratios=widths)
        self._draw_panels(axes)
        return fig, list(axes)

    def draw(self, fig: Figure, axes: list, frame: int) -> None:
        """Show ``frame`` on the figure of ``figure()``, whose panels are already
        drawn: move the two red frames, reveal output values and change the title
        (an animation then costs a fraction of redrawing everything)."""
        r, c = self.positions[frame]
        out = self.values.shape[0]
        i, j = divmod(frame, out)
        self._window.set_xy((c - 0.5, r - 0.5))
        self._current.set_xy((j - 0.5, i - 0.5))
        shown = np.full(self.values.shape, np.nan)
        shown.flat[: frame + 1] = self.values.flat[: frame + 1]
        self._output.set_data(np.ma.masked_invalid(shown))
        for index, text in enumerate(self._output_texts.flat):
            text.set_visible(index <= frame)
        fig.suptitle(f"stride {self.stride}, padding {self.padding}:  "
                     f"output[{i}, {j}] = sum(patch × kernel) = "
                     f"{self.values[i, j] + 0.0:g}", fontsize=FONT_PT + 1)

    def _draw_panels(self, axes) -> None:
        k, n = self.k, self.image.shape[0]
        _draw_grid(axes[0], self.padded, f"input {n}×{n} + padding",
                   mask=self.pad_mask, vmin=0, vmax=max(1.0, self.padded.max()))
        self._window = Rectangle((-0.5, -0.5), k, k, fill=False, clip_on=False,
                                 edgecolor="crimson", linewidth=2.5, zorder=5)
        axes[0].add_patch(self._window)
        limit = float(np.abs(self.kernel).max()) or 1.0
        _draw_grid(axes[1], self.kernel, "kernel", cmap="RdBu_r",
                   vmin=-limit, vmax=limit)
        out_limit = float(np.abs(self.values).max()) or 1.0
        out = self.values.shape[0]
        self._output, self._output_texts = _draw_grid(
            axes[2], self.values, f"output {out}×{out}", cmap="RdBu_r",
            vmin=-out_limit, vmax=out_limit)
        self._current = Rectangle((-0.5, -0.5), 1, 1, fill=False, clip_on=False,
                                  edgecolor="crimson", linewidth=2.5, zorder=5)
        axes[2].add_patch(self._current)


def sliding_window_animation(
    stride: int = 1,
    padding: int = 0,
    *,
    image=None,
    kernel=None,
    interval_ms: int = 700,
    dpi: int = FRAME_DPI,
) -> FuncAnimation:
    """Animate a kernel sliding over a small input, one frame per output value.

    Left: the (zero-)padded input (grey, 0 black and 1 white; padding in light blue)
    with the current window in red; middle: the kernel; right: the output filling in
    (both diverging, centred on 0), each value the sum of the
    elementwise product of window and kernel (a cross-correlation, as ``F.conv2d``).
    Defaults: a 7×7 input with a bright 3×3 square and the Sobel-x kernel. Frames:
    out² with out = floor((7 + 2p − 3)/s) + 1. Raises ``ValueError`` for a stride
    < 1, or a padding outside 0..k−1. Show it on a static page with
    ``animation_html``.
    Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    stride = validate.integer(stride, "stride", 1)
    padding = validate.integer(padding, "padding", 0)
    interval_ms = validate.integer(interval_ms, "interval_ms", 1)
    state = _SlidingWindow(image, kernel, stride, padding)
    fig, axes = state.figure(dpi)
    state.draw(fig, axes, len(state.positions) - 1)
    _freeze_layout(fig)
    animation = FuncAnimation(
        fig, lambda frame: state.draw(fig, axes, frame),
        frames=len(state.positions), interval=interval_ms, repeat=False,
        init_func=lambda: None,
    )
    animation.n_frames = len(state.positions)
    return animation


def sliding_window_outputs(stride: int = 1, padding: int = 0, *, image=None,
                           kernel=None) -> np.ndarray:
    """The output values the sliding-window explorer fills in, an (out, out) array.

    Each is the sum of the element-wise product of one window of the zero-padded
    input and the kernel (the same defaults as ``sliding_window_animation``).
    """
    stride = validate.integer(stride, "stride", 1)
    padding = validate.integer(padding, "padding", 0)
    return _SlidingWindow(image, kernel, stride, padding).values.copy()


def sliding_window_figure(stride: int = 1, padding: int = 0, frame: int = 0, *,
                          image=None, kernel=None, dpi: int = FRAME_DPI) -> Figure:
    """One frame of ``sliding_window_animation`` as a Figure (used by the widget)."""
    stride = validate.integer(stride, "stride", 1)
    padding = validate.integer(padding, "padding", 0)
    state = _SlidingWindow(image, kernel, stride, padding)
    frame = validate.integer(frame, "frame", 0)
    if frame >= len(state.positions):
        raise ValueError(f"frame must be < {len(state.positions)}, got {frame}")
    fig, axes = state.figure(dpi)
    state.draw(fig, axes, frame)
    return fig


def _freeze_layout(fig: Figure) -> None:
    """Lay the figure out once and keep that layout for every frame (2× faster).

    The layout engine is removed altogether (``None``, not ``"none"``, whose
    placeholder engine still makes ``savefig`` draw every frame twice)."""
    fig.draw_without_rendering()
    fig.set_layout_engine(None)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)  # the widget shows pixels as they are
    return buffer.getvalue()


def sliding_window_widget(stride: int = 1, padding: int = 0, *, image=None,
                          kernel=None):
    """Live explorer: sliders for stride (1–3), padding (0 to k − 1) and the window
    position.

    Returns an ``ipywidgets.VBox``; display it in a notebook with a running kernel (on
    a static web page widgets show nothing, use ``sliding_window_animation`` there).
    Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    import ipywidgets as widgets

    kernel_size = _SlidingWindow(image, kernel, stride, padding).k  # validates
    stride_slider = widgets.IntSlider(value=stride, min=1, max=3, description="stride")
    padding_slider = widgets.IntSlider(value=padding, min=0, max=kernel_size - 1,
                                       description="padding")
    position_slider = widgets.IntSlider(value=0, min=0, max=0, description="position")
    picture = widgets.Image(format="png")

    def redraw(_change=None) -> None:
        s, p = stride_slider.value, padding_slider.value
        n_positions = len(_SlidingWindow(image, kernel, s, p).positions)
        position_slider.max = n_positions - 1
        position_slider.value = min(position_slider.value, n_positions - 1)
        picture.value = _png(sliding_window_figure(
            s, p, position_slider.value, image=image, kernel=kernel))

    for slider in (stride_slider, padding_slider, position_slider):
        slider.observe(redraw, names="value")
    redraw()
    controls = widgets.HBox([stride_slider, padding_slider, position_slider])
    return widgets.VBox([controls, picture])


# --------------------------------------------------------------------------------------
# Chapter 2: the kernel explorer
# --------------------------------------------------------------------------------------

def explorer_kernel(family: str, *, theta: float = 0.0, sigma: float = 2.0,
                    lambd: float = 8.0, gamma: float = 0.5) -> np.ndarray:
    """The float64 kernel the explorer shows for one family and its parameters.

    * ``"sobel"``: the derivative along direction ``theta`` (degrees),
      cos θ · Sobel-x + sin θ · Sobel-y (θ = 0: d/dx, θ = 90: d/dy, rows
      downwards).
    * ``"gaussian"``: ``utils.kernels.gaussian`` of size 2·ceil(3σ)+1, std ``sigma``.
    * ``"gabor"``: ``utils.kernels.gabor`` at orientation ``theta`` (degrees) with
      envelope ``sigma``, wavelength ``lambd`` and aspect ``gamma``, size
      2·ceil(3σ/γ)+1 so the elongated envelope is not cut off, minus its mean so
      that flat regions give 0 and the response shows texture, not brightness.

    Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    if family not in KERNEL_FAMILIES:
        raise ValueError(f"family must be one of {KERNEL_FAMILIES}, got {family!r}")
    for name, value in (("theta", theta), ("sigma", sigma), ("lambd", lambd),
                        ("gamma", gamma)):
        validate.real(value, name)
    if family == "sobel":
        radians = math.radians(theta)
        kernel = (math.cos(radians) * kernels.sobel_x().double()
                  + math.sin(radians) * kernels.sobel_y().double())
    elif family == "gaussian":
        kernel = kernels.gaussian(2 * math.ceil(3 * sigma) + 1, float(sigma))
    else:
        size = 2 * math.ceil(3 * sigma / min(gamma, 1.0)) + 1
        kernel = kernels.gabor(size, float(sigma), math.radians(theta), float(lambd),
                               float(gamma)).double()
        kernel = kernel - kernel.mean()
    return kernel.double().numpy()


def filter_image(image, kernel) -> np.ndarray:
    """Cross-correlate a 2-D image with a kernel in float64 (OpenCV, reflect-101
    border).

    The result has the image's size. float64 keeps the explorer's frames identical
    from machine to machine.
    """
    image = _as_array(image, "image")
    kernel = _as_array(kernel, "kernel")
    return cv2.filter2D(image, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT_101)


_PARAMETER = {"sobel": "theta", "gaussian": "sigma", "gabor": "theta"}


def _explorer_panels(image: np.ndarray, family: str, params: dict):
    kernel = explorer_kernel(family, **params)
    response = np.round(filter_image(image, kernel), 6)  # stable display values
    return kernel, response


def _explorer_figure(dpi: int) -> tuple[Figure, list]:
    """The explorer's figure: kernel, its colour bar, filtered image, its colour bar."""
    fig = Figure(figsize=(MIN_FRAME_WIDTH / FRAME_DPI + 1.4, 3.4), dpi=dpi,
                 layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=[1, 0.06, 1.5, 0.06])
    return fig, list(axes)


def _draw_explorer(fig: Figure, axes, image, family, params, limit) -> None:
    """Draw one frame: the kernel (diverging, ±its largest weight; sequential from 0
    for the Gaussian, whose weights are ≥ 0) and the filtered
    image (diverging on one ±limit scale for all frames; grey 0–1 for the Gaussian
    blur), each with its own colour bar."""
    kernel, response = _explorer_panels(image, family, params)
    for ax in axes:
        ax.clear()
    for ax in (axes[0], axes[2]):
        ax.set_axis_off()
    k_limit = float(np.abs(kernel).max()) or 1.0
    if family == "gaussian":  # weights ≥ 0: a sequential map from 0
        kernel_image = axes[0].imshow(kernel, cmap="viridis", vmin=0, vmax=k_limit,
                                      interpolation="nearest")
    else:  # signed weights: diverging, centred on 0
        kernel_image = axes[0].imshow(kernel, cmap="RdBu_r", vmin=-k_limit,
                                      vmax=k_limit, interpolation="nearest")
    size = kernel.shape[0]
    axes[0].set_title(f"kernel {size}×{size}", fontsize=FONT_PT + 1)
    if family == "gaussian":
        shown = axes[2].imshow(response, cmap="gray", vmin=0, vmax=1,
                               interpolation="nearest")
        label = "intensity (0 black, 1 white)"
    else:
        shown = axes[2].imshow(response, cmap="RdBu_r", vmin=-limit, vmax=limit,
                               interpolation="nearest")
        label = "response (one scale for all frames)"
    axes[2].set_title("filtered image", fontsize=FONT_PT + 1)
    for image_, cax, text in ((kernel_image, axes[1], "weight"), (shown, axes[3], label)):
        bar = fig.colorbar(image_, cax=cax)
        bar.ax.tick_params(labelsize=SMALL_PT)
        bar.set_label(text, fontsize=SMALL_PT)
    label = {"sobel": f"θ = {params['theta']:g}°",
             "gaussian": f"σ = {params['sigma']:g}",
             "gabor": f"θ = {params['theta']:g}°, σ = {params['sigma']:g}, "
                      f"λ = {params['lambd']:g}"}[family]
    fig.suptitle(f"{family}: {label}", fontsize=FONT_PT + 2)


def _explorer_setup(image, family: str, values: Sequence[float], params: dict):
    image = _as_array(image, "image")
    if family not in KERNEL_FAMILIES:
        raise ValueError(f"family must be one of {KERNEL_FAMILIES}, got {family!r}")
    if len(values) == 0:
        raise ValueError("values must hold at least one parameter value")
    settings = [dict(params, **{_PARAMETER[family]: float(v)}) for v in values]
    if family == "gaussian" and min(s["sigma"] for s in settings) <= 0:
        raise ValueError(f"sigma values must be positive, got {list(values)}")
    limit = max(float(np.abs(_explorer_panels(image, family, s)[1]).max())
                for s in settings) or 1.0
    return image, settings, limit


def kernel_explorer_animation(
    image,
    family: str,
    values: Sequence[float],
    *,
    sigma: float = 2.0,
    theta: float = 0.0,
    lambd: float = 8.0,
    interval_ms: int = 900,
    dpi: int = FRAME_DPI,
) -> FuncAnimation:
    """Animate one kernel family over its main parameter, next to the filtered image.

    ``family`` is ``"sobel"`` or ``"gabor"`` (frames step through ``values`` of θ in
    degrees) or ``"gaussian"`` (frames step through σ); the other parameters stay
    fixed. One frame per value; signed responses share one symmetric colour scale over
    all frames (the colour bar says so), the kernel has its own, and both have colour
    bars. Show it on a static page with ``animation_html``.
    Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    interval_ms = validate.integer(interval_ms, "interval_ms", 1)
    params = {"sigma": sigma, "theta": theta, "lambd": lambd}
    image, settings, limit = _explorer_setup(image, family, list(values), params)
    fig, axes = _explorer_figure(dpi)
    _draw_explorer(fig, axes, image, family, settings[0], limit)
    _freeze_layout(fig)
    animation = FuncAnimation(
        fig, lambda i: _draw_explorer(fig, axes, image, family, settings[i], limit),
        frames=len(settings), interval=interval_ms, repeat=False,
        init_func=lambda: None,
    )
    animation.n_frames = len(settings)
    return animation


def kernel_explorer_figure(image, family: str, *, sigma: float = 2.0,
                           theta: float = 0.0, lambd: float = 8.0,
                           dpi: int = FRAME_DPI) -> Figure:
    """One frame of the kernel explorer as a Figure (used by the widget)."""
    params = {"sigma": sigma, "theta": theta, "lambd": lambd}
    image, settings, limit = _explorer_setup(
        image, family, [params[_PARAMETER[family]]], params)
    fig, axes = _explorer_figure(dpi)
    _draw_explorer(fig, axes, image, family, settings[0], limit)
    return fig


def kernel_explorer_widget(image):
    """Live kernel explorer: a family dropdown and sliders for θ, σ and λ.

    Sobel uses θ, Gaussian σ, Gabor all three; sliders a family ignores are disabled.
    Returns an ``ipywidgets.VBox`` for a notebook with a running kernel.
    Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    import ipywidgets as widgets

    image = _as_array(image, "image")
    family = widgets.Dropdown(options=KERNEL_FAMILIES, value="sobel",
                              description="kernel")
    theta = widgets.FloatSlider(value=0, min=0, max=180, step=15, description="θ (°)")
    sigma = widgets.FloatSlider(value=2, min=0.5, max=5, step=0.5, description="σ")
    lambd = widgets.FloatSlider(value=8, min=4, max=16, step=2, description="λ")
    picture = widgets.Image(format="png")
    used = {"sobel": (theta,), "gaussian": (sigma,), "gabor": (theta, sigma, lambd)}

    def redraw(_change=None) -> None:
        for slider in (theta, sigma, lambd):
            slider.disabled = slider not in used[family.value]
        picture.value = _png(kernel_explorer_figure(
            image, family.value, sigma=sigma.value, theta=theta.value,
            lambd=lambd.value))

    for control in (family, theta, sigma, lambd):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([family, theta]), widgets.HBox([sigma, lambd]),
                         picture])


# --------------------------------------------------------------------------------------
# Static HTML for the website
# --------------------------------------------------------------------------------------

def _quantized_png(png: bytes, colors: int) -> bytes:
    """Re-encode a PNG with a palette of ``colors`` colours (3–4× smaller frames)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    palette = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


class _CompactHTMLWriter(HTMLWriter):
    """``HTMLWriter`` with palette PNG frames, failing loudly instead of dropping
    frames beyond the size limit."""

    def __init__(self, colors: int, **kwargs):
        super().__init__(embed_frames=True, **kwargs)
        self.colors = colors
        self.frame_format = "png"

    def grab_frame(self, **savefig_kwargs) -> None:
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=self.dpi, **savefig_kwargs)
        encoded = base64.encodebytes(_quantized_png(buffer.getvalue(), self.colors))
        self._total_bytes += len(encoded)
        if self._total_bytes >= self._bytes_limit:
            raise ValueError(
                f"the animation's frames exceed embed_limit_mb = "
                f"{self._bytes_limit / 2**20:g} MB; use fewer frames or a smaller dpi")
        self._saved_frames.append(encoded.decode("ascii"))


def _figure_description(figure) -> str:
    """The figure's suptitle, else its axes' titles: a text alternative for it."""
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        return suptitle.get_text().strip()
    titles = [ax.get_title().strip() for ax in figure.axes if ax.get_title().strip()]
    return "; ".join(titles) or "animated figure"


def animation_html(animation: FuncAnimation, *, html_id: str | None = None,
                   default_mode: str = "once", embed_limit_mb: float = 4.0,
                   colors: int = 256, alt: str | None = None, density: int = 2) -> str:
    """The animation as self-contained HTML/JavaScript, like ``Animation.to_jshtml``.

    Differences from ``to_jshtml``: frames are palette PNGs of ``colors`` colours
    (3–4× smaller pages); a ``ValueError`` is raised when the frames exceed
    ``embed_limit_mb`` instead of silently dropping frames; and matplotlib's random
    element id is replaced by ``html_id`` or, by default, by a hash of the page, so the
    same animation always gives the same HTML (notebook outputs stay reproducible) and
    two different animations on one page never clash. Frames are rendered at
    ``density`` × the figure's dpi and shown at the figure's own size (the ``<img>``
    gets its logical ``width``), so they are sharp on high-density screens. The frame
    image gets ``alt`` text (by default "Animation: " and the figure's suptitle, or its
    axes' titles) and the frame slider a label, for screen readers. The figure is not
    shown again as a static image. Used in chapters 1 and 2.
    """
    if not isinstance(animation, FuncAnimation):
        raise TypeError(f"animation must be a FuncAnimation, got "
                        f"{type(animation).__name__}")
    if default_mode not in ("once", "loop", "reflect"):
        raise ValueError(f"default_mode must be 'once', 'loop' or 'reflect', "
                         f"got {default_mode!r}")
    if html_id is not None and not re.fullmatch(r"[A-Za-z0-9_]+", html_id):
        raise ValueError(f"html_id may hold only letters, digits and _, "
                         f"got {html_id!r}")
    colors = validate.integer(colors, "colors", 2)
    density = validate.integer(density, "density", 1)
    if density > 3:
        raise ValueError(f"density must be 1, 2 or 3 (pixels per logical pixel), "
                         f"got {density}")
    if colors > 256:
        raise ValueError(f"colors must be at most 256 (a PNG palette), got {colors}")
    if alt is None:
        alt = "Animation: " + _figure_description(animation._fig)
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("alt must be a non-empty text describing the animation")
    interval_ms = getattr(animation, "_interval", 200)  # FuncAnimation's interval
    writer = _CompactHTMLWriter(colors, fps=1000 / interval_ms,
                                default_mode=default_mode,
                                embed_limit=embed_limit_mb)
    figure = animation._fig
    logical_width = round(figure.get_figwidth() * figure.dpi)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "animation.html"
        animation.save(str(path), writer=writer, dpi=figure.dpi * density)
        html = path.read_text()
    match = re.search(r'id="_anim_img([0-9a-f]+)"', html)
    if match is None:
        raise RuntimeError("unexpected HTMLWriter output: no animation id found")
    random_id = match.group(1)
    html = html.replace(f'<img id="_anim_img{random_id}">',
                        f'<img id="_anim_img{random_id}" alt="{escape(alt)}" '
                        f'width="{logical_width}" style="max-width: 100%; height: auto">')
    html = html.replace(f'<input id="_anim_slider{random_id}" type="range"',
                        f'<input id="_anim_slider{random_id}" type="range" '
                        f'aria-label="Animation frame"')
    stable_id = html_id or hashlib.sha256(
        html.replace(random_id, "").encode()).hexdigest()[:16]
    return html.replace(random_id, stable_id)
