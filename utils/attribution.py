"""Attribution: which input pixels made a network give a class its score, and checks
of whether an attribution method can be trusted.

Every method takes a ``model`` that maps ``x`` of shape (N, C, H, W) to logits
(N, classes) and a ``target``: one class for the whole batch (an int) or one per image
(a tensor of N ints). Each works on the model's own device and dtype, and leaves the
model as it found it: no hook stays registered, ``training`` and every parameter's
``requires_grad`` are unchanged, and no ``.grad`` is written. Derived and compared with
Captum in ``chapters/07_attribution.ipynb``.

The evaluations at the end (deletion and insertion curves, the pointing game,
cascading randomisation, rank correlation, bootstrap intervals) are the chapter's tests
of the methods. Every score detects a *constant* map (an all-zero Grad-CAM, say), which
ranks no pixel, and reports it as NaN instead of scoring an arbitrary order; count them
with ``is_constant``. Pixels of equal importance are ranked in a seeded random order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import validate

__all__ = [
    "saliency", "smoothgrad", "guided_backprop", "grad_cam", "integrated_gradients",
    "occlusion", "class_scores", "is_constant", "pixel_order", "deletion_curve",
    "insertion_curve", "deletion_auc", "insertion_auc", "spearman", "pointing",
    "bootstrap_interval", "cascading_randomisation", "upsample_map", "METHOD_COLOURS",
]

# One fixed colour per method (and per control), used by every figure of chapter 7 and
# lab 5, so that a method looks the same in every plot (matplotlib's tab10 colours).
METHOD_COLOURS: dict[str, str] = {
    "saliency": "#1f77b4",
    "SmoothGrad": "#ff7f0e",
    "Guided Backprop": "#2ca02c",
    "Grad-CAM": "#d62728",
    "Integrated Gradients": "#9467bd",
    "occlusion": "#8c564b",
    "random order": "#7f7f7f",
    "pixel intensity": "#17becf",
    "Grad-CAM before the ReLU": "#e377c2",
}


# ------------------------------------------------------------------ argument checks

def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _model_device_dtype(model: nn.Module) -> tuple[torch.device | None,
                                                    torch.dtype | None]:
    """The device and dtype of the model's parameters (None, None without any)."""
    parameter = next(model.parameters(), None)
    if parameter is None:
        return None, None
    return parameter.device, parameter.dtype


def _check_input(model: nn.Module, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W), got "
                        f"{type(x).__name__}")
    if x.dim() != 4 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, C, H, W) with N >= 1, got "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    device, dtype = _model_device_dtype(model)
    if device is None:  # a model without parameters takes any floating-point input
        device, dtype = x.device, x.dtype
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; move x "
                         f"with x.to({str(device)!r})")
    if x.dtype != dtype:
        raise TypeError(f"x has dtype {x.dtype} but the model computes in {dtype}; "
                        f"convert x with x.to({dtype})")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x.detach()


def _check_target(target: object, n: int, device: torch.device) -> torch.Tensor:
    if isinstance(target, bool):
        raise TypeError("target must be an int or a tensor of ints, got a bool")
    if isinstance(target, int):
        if target < 0:
            raise ValueError(f"target must be a class index >= 0, got {target}")
        return torch.full((n,), target, dtype=torch.long, device=device)
    if isinstance(target, torch.Tensor):
        if target.dtype in (torch.bool,) or target.is_floating_point() \
                or target.is_complex():
            raise TypeError(f"target must hold integers, got {target.dtype}")
        if target.dim() == 0:
            target = target.expand(n)
        if target.shape != (n,):
            raise ValueError(f"target must be an int or {n} ints (one per image), "
                             f"got shape {tuple(target.shape)}")
        if (target < 0).any():
            raise ValueError("target holds a negative class index")
        return target.to(device=device, dtype=torch.long)
    raise TypeError(f"target must be an int or a tensor of ints, got "
                    f"{type(target).__name__}")


