"""The course's figure style and its grids of kernels, feature maps and images.

Every plotting function returns the matplotlib ``Figure``. Used from
``chapters/02_classic_kernels.ipynb`` on; the rule below is the one every chapter
follows, also in figures drawn by hand with ``plt.subplots``.

**Figure style** (``use_course_style``, applied once when a notebook imports anything
from ``utils``): figures are shown as high-density ("retina") PNGs, rendered at twice
``figure.dpi`` and displayed at their logical size (the output carries ``width`` and
``height``, which JupyterLab, Colab and MyST-NB on the website honour), so they are
sharp on high-density screens and keep the width they had at 100 dpi.

**The colour-scale rule** (``colour_scales``; every helper below follows it):

1. *Signed values* (kernels, feature maps before a ReLU, differences) use a
   diverging map (``DIVERGING``) centred on 0: limits ±m, white = 0, red > 0,
   blue < 0, and always a colour bar. Values that are never negative use a
   sequential map (``SEQUENTIAL``, or grey for images).
2. *A scale per panel where magnitudes differ*: each panel gets its own limits,
   stated on the panel (its title ends in "±0.42" or "0–3.1") and its own colour
   bar, so a channel whose values are four times smaller is still visible.
3. *A shared scale only where the point is the comparison*: one set of limits for
   every panel, one colour bar, and the figure says so (the colour bar's label
   ends in "one scale for all panels").
4. ``scale="auto"`` (the default of the grids) chooses by a stated rule: a shared
   scale when the panels' magnitudes (max |value| for signed data, max − min
   otherwise) differ by at most ``AUTO_SHARED_RATIO`` (2×), else a scale per panel.
   Pass ``scale="shared"`` when equal colours must mean equal values across panels,
   and say so in the prose.

By hand (``plt.subplots``): signed values with
``ax.imshow(v, cmap=viz.DIVERGING, vmin=-m, vmax=m)`` (or ``norm=CenteredNorm()``) and
``fig.colorbar(...)``; state a per-panel scale with ``viz.scale_label`` in the title
("gx  ±1.7"), a shared one on its colour bar's label.

Many faint panels say less than a few large ones: ``strongest_channels`` picks the
channels to show by a stated rule, and grids are at most ``MAX_FIGURE_WIDTH`` inches
wide (panels shrink to fit), so text stays legible on a laptop or a phone.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from . import validate

__all__ = ["image_grid", "show_kernels", "show_feature_maps", "show_images",
           "show_rgb_kernels", "show_attributions", "to_numpy_image", "colour_scales",
           "ColourScale", "strongest_channels", "use_course_style", "scale_label",
           "DIVERGING", "SEQUENTIAL", "AUTO_SHARED_RATIO", "MAX_FIGURE_WIDTH",
           "FIGURE_DPI"]

DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"
AUTO_SHARED_RATIO = 2.0  # "auto": shared scale while magnitudes differ ≤ 2×
MAX_FIGURE_WIDTH = 9.0  # inches at FIGURE_DPI: about the width of the page's text
FIGURE_DPI = 100  # logical resolution; the PNG has twice as many pixels per inch
SCALES = ("auto", "panel", "shared")
_SHARED_NOTE = "one scale for all panels"

# The course's figure style: matplotlib settings applied by ``use_course_style``.
STYLE = {
    "figure.dpi": FIGURE_DPI,
    "savefig.dpi": 2 * FIGURE_DPI,  # files saved by readers are high-density too
    "font.size": 10,
    "axes.titlesize": 10,
    "figure.titlesize": 12,
    "image.cmap": SEQUENTIAL,
}


def use_course_style() -> None:
    """Apply the course's figure style (``STYLE``) and high-density inline figures.

    In a Jupyter kernel (JupyterLab, Colab, the website's execution) the inline
    backend then emits "retina" PNGs: rendered at 2 × ``figure.dpi`` with the logical
    ``width``/``height`` in the output's metadata, so a figure keeps its on-screen size
    and gains detail. Outside IPython only the matplotlib settings change. Idempotent;
    ``utils/__init__.py`` calls it when a notebook imports ``utils``.
    """
    matplotlib.rcParams.update(STYLE)
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    if get_ipython() is None:
        return
    try:
        from matplotlib_inline.config import InlineBackend
    except ImportError:  # an IPython without the inline backend: nothing to configure
        return
    # Setting the trait works before and after the backend is activated: a configured
    # backend updates its PNG formatter now, an unconfigured one reads it on activation.
    InlineBackend.instance().figure_formats = {"retina"}


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) stays; (1, H, W) → (H, W); (3, H, W) CHW → (H, W, 3) for matplotlib."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a tensor or array, got {type(image).__name__}")
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected (H, W), (1, H, W) or (3, H, W), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("the image holds NaN or infinite values")
    return array


def _as_panels(data, name: str) -> list[np.ndarray]:
    if isinstance(data, (list, tuple)):
        return [to_numpy_image(d) for d in data]
    if not isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a tensor, array or list, got {type(data).__name__}")
    if data.ndim == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 and not (data.ndim == 4 and data.shape[1] == 3):
        raise ValueError(f"{name} must have shape (N, H, W), (N, 1, H, W) or "
                         f"(N, 3, H, W), got {tuple(data.shape)}")
    return [to_numpy_image(d) for d in data]


@dataclass(frozen=True)
class ColourScale:
    """Limits and colour map of one panel, and how its title states them."""

    vmin: float
    vmax: float
    signed: bool
    shared: bool

    @property
    def norm(self) -> Normalize:
        return Normalize(self.vmin, self.vmax)

    @property
    def label(self) -> str:
        """The scale as a panel states it: "±0.42" (signed) or "0–3.1"."""
        return scale_label(self.vmin, self.vmax, self.signed)


def scale_label(vmin: float, vmax: float, signed: bool) -> str:
    """How a panel states its colour scale: "±0.42" when signed, else "0–3.1"."""
    if signed:
        return f"±{_short(vmax)}"
    return f"{_short(vmin)}–{_short(vmax)}"


def _short(value: float) -> str:
    return f"{value:.2g}" if abs(value) < 1000 else f"{value:.3g}"


def _magnitude(panel: np.ndarray, signed: bool) -> float:
    return float(np.abs(panel).max()) if signed else float(panel.max() - panel.min())


def colour_scales(panels: Sequence[np.ndarray], *, scale: str = "auto",
                  signed: bool | None = None, vmin: float | None = None,
                  vmax: float | None = None) -> list[ColourScale]:
    """One ``ColourScale`` per 2-D panel, by the course's colour-scale rule.

    ``signed=None`` decides from the data (any value < 0 → signed); ``signed=False``
    gives a sequential scale over the values' range (pictures whose sharpening
    undershoots below 0 stay grey). Signed scales are symmetric, ±m with m the largest
    |value| (of the panel, or of all panels when shared). ``vmin``/``vmax`` fix a
    shared scale. ``scale="auto"`` shares while max/min of the panels' magnitudes
    ≤ ``AUTO_SHARED_RATIO``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not panels:
        raise ValueError("nothing to show: panels is empty")
    for number, panel in enumerate(panels):
        if not isinstance(panel, np.ndarray) or panel.ndim != 2:
            shape = getattr(panel, "shape", type(panel).__name__)
            raise ValueError(f"panel {number} must be a 2-D array, got {shape}")
    if signed is None:
        signed = any(float(p.min()) < 0 for p in panels)
    if (vmin is None) != (vmax is None):
        raise ValueError("give both vmin and vmax, or neither")
    if vmin is not None:
        if scale == "panel":
            raise ValueError("vmin/vmax set one scale for all panels: use "
                             "scale='shared' (or leave scale='auto')")
        if not vmin < vmax:
            raise ValueError(f"vmin must be < vmax, got {vmin} and {vmax}")
        if signed and not math.isclose(vmin, -vmax):
            raise ValueError(f"a signed scale is centred on 0: vmin = -vmax, "
                             f"got {vmin} and {vmax}")
        return [ColourScale(float(vmin), float(vmax), signed, True) for _ in panels]
    magnitudes = [_magnitude(p, signed) for p in panels]
    if scale == "auto":
        nonzero = [m for m in magnitudes if m > 0]
        scale = ("shared" if not nonzero or max(nonzero) <= AUTO_SHARED_RATIO
                 * min(nonzero) else "panel")
    shared = scale == "shared"
    scales = []
    for panel, magnitude in zip(panels, magnitudes, strict=True):
        if signed:
            limit = (max(magnitudes) if shared else magnitude) or 1.0
            scales.append(ColourScale(-limit, limit, True, shared))
        else:
            low = min(float(p.min()) for p in panels) if shared else float(panel.min())
            high = max(float(p.max()) for p in panels) if shared else float(panel.max())
            scales.append(ColourScale(low, high if high > low else low + 1.0, False,
                                      shared))
    return scales


