"""Shift invariance and blur pooling: low-pass filtering before subsampling.

Max-pooling and strided layers keep one sample in every ``stride`` without first
removing the frequencies that the coarser grid cannot hold, so they alias, and a
one-pixel shift of the input can change their output completely. BlurPool (Zhang 2019,
"Making convolutional networks shift-invariant again") evaluates the max densely
(stride 1), blurs with a small binomial kernel (the integer Gaussians of chapter 2),
and only then subsamples. Derived in ``chapters/08_shift_invariance.ipynb``; every
function is checked in ``tests/test_antialias.py`` against SciPy and PyTorch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import validate

__all__ = ["binomial_1d", "binomial_kernel", "BlurPool2d", "DenseMax2d", "max_blur_pool",
           "circular_padding", "antialias_vgg16",
           "circular_shifts", "shift_agreement", "bootstrap_ci"]


def binomial_1d(size: int) -> torch.Tensor:
    """Row ``size − 1`` of Pascal's triangle, normalised to sum 1 (float64):
    size 1 → [1], 3 → [1, 2, 1]/4, 5 → [1, 4, 6, 4, 1]/16.

    It is the ``size − 1``-fold convolution of [1/2, 1/2] with itself, a Gaussian of
    variance (size − 1)/4 in the limit; its frequency response is cos(πf)^(size−1)
    (f in cycles per sample), which is 0 at the Nyquist frequency f = 1/2.
    """
    size = validate.odd_size(size)
    row = torch.tensor([math.comb(size - 1, i) for i in range(size)],
                       dtype=torch.float64)
    return row / row.sum()


def binomial_kernel(size: int) -> torch.Tensor:
    """The 2-D binomial blur (size, size), float32: the outer product of two
    ``binomial_1d(size)``. Size 3 is chapter 2's [[1,2,1],[2,4,2],[1,2,1]]/16."""
    row = binomial_1d(size)
    return torch.outer(row, row).float()


def _check_mode(padding_mode: str) -> str:
    if padding_mode not in ("reflect", "circular"):
        raise ValueError(f"padding_mode must be 'reflect' or 'circular', got "
                         f"{padding_mode!r}")
    return padding_mode


def _check_kernel(kernel: torch.Tensor) -> torch.Tensor:
    kernel = validate.tensor(kernel, "kernel", ("k", "k"))
    size = kernel.shape[0]
    if kernel.shape[1] != size or size % 2 == 0:
        raise ValueError(f"kernel must be square with an odd side (3×3, 5×5, ...), got "
                         f"shape {tuple(kernel.shape)}")
    if not torch.isfinite(kernel).all():
        raise ValueError("kernel must hold finite numbers")
    total = float(kernel.double().sum())
    if abs(total - 1) > 1e-5:
        raise ValueError(f"kernel must sum to 1 (a blur keeps flat regions as they are), "
                         f"got a sum of {total:.6g}")
    return kernel.detach().clone()


class BlurPool2d(nn.Module):
    """Blur each channel with ``kernel`` (k×k, odd, summing to 1), then keep every
    ``stride``-th row and column: y = (pad_reflect(x) ⋆ kernel)[:, :, ::s, ::s].

    The same kernel filters every channel (a depthwise convolution); the input is
    padded by (k − 1)/2 on each side, by reflection as in Zhang's BlurPool
    (``padding_mode="reflect"``) or by wrapping around (``"circular"``), so an H×W
    input gives ⌈H/s⌉×⌈W/s⌉. ``kernel`` of size 1 (``[[1.]]``) is plain subsampling.
    """

    def __init__(self, kernel: torch.Tensor, stride: int = 2,
                 padding_mode: str = "reflect"):
        super().__init__()
        self.register_buffer("kernel", _check_kernel(kernel))
        self.stride = validate.integer(stride, "stride", 1)
        self.padding_mode = _check_mode(padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", "NCHW")
        size = self.kernel.shape[0]
        pad = size // 2
        if pad and min(x.shape[-2:]) <= pad:
            raise ValueError(
                f"{self.padding_mode} padding by {pad} needs feature maps larger than "
                f"{pad} pixels, got {tuple(x.shape[-2:])}; use a smaller kernel or input")
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, size, size)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode=self.padding_mode)
        return F.conv2d(x, weight, stride=self.stride, groups=channels)

    def extra_repr(self) -> str:
        size = self.kernel.shape[0]
        return f"kernel={size}×{size}, stride={self.stride}, {self.padding_mode}"


