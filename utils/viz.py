"""Grids of kernels, feature maps and images that return the matplotlib ``Figure``.

Signed data (kernels, pre-activation feature maps) use a diverging, perceptually
uniform colour map on one symmetric scale shared by every panel, so equal colours mean
equal values and white means zero. Used from ``chapters/02_classic_kernels.ipynb`` on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import validate

__all__ = ["image_grid", "show_kernels", "show_feature_maps", "show_images",
           "show_rgb_kernels", "show_attributions", "to_numpy_image"]

DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) stays; (1, H, W) → (H, W); (3, H, W) CHW → (H, W, 3) for matplotlib."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a tensor or array, got {type(image).__name__}")
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected (H, W), (1, H, W) or (3, H, W), got {array.shape}")
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


def image_grid(
    panels: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    title: str = "",
    cmap: str = "gray",
    symmetric: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = False,
    panel_size: float = 1.4,
    colorbar_label: str = "",
) -> Figure:
    """Lay out 2-D panels (or RGB panels) on a grid with one shared colour scale.

    With ``symmetric=True`` the scale is [−m, m] with m the largest absolute value over
    all panels, so zero sits at the centre of a diverging colour map.
    """
    if not panels:
        raise ValueError("nothing to show: panels is empty")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"got {len(titles)} titles for {len(panels)} panels")
    ncols = validate.integer(ncols, "ncols", 1)
    gray = [p for p in panels if p.ndim == 2]
    if gray and symmetric and vmin is None and vmax is None:
        limit = max(float(np.abs(p).max()) for p in gray) or 1.0
        vmin, vmax = -limit, limit
    elif gray and vmin is None and vmax is None:
        vmin = min(float(p.min()) for p in gray)
        vmax = max(float(p.max()) for p in gray)
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols + (0.8 if colorbar else 0),
                               panel_size * nrows + (0.5 if title else 0)),
        squeeze=False, layout="constrained",
    )
    mappable = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(panels):
            continue
        panel = panels[i]
        if panel.ndim == 2:
            mappable = ax.imshow(panel, cmap=cmap, vmin=vmin, vmax=vmax,
                                 interpolation="nearest")
        else:
            ax.imshow(np.clip(panel, 0, 1), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    if colorbar and mappable is not None:
        fig.colorbar(mappable, ax=axes, shrink=0.8, label=colorbar_label)
    return fig


def show_kernels(
    kernels, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "Kernels", colorbar: bool = True,
) -> Figure:
    """Kernels (N, k, k) or (N, 1, k, k) on one symmetric diverging scale (white = 0)."""
    return image_grid(_as_panels(kernels, "kernels"), titles=titles, ncols=ncols,
                      title=title, cmap=DIVERGING, symmetric=True, colorbar=colorbar,
                      colorbar_label="weight")


def show_feature_maps(
    maps, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "Feature maps", signed: bool = False, colorbar: bool = True,
    panel_size: float = 1.4,
) -> Figure:
    """Feature maps (C, H, W) or (1, C, H, W) on one shared scale.

    ``signed=True`` (maps before a ReLU) uses the symmetric diverging scale; otherwise
    a sequential, perceptually uniform map (viridis).
    """
    if isinstance(maps, torch.Tensor) and maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if isinstance(maps, torch.Tensor) and maps.dim() == 3:
        panels = [m.detach().cpu().numpy() for m in maps]
    else:
        panels = _as_panels(maps, "maps")
    return image_grid(panels, titles=titles, ncols=ncols, title=title,
                      cmap=DIVERGING if signed else SEQUENTIAL, symmetric=signed,
                      colorbar=colorbar, panel_size=panel_size,
                      colorbar_label="activation")


def show_images(
    images, *, titles: Sequence[str] | None = None, ncols: int = 8,
    title: str = "", cmap: str = "gray", panel_size: float = 2.0,
    colorbar: bool = False,
) -> Figure:
    """Images (N, H, W), (N, 1, H, W), (N, 3, H, W) or a list of them; RGB in [0, 1]."""
    return image_grid(_as_panels(images, "images"), titles=titles, ncols=ncols,
                      title=title, cmap=cmap, panel_size=panel_size, colorbar=colorbar)


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
) -> Figure:
    """Attribution maps of several methods beside the images they explain.

    ``images``: (N, H, W) grey or (N, 3, H, W) RGB in [0, 1]. ``maps``: method name →
    (N, H, W) map (sum a (N, C, H, W) attribution over channels first). Each method
    gets one colour scale for all its images, with a colour bar: symmetric and
    diverging (white = 0) for a signed map, [0, max] sequential for a map ≥ 0. Maps are
    drawn over a grey copy of the image with transparency ``alpha``.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim in (3, 4):
        panels = [to_numpy_image(image) for image in images]  # one panel per image
    else:
        panels = _as_panels(images, "images")
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict of method name -> (N, H, W)")
    arrays = {}
    for name, values in maps.items():
        array = values.detach().cpu().double().numpy() if isinstance(
            values, torch.Tensor) else np.asarray(values, dtype=np.float64)
        if array.shape != (len(panels), *panels[0].shape[:2]):
            raise ValueError(f"map {name!r} has shape {array.shape}; expected "
                             f"{(len(panels), *panels[0].shape[:2])}")
        arrays[name] = array
    if row_titles is not None and len(row_titles) != len(panels):
        raise ValueError(f"got {len(row_titles)} row titles for {len(panels)} images")
    nrows, ncols = len(panels), len(arrays) + 1
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(panel_size * ncols + 0.3,
                                      panel_size * nrows + (0.8 if title else 0.5)))
    for row, panel in enumerate(panels):
        grey = panel if panel.ndim == 2 else panel @ np.array([0.299, 0.587, 0.114])
        axes[row, 0].imshow(np.clip(panel, 0, 1), cmap="gray", vmin=0, vmax=1,
                            interpolation="nearest")
        axes[row, 0].set_title(row_titles[row] if row_titles else "image", fontsize=8)
        for column, (name, array) in enumerate(arrays.items(), start=1):
            signed = bool((array < 0).any())
            limit = float(np.abs(array).max()) or 1.0
            ax = axes[row, column]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            shown = ax.imshow(array[row], cmap=DIVERGING if signed else SEQUENTIAL,
                              vmin=-limit if signed else 0.0, vmax=limit, alpha=alpha,
                              interpolation="nearest")
            if row == 0:
                ax.set_title(name, fontsize=9)
            if row == nrows - 1:
                fig.colorbar(shown, ax=axes[:, column], orientation="horizontal",
                             fraction=0.05, pad=0.02, aspect=12)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