def strongest_channels(maps, count: int = 8, *, by: str = "mean_abs") -> list[int]:
    """Indices of the ``count`` channels of (C, H, W) or (1, C, H, W) ``maps`` with the
    largest mean |activation| (``by="mean_abs"``) or spatial standard deviation
    (``by="std"``), strongest first (ties: lower index first).

    A stated rule for choosing which channels a figure shows ("the 8 channels with the
    largest mean |activation|") instead of a grid of 64 faint panels.
    """
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(maps)
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a tensor or array, got {type(maps).__name__}")
    if maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.dim() != 3:
        raise ValueError(f"maps must have shape (C, H, W) or (1, C, H, W), "
                         f"got {tuple(maps.shape)}")
    count = validate.integer(count, "count", 1)
    if count > maps.shape[0]:
        raise ValueError(f"count must be at most the {maps.shape[0]} channels, "
                         f"got {count}")
    flat = maps.detach().double().flatten(1)
    if by == "mean_abs":
        score = flat.abs().mean(1)
    elif by == "std":
        score = flat.std(1, unbiased=False)
    else:
        raise ValueError(f"by must be 'mean_abs' or 'std', got {by!r}")
    order = sorted(range(len(score)), key=lambda i: (-float(score[i]), i))
    return order[:count]


