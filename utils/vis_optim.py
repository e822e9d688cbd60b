"""Activation maximisation: what input makes one channel of a CNN respond most?

Gradient ascent on the input image, plain or regularised (jitter, blur, L2 and total
variation penalties, as in Olah et al., Distill 2017), plus the ImageNet normalisation a
pretrained VGG16 expects and the preprocessing of a photograph for it. Explained in
``chapters/06_vgg16_feature_maps.ipynb``; the Fourier-parameterised, decorrelated,
transformation-robust version (``fourier_feature_visualisation``) in
``chapters/07_attribution.ipynb``. Tested in ``tests/test_vis_optim.py``.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .data import centre_square
from .kernels import gaussian_blur
from .models import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "imagenet_normalise", "imagenet_denormalise", "preprocess_for_vgg",
    "total_variation", "high_frequency_fraction",
    "AscentResult", "activation_maximisation", "fourier_feature_visualisation",
]


def _check_image_batch(x: object, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (3, H, W) or (N, 3, H, W), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}")
    return x


def _mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(shape)
    return mean, std


def imagenet_normalise(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → what ImageNet-trained networks expect: (x − mean) / std per
    channel, with mean = (0.485, 0.456, 0.406) and std = (0.229, 0.224, 0.225).

    Takes (3, H, W) or (N, 3, H, W) float tensors; the inverse is
    ``imagenet_denormalise``.
    """
    image = _check_image_batch(image, "image")
    mean, std = _mean_std(image)
    return (image - mean) / std


def imagenet_denormalise(x: torch.Tensor) -> torch.Tensor:
    """Undo ``imagenet_normalise``: x · std + mean per channel, back to RGB in [0, 1]
    for display (not clipped; clip with ``.clamp(0, 1)`` before showing)."""
    x = _check_image_batch(x, "x")
    mean, std = _mean_std(x)
    return x * std + mean


def preprocess_for_vgg(
    image: torch.Tensor | np.ndarray, size: int = 224
) -> torch.Tensor:
    """A photograph → a (1, 3, size, size) batch ready for VGG16.

    ``image`` is either a float tensor (3, H, W) with values in [0, 1] (as from
    ``utils.data.sample_image``) or a uint8 array (H, W, 3) as image libraries load
    it (RGB order: convert OpenCV's BGR first). The image is centre-cropped to a
    square, resized to ``size``×``size`` (bilinear, antialiased) and normalised with
    ``imagenet_normalise``. Float input outside [0, 1] raises ``ValueError``: it is
    almost always a 0–255 image that was not divided by 255.
    """
    size = validate.integer(size, "size", 1)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("a NumPy image must be uint8 with shape (H, W, 3), got "
                             f"{image.dtype} {image.shape}")
        image = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a tensor or a NumPy array, got "
                        f"{type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"a tensor image must be float in [0, 1], got {image.dtype}")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"image values must lie in [0, 1], got [{low:.3g}, "
                         f"{high:.3g}]; divide a 0-255 image by 255 first")
    return imagenet_normalise(centre_square(image, size)[None])


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of (N, C, H, W) ``x``:
    mean((x[..., i+1, j] − x[..., i, j])²) + mean((x[..., i, j+1] − x[..., i, j])²).

    Large for high-frequency noise, small for smooth images: a frequency penalty.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, C, H, W), got {shape}")
    vertical = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return vertical + horizontal