def _check_fill(value: object, x: torch.Tensor, name: str) -> torch.Tensor:
    """A number, or a tensor that broadcasts to x's shape, on x's device and dtype."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor that broadcasts to x's "
                        f"shape {tuple(x.shape)}, got {type(value).__name__}")
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device).detach()
    try:
        torch.broadcast_shapes(value.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to "
                         f"x's shape {tuple(x.shape)}") from None
    if torch.broadcast_shapes(value.shape, x.shape) != x.shape:
        raise ValueError(f"{name} of shape {tuple(value.shape)} would enlarge x's shape "
                         f"{tuple(x.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


@contextmanager
def _as_found(model: nn.Module) -> Iterator[None]:
    """Freeze the parameters while a method runs, then restore ``requires_grad``,
    ``training`` and ``.grad`` exactly as they were."""
    states = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    training = model.training
    try:
        for parameter, _, _ in states:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, requires_grad, grad in states:
            parameter.requires_grad_(requires_grad)
            parameter.grad = grad
        model.train(training)


def class_scores(model: nn.Module, x: torch.Tensor,
                 target: torch.Tensor) -> torch.Tensor:
    """The logits of the target classes, shape (N,): ``model(x)[i, target[i]]``."""
    logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must return logits of shape (N, classes) = "
                         f"({x.shape[0]}, classes), got {tuple(logits.shape)}")
    if int(target.max()) >= logits.shape[1]:
        raise ValueError(f"target {int(target.max())} is not a class: the model has "
                         f"{logits.shape[1]} classes")
    return logits.gather(1, target[:, None])[:, 0]


def _input_gradient(model: nn.Module, x: torch.Tensor,
                    target: torch.Tensor) -> torch.Tensor:
    """∂ score_target / ∂ x for each image of the batch (scores summed: images are
    independent, so each image gets the gradient of its own score)."""
    x = x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(class_scores(model, x, target).sum(), x)
    return gradient


# ------------------------------------------------------------------ methods

def saliency(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor
             ) -> torch.Tensor:
    """Vanilla gradient saliency |∂ score_target / ∂ x| (Simonyan, Vedaldi & Zisserman
    2014, "Deep inside convolutional networks"). Returns (N, C, H, W) ≥ 0."""
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    with _as_found(model):
        return _input_gradient(model, x, target).abs()


def smoothgrad(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, *,
               samples: int = 16, noise: float = 0.15,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean of ``samples`` saliency maps of noisy
    copies x + ε, ε ~ N(0, σ²) with σ = ``noise`` · (max(x) − min(x)) per image.

    The noise comes from ``generator`` (drawn on the CPU in float64, so the same seed
    gives the same noise on every machine), or from a generator seeded with 0 when it
    is ``None``. Returns (N, C, H, W) ≥ 0. The copies run in one batch per sample.
    """
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    samples = validate.integer(samples, "samples", 1)
    noise = validate.real(noise, "noise (a fraction of the input range)", minimum=0)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got "
                        f"{type(generator).__name__}")
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    sigma = noise * span
    total = torch.zeros_like(x)
    with _as_found(model):
        for _ in range(samples):
            epsilon = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            noisy = x + sigma * epsilon.to(x.device, x.dtype)
            total += _input_gradient(model, noisy, target).abs()
    return total / samples