def image_grid(
    panels: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    title: str = "",
    cmap: str | None = None,
    scale: str = "auto",
    signed: bool | None = None,
    symmetric: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    panel_size: float = 1.8,
    colorbar_label: str = "",
) -> Figure:
    """Lay out 2-D (or RGB) panels on a grid, coloured by the course's colour-scale rule.

    ``scale``: ``"auto"``, ``"panel"`` or ``"shared"`` (module docstring). ``signed``:
    None decides from the data; ``symmetric=True`` is the older spelling of
    ``signed=True``. ``cmap`` defaults to ``DIVERGING`` for signed data and
    ``SEQUENTIAL`` otherwise. Signed panels always get colour bars (one per panel, or
    one labelled "one scale for all panels"); ``colorbar`` turns them off only for
    unsigned data. The figure is at most ``MAX_FIGURE_WIDTH`` inches wide. RGB panels
    (H, W, 3) are shown as they are, clipped to [0, 1].
    """
    if isinstance(panels, (torch.Tensor, np.ndarray)):
        panels = _as_panels(panels, "panels")
    if not isinstance(panels, (list, tuple)) or not panels:
        raise ValueError("nothing to show: panels must be a non-empty list of arrays")
    panels = [to_numpy_image(p) for p in panels]
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"got {len(titles)} titles for {len(panels)} panels")
    ncols = validate.integer(ncols, "ncols", 1)
    panel_size = validate.real(panel_size, "panel_size", minimum=0.3)
    gray_index = [i for i, p in enumerate(panels) if p.ndim == 2]
    signed = True if symmetric else signed
    scales: dict[int, ColourScale] = {}
    if gray_index:
        found = colour_scales([panels[i] for i in gray_index], scale=scale,
                              signed=signed, vmin=vmin, vmax=vmax)
        scales = dict(zip(gray_index, found, strict=True))
    any_signed = any(s.signed for s in scales.values())
    if any_signed and not colorbar:
        raise ValueError("signed panels need their colour bar (the course's colour-scale "
                         "rule): leave colorbar=True")
    shared = all(s.shared for s in scales.values())
    per_panel_bars = colorbar and scales and not shared
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    extra = 0.6 if colorbar and scales and shared else 0.0
    bar_factor = 1.25 if per_panel_bars else 1.0  # room for a colour bar per panel
    size = min(panel_size, (MAX_FIGURE_WIDTH - extra) / (ncols * bar_factor))
    title_lines = (titles is not None) + bool(per_panel_bars)  # name, stated scale
    title_room = 0.1 + 0.2 * title_lines
    fig, axes = plt.subplots(
        nrows, ncols, squeeze=False, layout="constrained",
        figsize=(size * bar_factor * ncols + extra,
                 (size + title_room) * nrows + (0.4 if title else 0)),
    )
    mappable = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(panels):
            continue
        panel = panels[i]
        label = titles[i] if titles is not None else ""
        if panel.ndim == 2:
            colour = scales[i]
            map_name = cmap or (DIVERGING if colour.signed else SEQUENTIAL)
            mappable = ax.imshow(panel, cmap=map_name, norm=colour.norm,
                                 interpolation="nearest")
            if not colour.shared:
                label = f"{label}\n{colour.label}" if label else colour.label
                if colorbar:
                    fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
        else:
            ax.imshow(np.clip(panel, 0, 1), interpolation="nearest")
        if label:
            ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title)
    if colorbar and mappable is not None and shared:
        note = f"{colorbar_label} ({_SHARED_NOTE})" if colorbar_label else _SHARED_NOTE
        fig.colorbar(mappable, ax=axes, shrink=0.8, label=note)
    return fig