def high_frequency_fraction(image: torch.Tensor, cutoff: float = 0.25) -> float:
    """Share of an image's spectral power at spatial frequencies above ``cutoff``
    cycles per pixel (the Nyquist limit is 0.5), after removing each channel's mean.

    With fx, fy from ``torch.fft.fftfreq``: Σ_{√(fx²+fy²) > cutoff} |FFT|² / Σ |FFT|².
    White noise gives about 1 − π·cutoff² (0.80 for 0.25); smooth images give
    values near 0. Takes (H, W), (C, H, W) or (1, C, H, W).
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() == 2:
        image = image[None]
    if image.dim() != 3:
        raise ValueError(f"image must have shape (H, W), (C, H, W) or (1, C, H, W), "
                         f"got {tuple(image.shape)}")
    if not 0 < cutoff < 0.5 * math.sqrt(2):
        raise ValueError(f"cutoff must be in (0, 0.707) cycles per pixel, got {cutoff}")
    data = image.detach().double().cpu()
    data = data - data.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(data).abs().pow(2).sum(0)
    fy = torch.fft.fftfreq(data.shape[-2], dtype=torch.float64)
    fx = torch.fft.fftfreq(data.shape[-1], dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    total = float(power.sum())
    if total == 0.0:
        return 0.0
    return float(power[radius > cutoff].sum()) / total


class AscentResult(NamedTuple):
    """What ``activation_maximisation`` returns.

    ``image``: the optimised input as RGB (3, H, W) in [0, 1] for display;
    ``normalised``: the same as the (1, 3, H, W) tensor the network saw;
    ``history``: the channel's mean activation before each step and after the last.
    """

    image: torch.Tensor
    normalised: torch.Tensor
    history: list[float]


def activation_maximisation(
    model: nn.Module,
    channel: int,
    *,
    image_size: int = 96,
    steps: int = 64,
    lr: float = 0.05,
    jitter: int = 0,
    blur_sigma: float = 0.0,
    blur_every: int = 4,
    l2: float = 0.0,
    tv: float = 0.0,
    init_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> AscentResult:
    """Gradient ascent on the input to maximise the mean activation of one channel.

    ``model`` maps a normalised (1, 3, H, W) image to (1, C, h, w) feature maps (use
    ``truncate_after`` so nothing deeper than the target layer runs). Starting from a
    grey image plus uniform noise of standard deviation ``init_std`` (in [0, 1] pixel
    units), each of ``steps`` Adam steps with learning rate ``lr`` maximises

        objective(x) = mean(model(roll(x, dy, dx))[0, channel]) − l2·mean(x²) − tv·TV(x)

    where (dy, dx) is a random shift in [−jitter, jitter] (jitter = 0: none), and
    every ``blur_every`` steps x is blurred with a Gaussian of ``blur_sigma`` (0:
    never). After each step x is clipped to the normalised image of [0, 1] pixels.
    All defaults of the regularisers are 0, which is plain gradient ascent: its
    result is high-frequency noise that the network likes but no photo contains.
    Every random number comes from a ``torch.Generator`` seeded with ``seed``, so a
    run is deterministic. The ascent runs in ``dtype`` on a copy of the model (float64
    by default): ascent through ReLUs and max pooling is chaotic, and in float32 the
    last-bit differences between CPUs grow into visibly different images within a few
    dozen steps; in float64 they stay invisible, at 2–3× the run time. The model's
    weights are not changed and get no gradient.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channel = validate.integer(channel, "channel", 0)
    image_size = validate.integer(image_size, "image_size", 8)
    steps = validate.integer(steps, "steps", 1)
    blur_every = validate.integer(blur_every, "blur_every", 1)
    jitter = validate.integer(jitter, "jitter", 0)
    if jitter >= image_size // 2:
        raise ValueError(f"jitter must be < image_size // 2 = {image_size // 2}, "
                         f"got {jitter}")
    lr = validate.real(lr, "lr", minimum=0)
    if lr == 0:
        raise ValueError("lr must be > 0")
    blur_sigma = validate.real(blur_sigma, "blur_sigma", minimum=0)
    l2 = validate.real(l2, "l2", minimum=0)
    tv = validate.real(tv, "tv", minimum=0)
    init_std = validate.real(init_std, "init_std", minimum=0)
    validate.integer(seed, "seed", 0)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if parameter is not None and parameter.dtype != dtype:
        model = copy.deepcopy(model).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 3, image_size, image_size)
    # Uniform noise with standard deviation init_std: torch.rand gives the same bits
    # on every CPU, torch.randn's vectorised kernels do not (and ascent amplifies them).
    uniform = torch.rand(shape, generator=generator)
    start = 0.5 + init_std * math.sqrt(3.0) * (2.0 * uniform - 1.0)
    x = imagenet_normalise(start.clamp(0.0, 1.0)).to(device, dtype).requires_grad_(True)
    mean, std = _mean_std(x)
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    optimiser = torch.optim.Adam([x], lr=lr)

    def channel_mean(image: torch.Tensor) -> torch.Tensor:
        output = model(image)
        if output.dim() != 4 or not channel < output.shape[1]:
            raise ValueError(f"model output has shape {tuple(output.shape)}; channel "
                             f"{channel} does not exist")
        return output[0, channel].mean()

    history = []
    for step in range(steps):
        shifted = x
        if jitter:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator)
            shifted = torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
        activation = channel_mean(shifted)
        history.append(float(activation.detach()))
        objective = activation
        if l2:
            objective = objective - l2 * x.pow(2).mean()
        if tv:
            objective = objective - tv * total_variation(x)
        (gradient,) = torch.autograd.grad(objective, x)
        optimiser.zero_grad()
        x.grad = -gradient  # Adam minimises: ascend the objective
        optimiser.step()
        with torch.no_grad():
            if blur_sigma and (step + 1) % blur_every == 0:
                x.copy_(gaussian_blur(x, blur_sigma))
            x.copy_(torch.maximum(torch.minimum(x, high), low))
    with torch.no_grad():
        history.append(float(channel_mean(x)))
    final = x.detach()
    image = imagenet_denormalise(final)[0].clamp(0.0, 1.0).float().cpu()
    return AscentResult(image=image, normalised=final.float().cpu(), history=history)