class _GuidedReLU(torch.autograd.Function):
    """Identity on non-negative values (a ReLU's output); backward passes only
    positive gradients, and only where the unit was active."""

    @staticmethod
    def forward(ctx, activated: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(activated)
        return activated.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (activated,) = ctx.saved_tensors
        return grad_output.clamp(min=0) * (activated > 0).to(grad_output.dtype)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor
                    ) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al. 2015, "Striving for simplicity"):
    the input gradient, except that at every ``nn.ReLU`` module the backward pass also
    zeroes negative gradients. Returns the signed (N, C, H, W) map.

    Implemented with temporary forward hooks that route each ReLU's output through
    ``_GuidedReLU``; they are removed before returning, also after an error.
    ReLUs applied as functions (``F.relu``) are not guided.
    """
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("guided_backprop needs nn.ReLU modules in the model; it has "
                         "none")
    handles = [m.register_forward_hook(lambda module, inputs, output:
                                       _GuidedReLU.apply(output)) for m in relus]
    try:
        with _as_found(model):
            return _input_gradient(model, x, target)
    finally:
        for handle in handles:
            handle.remove()


def _find_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            names = ", ".join(repr(n) for n in list(modules)[1:10])
            raise KeyError(f"model has no layer {layer!r}; it has e.g. {names}, ...")
        return modules[layer]
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer is not a module of model")
        return layer
    raise TypeError(f"layer must be a module of model or its name, got "
                    f"{type(layer).__name__}")


def grad_cam(model: nn.Module, layer: nn.Module | str, x: torch.Tensor,
             target: int | torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A^k) with A the output of
    ``layer`` (N, K, h, w) and α_k the spatial mean of ∂ score_target / ∂ A^k.

    Returns (N, h, w) ≥ 0 at the layer's resolution; ``upsample_map`` enlarges it for
    display. ``layer`` is a module of ``model`` or its name in ``named_modules()``.
    """
    model = _check_model(model)
    module = _find_layer(model, layer)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured.append(output)

    handle = module.register_forward_hook(keep)
    try:
        with _as_found(model):
            # x needs a gradient so that every activation is part of the graph
            scores = class_scores(model, x.requires_grad_(True), target)
            if not captured or captured[-1].dim() != 4:
                raise ValueError("layer must output feature maps (N, K, h, w) during "
                                 "the forward pass")
            activations = captured[-1]
            (gradients,) = torch.autograd.grad(scores.sum(), activations)
            weights = gradients.mean(dim=(2, 3), keepdim=True)
            return F.relu((weights * activations).sum(dim=1)).detach()
    finally:
        handle.remove()


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor,
                         baseline: torch.Tensor | None = None, steps: int = 32,
                         batch_size: int = 64) -> torch.Tensor:
    """Integrated Gradients (Sundararajan, Taly & Yan 2017):
    (x − x') · ∫₀¹ ∂ score(x' + α(x − x')) / ∂ x dα, with the integral approximated,
    as in the paper, by the right Riemann sum (1/m) Σ_{k=1..m} of the gradient at
    α = k/m, m = ``steps``, and the baseline x' zeros by default. Completeness: the
    attributions sum to score(x) − score(x') up to the error of that sum.

    Returns the signed (N, C, H, W) map. The points on the path run in batches of up
    to ``batch_size`` images.
    """
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    steps = validate.integer(steps, "steps", 1)
    batch_size = validate.integer(batch_size, "batch_size", 1)
    if baseline is None:
        baseline = torch.zeros_like(x)
    elif not isinstance(baseline, torch.Tensor) or baseline.shape != x.shape:
        raise ValueError(f"baseline must be a tensor of x's shape {tuple(x.shape)}")
    baseline = baseline.to(x.device, x.dtype).detach()
    alphas = [k / steps for k in range(1, steps + 1)]
    n = x.shape[0]
    per_batch = max(1, batch_size // n)
    total = torch.zeros_like(x)
    with _as_found(model):
        for start in range(0, steps, per_batch):
            chunk = alphas[start:start + per_batch]
            a = torch.tensor(chunk, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
            points = baseline[None] + a * (x - baseline)[None]
            gradient = _input_gradient(model, points.flatten(0, 1),
                                       target.repeat(len(chunk)))
            total += gradient.view(len(chunk), *x.shape).sum(0)
    return (x - baseline) * total / steps


def _window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start of every window along one axis, as Captum's ``Occlusion`` places them:
    ceil((size − window) / stride) + 1 starts, the last window clipped at the edge."""
    return [i * stride for i in range(-(-(size - window) // stride) + 1)]


def occlusion(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor, *,
              window: int = 4, stride: int = 2, fill: torch.Tensor | float = 0.0,
              batch_size: int = 128) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and understanding
    convolutional networks"): slide a ``window``×``window`` patch over the image in
    steps of ``stride``, replace the pixels under it (all channels) by ``fill`` and
    record how much the target score drops, score(x) − score(occluded). Each pixel
    gets the mean drop over the windows that cover it, as Captum's ``Occlusion`` with
    ``sliding_window_shapes=(C, window, window)`` computes it.

    Model-agnostic: it needs only forward passes (one per window position, run in
    batches of up to ``batch_size`` images), no gradient. ``fill`` is a number or a
    tensor that broadcasts to x (e.g. a blurred copy). Returns the signed
    (N, C, H, W) map, the same value in every channel.
    """
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    n, channels, height, width = x.shape
    window = validate.integer(window, "window", 1)
    stride = validate.integer(stride, "stride", 1)
    batch_size = validate.integer(batch_size, "batch_size", 1)
    if window > min(height, width):
        raise ValueError(f"window {window} is larger than the image ({height}×{width})")
    if stride > window:
        raise ValueError(f"stride {stride} is larger than window {window}: some pixels "
                         f"would never be occluded")
    fill = _check_fill(fill, x, "fill")
    masks = []
    for top in _window_positions(height, window, stride):
        for left in _window_positions(width, window, stride):
            mask = torch.zeros(height, width, dtype=x.dtype, device=x.device)
            mask[top:top + window, left:left + window] = 1
            masks.append(mask)
    masks = torch.stack(masks)  # (P, H, W)
    drops = torch.empty(n, len(masks), dtype=x.dtype, device=x.device)
    per_batch = max(1, batch_size // n)
    with _as_found(model), torch.no_grad():
        original = class_scores(model, x, target)
        for start in range(0, len(masks), per_batch):
            chunk = masks[start:start + per_batch, None, None]  # (p, 1, 1, H, W)
            occluded = x[None] * (1 - chunk) + fill * chunk  # (p, N, C, H, W)
            scores = class_scores(model, occluded.flatten(0, 1),
                                  target.repeat(len(chunk)))
            drops[:, start:start + len(chunk)] = (original[None] - scores.view(
                len(chunk), n)).T
    counts = masks.sum(0)
    per_pixel = (drops @ masks.flatten(1)).view(n, height, width) / counts
    return per_pixel[:, None].expand(n, channels, height, width).clone()


# ------------------------------------------------------------------ evaluations

RANK_LEVELS = 1000  # resolution at which importance maps rank pixels


def upsample_map(heatmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (N, h, w) map bilinearly resized to (N, H, W), to set it beside the image."""
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() != 3:
        raise ValueError("heatmap must be a tensor of shape (N, h, w)")
    return F.interpolate(heatmap[:, None], size=size, mode="bilinear",
                         align_corners=False)[:, 0]


def _as_maps(importance: object, name: str = "importance") -> torch.Tensor:
    if not isinstance(importance, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of maps (N, H, W) or (N, C, H, W), "
                        f"got {type(importance).__name__}")
    if importance.dim() == 4:
        importance = importance.sum(1)
    if importance.dim() != 3:
        raise ValueError(f"{name} must have shape (N, H, W) or (N, C, H, W), got "
                         f"{tuple(importance.shape)}")
    if not torch.isfinite(importance).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return importance.detach()


def is_constant(importance: torch.Tensor) -> torch.Tensor:
    """Which maps rank no pixel above another: (N,) bools, True where a map's values
    are all equal to within 1e-12 of its largest magnitude (an all-zero Grad-CAM).

    ``importance`` is (N, H, W) or (N, C, H, W) (channels summed first). Scores of a
    constant map would measure the tie-breaking order, not the map, so the scores
    below report such a map as NaN.
    """
    flat = _as_maps(importance).reshape(importance.shape[0], -1).double()
    spread = flat.amax(1) - flat.amin(1)
    return spread <= 1e-12 * flat.abs().amax(1)


def pixel_order(importance: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixels from most to least important, (N, H·W) flat indices.

    Importance is quantised to 1/``RANK_LEVELS`` of each map's range, so that the last
    bits of float32 arithmetic (which differ between processors) do not reorder
    pixels of practically equal importance; equal levels come in a random order drawn
    from a generator seeded with ``seed`` (the same on every machine), never in raster
    order.
    """
    flat = _as_maps(importance).reshape(importance.shape[0], -1).double().cpu()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    levels = torch.round((flat - low) / (high - low).clamp_min(1e-300) * RANK_LEVELS)
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.stack([torch.randperm(flat.shape[1], generator=generator)
                           for _ in range(flat.shape[0])])
    order = levels.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
    return shuffle.gather(1, order)


def _perturbation_curve(model: nn.Module, x: torch.Tensor,
                        target: int | torch.Tensor, importance: torch.Tensor,
                        steps: int, other: torch.Tensor | float, *, insert: bool,
                        seed: int, batch_size: int) -> torch.Tensor:
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    steps = validate.integer(steps, "steps", 1)
    batch_size = validate.integer(batch_size, "batch_size", 1)
    n, _, height, width = x.shape
    importance = _as_maps(importance)
    if importance.shape != (n, height, width):
        raise ValueError(f"importance must have shape (N, H, W) = "
                         f"{(n, height, width)}, got {tuple(importance.shape)}")
    other = _check_fill(other, x, "start" if insert else "fill")
    pixels = height * width
    order = pixel_order(importance, seed).to(x.device)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(pixels, device=x.device).expand(n, pixels))
    counts = torch.tensor([round(step * pixels / steps) for step in range(steps + 1)],
                          device=x.device)
    # chosen[s, i, p]: pixel p is among the first counts[s] of image i's order
    chosen = (rank[None] < counts[:, None, None]).to(x.dtype)
    chosen = chosen.view(steps + 1, n, 1, height, width)
    if insert:
        images = other * (1 - chosen) + x[None] * chosen
    else:
        images = x[None] * (1 - chosen) + other * chosen
    images = images.flatten(0, 1)
    targets = target.repeat(steps + 1)
    probabilities = []
    with _as_found(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(images[start:start + batch_size])
            probabilities.append(F.softmax(logits, dim=1).gather(
                1, targets[start:start + batch_size, None])[:, 0])
    curves = torch.cat(probabilities).view(steps + 1, n).T.contiguous()
    curves[is_constant(importance).to(x.device)] = float("nan")
    return curves


def deletion_curve(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor,
                   importance: torch.Tensor, steps: int = 16,
                   fill: torch.Tensor | float = 0.0, *, seed: int = 0,
                   batch_size: int = 256) -> torch.Tensor:
    """The deletion test (Petsiuk, Das & Saenko 2018, "RISE"): replace the pixels, in
    order of decreasing ``importance``, by ``fill`` (a number, or a tensor that
    broadcasts to x, e.g. a blurred copy) in ``steps`` equal portions, and record the
    softmax probability of the target class after each portion.

    ``importance`` is (N, H, W) or (N, C, H, W) (channels summed); pixels are ranked
    by ``pixel_order`` (ties in a random order seeded with ``seed``). Returns
    (N, steps + 1): the probabilities with 0, 1/steps, …, all pixels deleted; the row
    of a constant map (``is_constant``) is NaN. A faithful map makes the probability
    fall fast (a low ``deletion_auc``). The images run in batches of ``batch_size``.
    """
    return _perturbation_curve(model, x, target, importance, steps, fill,
                               insert=False, seed=seed, batch_size=batch_size)


def insertion_curve(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor,
                    importance: torch.Tensor, steps: int = 16,
                    start: torch.Tensor | float = 0.0, *, seed: int = 0,
                    batch_size: int = 256) -> torch.Tensor:
    """The insertion test of Petsiuk et al. (2018), the mirror of ``deletion_curve``:
    begin with ``start`` (Petsiuk et al. use a blurred copy of the image) and put the
    image's own pixels back in order of decreasing ``importance``, in ``steps`` equal
    portions. Returns (N, steps + 1) probabilities of the target class with 0, …, all
    pixels inserted (NaN rows for constant maps). A faithful map makes the probability
    rise fast (a high ``insertion_auc``).
    """
    return _perturbation_curve(model, x, target, importance, steps, start,
                               insert=True, seed=seed, batch_size=batch_size)


def _area(curve: torch.Tensor) -> torch.Tensor:
    if not isinstance(curve, torch.Tensor) or curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError("curve must be a tensor of shape (N, steps + 1), steps >= 1")
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under deletion curves (N, steps + 1) on [0, 1], trapezoidal rule: low is
    faithful. NaN for the NaN rows of constant maps."""
    return _area(curve)


def insertion_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under insertion curves (N, steps + 1) on [0, 1], trapezoidal rule: high is
    faithful. NaN for the NaN rows of constant maps."""
    return _area(curve)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps of the same shape: the Pearson
    correlation of their ranks (ties get their mean rank, as in SciPy).

    A constant map has no ranks to correlate: the result is then NaN (as SciPy's),
    never a made-up 0, so that a blank map cannot pass for a map that changed.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("a and b must be tensors")
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"a and b must have the same shape with at least 2 values, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")

    def ranks(values: torch.Tensor) -> torch.Tensor:
        values = values.detach().flatten().double().cpu()
        order = values.argsort(stable=True)
        ordered = values[order]
        rank = torch.empty_like(values)
        start = 0
        while start < len(ordered):
            stop = start + 1
            while stop < len(ordered) and ordered[stop] == ordered[start]:
                stop += 1
            rank[order[start:stop]] = (start + stop - 1) / 2
            start = stop
        return rank

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator else math.nan


def pointing(importance: torch.Tensor, masks: torch.Tensor, rule: str = "peak", *,
             seed: int = 0) -> torch.Tensor:
    """The pointing game: does each map point into its region ``masks`` (N, H, W)
    bools? ``rule="peak"``: a hit when the map's largest value lies in the region
    (several equal largest values: one chosen at random, seeded with ``seed``);
    ``rule="mass"``: when more than half of the map's total |value| lies in it.

    Returns (N,) float64: 1.0 for a hit, 0.0 for a miss, NaN for a constant map,
    which points nowhere.
    """
    maps = _as_maps(importance)
    if not isinstance(masks, torch.Tensor) or masks.shape != maps.shape \
            or masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool tensors of the maps' shape "
                         f"{tuple(maps.shape)}")
    if rule not in ("peak", "mass"):
        raise ValueError(f"rule must be 'peak' or 'mass', got {rule!r}")
    flat, inside = maps.reshape(len(maps), -1).double().cpu(), masks.reshape(
        len(maps), -1).cpu()
    if rule == "peak":
        top = pixel_order(flat.view(maps.shape), seed)[:, 0]
        hits = inside.gather(1, top[:, None])[:, 0].double()
    else:
        mass = flat.abs()
        hits = ((mass * inside).sum(1) > 0.5 * mass.sum(1)).double()
    hits[is_constant(maps).cpu()] = math.nan
    return hits


def bootstrap_interval(values: torch.Tensor | Sequence[float], *,
                       confidence: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` and its percentile-bootstrap confidence interval
    (Efron & Tibshirani 1993): resample the values with replacement ``resamples``
    times (a generator seeded with ``seed``), and take the (1 − confidence)/2 and
    (1 + confidence)/2 quantiles of the resampled means. Returns (mean, low, high).

    NaN values are refused: count constant maps with ``is_constant`` and leave them
    out first, saying how many.
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    if len(values) < 2:
        raise ValueError(f"need at least 2 values for an interval, got {len(values)}")
    if not torch.isfinite(values).all():
        raise ValueError("values contain NaN or infinite numbers (constant maps?); "
                         "leave them out and report how many")
    confidence = validate.real(confidence, "confidence", minimum=0)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    resamples = validate.integer(resamples, "resamples", 1)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(values), (resamples, len(values)), generator=generator)
    means = values[picks].mean(1)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail],
                                                   dtype=torch.float64))
    return float(values.mean()), float(low), float(high)


def cascading_randomisation(
    model: nn.Module, layers: list[str], seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """The model sanity check of Adebayo et al. (2018, "Sanity checks for saliency
    maps"): yield copies of ``model`` in which the named layers are re-initialised
    one more at a time, in the order given (top of the network first), cumulatively.

    Each named module's weight and bias are redrawn from N(0, σ²) with σ the standard
    deviation of its trained weight (bias: zero), from a generator seeded with
    ``seed`` in float64, so every machine gets the same random layers. ``model`` is
    not changed. Yields ``(name, randomised_copy)``.
    """
    model = _check_model(model)
    if not layers:
        raise ValueError("layers is empty: name the layers to randomise, top first")
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise KeyError(f"unknown layer name(s) {unknown}")
    generator = torch.Generator().manual_seed(seed)
    current = copy.deepcopy(model)
    copies = dict(current.named_modules())
    for name in layers:
        module = copies[name]
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise ValueError(f"layer {name!r} has no weight to randomise")
        with torch.no_grad():
            std = float(weight.double().std())
            draw = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
            weight.copy_(draw * std)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
        yield name, copy.deepcopy(current)