def show_kernels(
    kernels, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "Kernels", colorbar: bool = True, scale: str = "auto",
    panel_size: float = 1.4,
) -> Figure:
    """Kernels (N, k, k) or (N, 1, k, k) on a diverging scale centred on 0.

    ``scale`` follows the course's rule (module docstring): "auto" gives each kernel
    its own ±m when their largest weights differ more than 2×.
    """
    return image_grid(_as_panels(kernels, "kernels"), titles=titles, ncols=ncols,
                      title=title, signed=True, colorbar=colorbar, scale=scale,
                      colorbar_label="weight", panel_size=panel_size)


def show_feature_maps(
    maps, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "Feature maps", signed: bool | None = None, colorbar: bool = True,
    panel_size: float = 1.4, scale: str = "auto",
) -> Figure:
    """Feature maps (C, H, W) or (1, C, H, W), coloured by the course's rule.

    Signed maps (before a ReLU; ``signed=None`` decides from the data) use the
    diverging map centred on 0, maps ≥ 0 a sequential one (viridis). ``scale``:
    "auto", "panel" or "shared" (module docstring). To show a few channels of many,
    pick them with ``strongest_channels`` and say so in the title.
    """
    if isinstance(maps, torch.Tensor) and maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if isinstance(maps, torch.Tensor) and maps.dim() == 3:
        panels = [m.detach().cpu().numpy() for m in maps]
    else:
        panels = _as_panels(maps, "maps")
    if signed is False and any(float(p.min()) < 0 for p in panels):
        raise ValueError("signed=False but the maps hold negative values: use "
                         "signed=True or None (a diverging map centred on 0)")
    return image_grid(panels, titles=titles, ncols=ncols, title=title, signed=signed,
                      colorbar=colorbar, panel_size=panel_size, scale=scale,
                      colorbar_label="activation")


def show_images(
    images, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "", cmap: str = "gray", panel_size: float = 2.0,
    colorbar: bool = False, scale: str = "shared",
) -> Figure:
    """Images (N, H, W), (N, 1, H, W), (N, 3, H, W) or a list of them; RGB in [0, 1].

    Grey images share one grey scale by default (``scale="shared"``: equal greys are
    equal intensities, as in photographs); pass ``scale="panel"`` to stretch each.
    """
    return image_grid(_as_panels(images, "images"), titles=titles, ncols=ncols,
                      title=title, cmap=cmap, panel_size=panel_size, colorbar=colorbar,
                      scale=scale, signed=False)