class DenseMax2d(nn.Module):
    """The 2×2 maximum at every position (stride 1): y[i, j] = max(x[i, j], x[i+1, j],
    x[i, j+1], x[i+1, j+1]), so an H×W input gives (H − 1)×(W − 1), exactly
    ``F.max_pool2d(x, 2, 1)``. Computed as two elementwise maxima of shifted views
    (first along the width, then along the height), which PyTorch runs faster on the
    CPU than its stride-1 max-pool; the result is identical (a max does not round).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = validate.tensor(x, "x", "NCHW")
        if min(x.shape[-2:]) < 2:
            raise ValueError(f"a 2×2 maximum needs maps of at least 2×2 pixels, got "
                             f"{tuple(x.shape[-2:])}")
        wide = torch.maximum(x[..., :, :-1], x[..., :, 1:])
        return torch.maximum(wide[..., :-1, :], wide[..., 1:, :])


def max_blur_pool(kernel: torch.Tensor, stride: int = 2,
                  padding_mode: str = "reflect") -> nn.Sequential:
    """Zhang's MaxBlurPool, the anti-aliased ``nn.MaxPool2d(2, stride)``: a 2×2 max
    with stride 1 (``DenseMax2d``), then ``BlurPool2d(kernel, stride, padding_mode)``.

    With ``"reflect"`` (Zhang's choice) the dense max drops one row and column, so an
    H×W input gives ⌈(H − 1)/s⌉×⌈(W − 1)/s⌉ (H/2×W/2 for s = 2 and even sizes).
    With ``"circular"`` the input is first wrapped by one row and column, so every
    layer commutes exactly with circular shifts by multiples of its stride. Either
    way, ``kernel = [[1.]]`` gives ``nn.MaxPool2d(2, stride)`` exactly (even sizes).
    """
    padding_mode = _check_mode(padding_mode)
    layers = [nn.CircularPad2d((0, 1, 0, 1))] if padding_mode == "circular" else []
    return nn.Sequential(*layers, DenseMax2d(), BlurPool2d(kernel, stride, padding_mode))


def _check_features(features: nn.Sequential) -> None:
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"features must be an nn.Sequential, got "
                        f"{type(features).__name__}")


def circular_padding(features: nn.Sequential) -> nn.Sequential:
    """A copy of ``features`` in which every ``nn.Conv2d`` pads by wrapping around
    (``padding_mode="circular"``) instead of with zeros; same weights.

    A stride-1 convolution with circular padding commutes exactly with circular
    shifts of its input (``torch.roll``), so in such a network only subsampling can
    break shift invariance. ``features`` itself is unchanged.
    """
    _check_features(features)
    wrapped = copy.deepcopy(features)
    for module in wrapped.modules():
        if isinstance(module, nn.Conv2d):
            module.padding_mode = "circular"
    return wrapped


def antialias_vgg16(features: nn.Sequential, kernel: torch.Tensor,
                    padding_mode: str = "reflect") -> nn.Sequential:
    """A copy of VGG16's ``features`` with every ``nn.MaxPool2d(2, 2)`` replaced by
    ``max_blur_pool(kernel, 2, padding_mode)``: the same weights, the same number of
    entries (each pool becomes one ``nn.Sequential``, so indices such as
    ``probe.PROBE_LAYER`` keep their meaning); ``features`` itself is unchanged."""
    _check_features(features)
    _check_kernel(kernel)
    _check_mode(padding_mode)
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    if not pools:
        raise ValueError("features has no nn.MaxPool2d to replace")
    for i in pools:
        pool = features[i]
        if (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode) \
                not in ((2, 2, 0, 1, False), ((2, 2), (2, 2), 0, 1, False)):
            raise ValueError(f"layer {i} is {pool}; only nn.MaxPool2d(2, 2) (VGG16's "
                             f"pools) can be replaced")
    blurred = copy.deepcopy(features)
    for i in pools:
        blurred[i] = max_blur_pool(kernel, 2, padding_mode)
    return blurred


def circular_shifts(images: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """The images rolled (``torch.roll``) by t pixels down and t to the right, for
    every t in ``offsets``: a (len(offsets), N, C, H, W) tensor. What leaves at the
    bottom or right comes back at the top or left, so no pixel is lost and a network
    that commutes with circular shifts and then averages over positions gives the
    same output for every t."""
    images = validate.tensor(images, "images", "NCHW")
    if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Sequence) \
            or not offsets:
        raise ValueError(f"offsets must be a non-empty sequence of ints, got {offsets!r}")
    offsets = [validate.integer(t, "every offset", 0) for t in offsets]
    validate.allocation((len(offsets), *images.shape), images.dtype,
                        "the shifted images")
    return torch.stack([images.roll((t, t), dims=(-2, -1)) for t in offsets])


def shift_agreement(outputs: torch.Tensor, measure: str) -> torch.Tensor:
    """How much outputs agree between copies of an image shifted d pixels apart.

    ``outputs`` holds one output per shift t = 0..T and image: class indices
    (T + 1, N) for ``measure="same_class"``, or feature vectors (T + 1, N, D) for
    ``measure="cosine"``. Returns (T, N): row d − 1 is, for each image, the mean over
    the T + 1 − d pairs (t, t + d) of 1[class equal] or of the cosine similarity
    ⟨a, b⟩/(|a||b|).
    """
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"outputs must be a torch.Tensor, got {type(outputs).__name__}")
    if measure == "same_class":
        if outputs.dim() != 2 or outputs.is_floating_point():
            raise ValueError(f"same_class needs integer class indices of shape (T + 1, "
                             f"N), got {outputs.dtype} {tuple(outputs.shape)}")
    elif measure == "cosine":
        validate.tensor(outputs, "outputs", ("T + 1", "N", "D"))
    else:
        raise ValueError(f"measure must be 'same_class' or 'cosine', got {measure!r}")
    if outputs.shape[0] < 2 or outputs.shape[1] == 0:
        raise ValueError(f"outputs needs at least 2 offsets and 1 image, got shape "
                         f"{tuple(outputs.shape)}")
    steps = outputs.shape[0]
    rows = []
    for d in range(1, steps):
        a, b = outputs[:-d], outputs[d:]
        if measure == "same_class":
            rows.append((a == b).double().mean(0))
        else:
            rows.append(F.cosine_similarity(a.double(), b.double(), dim=-1).mean(0))
    return torch.stack(rows)


def bootstrap_ci(values: torch.Tensor, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` (N,) and a percentile-bootstrap confidence interval:
    resample the N values with replacement ``resamples`` times (a generator seeded
    with ``seed``), and take the (1 − level)/2 and (1 + level)/2 quantiles of the
    resampled means. Returns (mean, low, high)."""
    values = validate.tensor(values, "values", "N").double()
    level = validate.real(level, "level", positive=True)
    if level >= 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    resamples = validate.integer(resamples, "resamples", 1)
    validate.allocation((resamples, values.shape[0]), torch.float64,
                        "the bootstrap resamples")
    generator = torch.Generator().manual_seed(validate.integer(seed, "seed"))
    picks = torch.randint(values.shape[0], (resamples, values.shape[0]),
                          generator=generator)
    means = values[picks].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(values.mean()), float(low), float(high)