# Lucid's colour correlation of ImageNet (Olah et al., Distill 2017): the square root
# of the covariance of RGB values, so that independent parameters become correlated
# colours; normalised so that its largest column has length 1.
# (NumPy, not torch: no tensor operation may run at import, see repro.use_portable_cpu)
_COLOUR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05],
                         [0.27, -0.09, 0.03]])
_COLOUR_SQRT = _COLOUR_SQRT / np.linalg.norm(_COLOUR_SQRT, axis=0).max()


def _fourier_image(spectrum: torch.Tensor, scale: torch.Tensor, size: int
                   ) -> torch.Tensor:
    """Spectrum parameters (3, size, size//2+1, 2) → RGB image (1, 3, size, size) in
    (0, 1): scaled inverse FFT, colour decorrelation, sigmoid."""
    coefficients = torch.view_as_complex(spectrum.contiguous()) * scale
    decorrelated = torch.fft.irfft2(coefficients, s=(size, size), norm="ortho")
    mixing = torch.from_numpy(_COLOUR_SQRT).to(decorrelated)
    colours = torch.einsum("ij,jhw->ihw", mixing, decorrelated)
    return torch.sigmoid(colours)[None]


def _random_transform(image: torch.Tensor, generator: torch.Generator, jitter: int,
                      scales: tuple[float, ...], degrees: float) -> torch.Tensor:
    """Transformation robustness: a random shift (up to ``jitter`` px), scale (one of
    ``scales``) and rotation (up to ±``degrees``), as one affine resampling."""
    shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator)
    scale = scales[int(torch.randint(len(scales), (1,), generator=generator))]
    angle = math.radians(degrees) * (2 * float(torch.rand(1, generator=generator,
                                                          dtype=torch.float64)) - 1)
    size = image.shape[-1]
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 2 * float(shift[1]) / size],
                          [sin, cos, 2 * float(shift[0]) / size]],
                         dtype=image.dtype, device=image.device)[None]
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def fourier_feature_visualisation(
    model: nn.Module,
    channel: int,
    *,
    image_size: int = 64,
    steps: int = 48,
    lr: float = 0.05,
    decay_power: float = 1.0,
    jitter: int = 4,
    scales: tuple[float, ...] = (0.95, 1.0, 1.05),
    degrees: float = 5.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> AscentResult:
    """Feature visualisation "done right" (Olah, Mordvintsev & Schubert, Distill
    2017): maximise one channel's mean activation over an image parameterised in a
    decorrelated space, with transformation robustness.

    * Fourier basis: the parameters are the image's 2-D spectrum, each frequency f
      scaled by 1/max(|f|, 1/size)^``decay_power``, so all frequencies are equally easy
      to change and gradient steps no longer favour the high ones.
    * Colour decorrelation: three independent channels mixed by the square root of
      ImageNet's colour covariance, then a sigmoid keeps pixels in (0, 1).
    * Transformation robustness: every step sees the image randomly shifted (up to
      ``jitter`` px), scaled (one of ``scales``) and rotated (up to ±``degrees``).

    ``model`` maps a normalised (1, 3, H, W) image to (1, C, h, w) (see
    ``truncate_after``). Adam with learning rate ``lr`` on the spectrum; random numbers
    from a generator seeded with ``seed``; the computation runs in ``dtype`` on a copy
    of the model (float64 by default, as ``activation_maximisation``). ``history``
    holds the channel's mean activation on the untransformed image before each step
    and after the last. Compared with plain and regularised ascent in
    ``chapters/07_attribution.ipynb``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channel = validate.integer(channel, "channel", 0)
    image_size = validate.integer(image_size, "image_size", 8)
    steps = validate.integer(steps, "steps", 1)
    jitter = validate.integer(jitter, "jitter", 0)
    validate.integer(seed, "seed", 0)
    lr = validate.real(lr, "lr", minimum=0)
    decay_power = validate.real(decay_power, "decay_power", minimum=0)
    degrees = validate.real(degrees, "degrees", minimum=0)
    if lr == 0:
        raise ValueError("lr must be > 0")
    if jitter >= image_size // 2:
        raise ValueError(f"jitter must be < image_size // 2 = {image_size // 2}, "
                         f"got {jitter}")
    if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float))
                         or not s > 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if parameter is not None and parameter.dtype != dtype:
        model = copy.deepcopy(model).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(image_size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(image_size, dtype=torch.float64)[None, :]
    frequency = torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / image_size)
    scale = (1.0 / frequency**decay_power).to(device, dtype)
    start = 0.01 * torch.randn((3, image_size, image_size // 2 + 1, 2),
                               generator=generator, dtype=torch.float64)
    spectrum = start.to(device, dtype).requires_grad_(True)
    optimiser = torch.optim.Adam([spectrum], lr=lr)

    def channel_mean(image: torch.Tensor) -> torch.Tensor:
        output = model(imagenet_normalise(image))
        if output.dim() != 4 or not channel < output.shape[1]:
            raise ValueError(f"model output has shape {tuple(output.shape)}; channel "
                             f"{channel} does not exist")
        return output[0, channel].mean()

    history = []
    for _ in range(steps):
        image = _fourier_image(spectrum, scale, image_size)
        with torch.no_grad():
            history.append(float(channel_mean(image)))
        transformed = _random_transform(image, generator, jitter, tuple(scales),
                                        degrees)
        (gradient,) = torch.autograd.grad(channel_mean(transformed), spectrum)
        optimiser.zero_grad()
        spectrum.grad = -gradient  # Adam minimises: ascend the activation
        optimiser.step()
    with torch.no_grad():
        final = _fourier_image(spectrum, scale, image_size)
        history.append(float(channel_mean(final)))
        normalised = imagenet_normalise(final)
    return AscentResult(image=final[0].float().cpu(),
                        normalised=normalised.float().cpu(), history=history)
