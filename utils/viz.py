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

__all__ = ["image_grid", "show_kernels", "show_feature_maps", "show_images",
           "show_rgb_kernels", "to_numpy_image"]

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
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
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