def show_rgb_kernels(
    kernels, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "RGB kernels",
) -> Figure:
    """First-layer kernels (N, 3, k, k) as colour images.

    All kernels share one scale: w ↦ 0.5 + w / (2·max|w|), so mid-grey is zero, and a
    kernel that is red where it weighs the red channel positively shows red there.
    """
    if not isinstance(kernels, torch.Tensor) or kernels.dim() != 4 or kernels.shape[1] != 3:
        shape = tuple(kernels.shape) if hasattr(kernels, "shape") else type(kernels).__name__
        raise ValueError(f"kernels must be a tensor of shape (N, 3, k, k), got {shape}")
    limit = float(kernels.abs().max()) or 1.0
    scaled = 0.5 + kernels.detach().cpu() / (2 * limit)
    return image_grid(_as_panels(scaled, "kernels"), titles=titles, ncols=ncols,
                      title=title, panel_size=1.0)


def show_attributions(
    images, maps: dict[str, torch.Tensor], *, row_titles: Sequence[str] | None = None,
    title: str = "", panel_size: float = 1.5, alpha: float = 0.6,
    overlay: bool = False, scale: str = "auto",
) -> Figure:
    """Attribution maps of several methods beside the images they explain.

    ``images``: (N, H, W) grey or (N, 3, H, W) RGB in [0, 1]. ``maps``: method name →
    (N, H, W) map (sum a (N, C, H, W) attribution over channels first). Signed maps
    use the diverging map centred on 0, maps ≥ 0 a sequential one. ``scale`` applies
    the course's rule within each method's column: "shared" (one colour bar under the
    column, "one scale for all panels"), "panel" (each map its own scale, stated in
    its title, with its own colour bar) or "auto" (per map when the images' maps
    differ more than 2× in magnitude). With ``overlay=True`` maps are drawn over a
    grey copy of the image with transparency ``alpha``; by default they are drawn
    alone, so that white (zero) never blends with a bright image.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4):
        panels = [to_numpy_image(image) for image in images]  # one panel per image
    else:
        panels = _as_panels(images, "images")
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict of method name -> (N, H, W)")
    alpha = validate.real(alpha, "alpha", minimum=0.0)
    if alpha > 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    arrays = {}
    for name, values in maps.items():
        array = values.detach().cpu().double().numpy() if isinstance(
            values, torch.Tensor) else np.asarray(values, dtype=np.float64)
        if array.shape != (len(panels), *panels[0].shape[:2]):
            raise ValueError(f"map {name!r} has shape {array.shape}; expected "
                             f"{(len(panels), *panels[0].shape[:2])}")
        if not np.isfinite(array).all():
            raise ValueError(f"map {name!r} holds NaN or infinite values")
        arrays[name] = array
    if row_titles is not None and len(row_titles) != len(panels):
        raise ValueError(f"got {len(row_titles)} row titles for {len(panels)} images")
    nrows, ncols = len(panels), len(arrays) + 1
    width = min(panel_size * ncols * 1.15 + 0.3, MAX_FIGURE_WIDTH)
    size = (width - 0.3) / ncols / 1.15
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(width, (size + 0.45) * nrows
                                      + (0.8 if title else 0.5)))
    column_scales = {name: colour_scales(list(array), scale=scale)
                     for name, array in arrays.items()}
    for row, panel in enumerate(panels):
        grey = panel if panel.ndim == 2 else panel @ np.array([0.299, 0.587, 0.114])
        axes[row, 0].imshow(np.clip(panel, 0, 1), cmap="gray", vmin=0, vmax=1,
                            interpolation="nearest")
        axes[row, 0].set_title(row_titles[row] if row_titles else "image", fontsize=9)
        for column, (name, array) in enumerate(arrays.items(), start=1):
            colour = column_scales[name][row]
            ax = axes[row, column]
            if overlay:
                ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            shown = ax.imshow(array[row], cmap=DIVERGING if colour.signed else SEQUENTIAL,
                              norm=colour.norm, alpha=alpha if overlay else None,
                              interpolation="nearest")
            heading = name if row == 0 else ""
            if not colour.shared:
                heading = f"{heading}\n{colour.label}" if heading else colour.label
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
            elif row == nrows - 1:
                fig.colorbar(shown, ax=axes[:, column], orientation="horizontal",
                             fraction=0.05, pad=0.02, aspect=12,
                             label="one scale for this column")
            if heading:
                ax.set_title(heading, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
