"""Attribution: which input pixels made a network give a class its score, and checks
of whether an attribution method can be trusted.

Every method takes a ``model`` that maps ``x`` of shape (N, C, H, W) to logits
(N, classes) and a ``target``: one class for the whole batch (an int) or one per image
(a tensor of N ints). Each works on the model's own device and dtype, and leaves the
model as it found it: no hook stays registered, ``training`` and every parameter's
``requires_grad`` are unchanged, and no ``.grad`` is written. Derived and compared with
Captum in ``chapters/07_attribution.ipynb``.

The evaluations at the end (deletion curves, the pointing game's hit, cascading
randomisation, rank correlation) are the chapter's tests of the methods.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import validate

__all__ = [
    "saliency", "smoothgrad", "guided_backprop", "grad_cam", "integrated_gradients",
    "class_scores", "deletion_curve", "deletion_auc", "spearman",
    "cascading_randomisation", "upsample_map",
]


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


# ------------------------------------------------------------------ evaluations

RANK_LEVELS = 1000  # resolution at which deletion_curve ranks importance

def upsample_map(heatmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (N, h, w) map bilinearly resized to (N, H, W) for display over the image."""
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() != 3:
        raise ValueError("heatmap must be a tensor of shape (N, h, w)")
    return F.interpolate(heatmap[:, None], size=size, mode="bilinear",
                         align_corners=False)[:, 0]


def deletion_curve(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor,
                   importance: torch.Tensor, steps: int = 16,
                   fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """The pixel-deletion test (Petsiuk et al. 2018): replace the pixels in order of
    decreasing ``importance`` by ``fill`` in ``steps`` equal portions and record the
    softmax probability of the target class after each portion.

    ``importance`` is (N, H, W) (sum an attribution's channels first) or (N, C, H, W)
    (summed here); pixels are ranked at a resolution of 1/``RANK_LEVELS`` of the map's
    range. Returns (N, steps + 1): the probabilities with 0, 1/steps, …, all pixels
    deleted. A faithful map makes the probability fall fast.
    """
    model = _check_model(model)
    x = _check_input(model, x)
    target = _check_target(target, x.shape[0], x.device)
    steps = validate.integer(steps, "steps", 1)
    if not isinstance(importance, torch.Tensor):
        raise TypeError("importance must be a tensor")
    if importance.dim() == 4:
        importance = importance.sum(1)
    n, _, height, width = x.shape
    if importance.shape != (n, height, width):
        raise ValueError(f"importance must have shape (N, H, W) = "
                         f"{(n, height, width)}, "
                         f"got {tuple(importance.shape)}")
    # Rank by importance quantised to 1/1000 of each map's range, ties broken by pixel
    # position: float32 maps differ between processors in the last bits, which would
    # otherwise reorder pixels of practically equal importance.
    flat = importance.reshape(n, -1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    levels = torch.round((flat - low) / (high - low).clamp_min(1e-300) * RANK_LEVELS)
    order = levels.argsort(dim=1, descending=True, stable=True)
    pixels = height * width
    fill_value = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    curves = []
    with _as_found(model), torch.no_grad():
        for step in range(steps + 1):
            count = round(step * pixels / steps)
            mask = torch.ones(n, pixels, dtype=x.dtype, device=x.device)
            mask.scatter_(1, order[:, :count].to(x.device), 0.0)
            mask = mask.view(n, 1, height, width)
            deleted = x * mask + fill_value * (1 - mask)
            probabilities = F.softmax(model(deleted), dim=1)
            curves.append(probabilities.gather(1, target[:, None])[:, 0])
    return torch.stack(curves, dim=1)


def deletion_auc(curve: torch.Tensor) -> torch.Tensor:
    """Area under deletion curves (N, steps + 1) on [0, 1], trapezoidal rule: low is
    faithful."""
    if not isinstance(curve, torch.Tensor) or curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError("curve must be a tensor of shape (N, steps + 1), steps >= 1")
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps of the same shape: the Pearson
    correlation of their ranks (ties get their mean rank, as in SciPy)."""
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
    return float((ra * rb).sum()) / denominator if denominator else 0.0


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
