"""Convolution arithmetic: output sizes, receptive fields, parameter and MAC counts.

The formulas are derived in ``chapters/01_convolution_operation.ipynb`` (output size,
receptive field, and its measurement with gradients) and
``chapters/03_convolution_types.ipynb`` (transposed output size, parameters and
multiply-accumulates). They need no tensor: ``tests/test_arithmetic.py`` checks each
against PyTorch's layers (hypothesis draws the shapes), and the receptive-field formula
against the gradient measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from . import validate

__all__ = [
    "output_size", "transposed_output_size", "conv_params", "conv_macs",
    "receptive_field_table", "receptive_field", "geometry_copy", "centre_unit_gradient",
    "non_zero_square", "measured_receptive_field",
]

IntPair = int | tuple[int, int]

# Layers that act on each position (and channel) separately: they keep the geometry,
# so they leave the receptive field and the jump unchanged.
_POINTWISE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid,
    nn.Tanh, nn.Softplus, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d,
)
_WINDOW_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)



def _check_axis(n: Any, kernel_size: Any, stride: Any, padding: Any,
                dilation: Any) -> tuple[int, int, int, int, int]:
    """The one-axis arguments of ``output_size`` and ``transposed_output_size`` as
    ints: n, kernel_size, stride and dilation at least 1, padding at least 0."""
    return (validate.integer(n, "n", 1), validate.integer(kernel_size, "kernel_size", 1),
            validate.integer(stride, "stride", 1), validate.integer(padding, "padding", 0),
            validate.integer(dilation, "dilation", 1))


def output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0,
                dilation: int = 1) -> int:
    """Size of a convolution's output along one axis: ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1.

    ``n`` is the input size, ``k`` the kernel size, ``s`` the stride, ``p`` the padding
    added on each side and ``d`` the dilation; with ``d = 1`` this is the familiar
    ⌊(n + 2p − k)/s⌋ + 1. The effective kernel d(k−1)+1 must fit in the padded input
    n + 2p. The same formula gives the output size of max and average pooling.
    Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    n, kernel_size, stride, padding, dilation = _check_axis(
        n, kernel_size, stride, padding, dilation)
    validate.window_fits(n, kernel_size, 2 * padding, dilation, "the axis")
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def transposed_output_size(n: int, kernel_size: int, stride: int = 1,
                           padding: int = 0, output_padding: int = 0,
                           dilation: int = 1) -> int:
    """Transposed-convolution output size: (n−1)s − 2p + d(k−1) + output_padding + 1.

    It inverts ``output_size``: a stride-``s`` convolution maps several input sizes to
    the same output size, and ``output_padding`` (which must be smaller than the stride
    or the dilation, as in ``nn.ConvTranspose2d``) picks which one to return to.
    Explained in ``chapters/03_convolution_types.ipynb``.
    """
    n, kernel_size, stride, padding, dilation = _check_axis(
        n, kernel_size, stride, padding, dilation)
    output_padding = validate.integer(output_padding, "output_padding", 0)
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation, got "
            f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    size = ((n - 1) * stride - 2 * padding + dilation * (kernel_size - 1)
            + output_padding + 1)
    if size < 1:
        raise ValueError(
            f"transposed convolution output would be empty ({size}): padding="
            f"{padding} is too large for n={n}, kernel_size={kernel_size}, "
            f"stride={stride}")
    return size


def conv_params(in_channels: int, out_channels: int, kernel_size: IntPair,
                groups: int = 1, bias: bool = True) -> int:
    """Number of parameters of a Conv2d: C_out·(C_in/groups)·kH·kW (+ C_out biases).

    A depthwise convolution is ``groups = in_channels``; a pointwise one is
    ``kernel_size = 1``. Equals ``sum(p.numel() for p in conv.parameters())``.
    Explained in ``chapters/03_convolution_types.ipynb``.
    """
    k_h, k_w = validate.integer_pair(kernel_size, "kernel_size", 1)
    in_channels, out_channels = _check_channels(in_channels, out_channels, groups)
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    weights = out_channels * (in_channels // groups) * k_h * k_w
    return weights + out_channels if bias else weights


def conv_macs(in_channels: int, out_channels: int, kernel_size: IntPair, out_h: int,
              out_w: int, groups: int = 1) -> int:
    """Multiply-accumulates of a Conv2d: C_out·(C_in/groups)·kH·kW · H_out·W_out.

    Every output value is a dot product of length (C_in/groups)·kH·kW, so this is the
    weight count (without bias) times the number of output positions, per image. One
    MAC is two floating-point operations (FLOPs). Explained in
    ``chapters/03_convolution_types.ipynb``.
    """
    k_h, k_w = validate.integer_pair(kernel_size, "kernel_size", 1)
    in_channels, out_channels = _check_channels(in_channels, out_channels, groups)
    out_h = validate.integer(out_h, "out_h", 1)
    out_w = validate.integer(out_w, "out_w", 1)
    return out_channels * (in_channels // groups) * k_h * k_w * out_h * out_w


def _check_channels(in_channels: int, out_channels: int,
                    groups: int) -> tuple[int, int]:
    in_channels = validate.integer(in_channels, "in_channels", 1)
    out_channels = validate.integer(out_channels, "out_channels", 1)
    groups = validate.integer(groups, "groups", 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide in_channels={in_channels} and "
            f"out_channels={out_channels}")
    return in_channels, out_channels


# ------------------------------------------------------------------ receptive field


def _square(value: Any, name: str, layer: nn.Module) -> int:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or pair[0] != pair[1]:
        raise ValueError(
            f"receptive_field needs square {name}s, got {name}={value} in "
            f"{type(layer).__name__}")
    return int(pair[0])


def _flat_layers(layers: nn.Module | Iterable[nn.Module],
                 prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Yield (name, layer) in execution order, opening nested nn.Sequential."""
    if isinstance(layers, nn.Module):
        if isinstance(layers, _WINDOW_LAYERS + _POINTWISE_LAYERS):
            named: Iterable[tuple[str, Any]] = [(prefix or "0", layers)]
            prefix = ""
        else:
            # Not named_children(): it skips a module that appears twice, although
            # nn.Sequential runs it twice.
            named = list(layers._modules.items())
    elif isinstance(layers, Iterable):
        named = ((str(i), layer) for i, layer in enumerate(layers))
    else:
        raise TypeError(f"layers must be an nn.Module or an iterable of modules, got "
                        f"{type(layers).__name__}")
    for name, layer in named:
        full_name = f"{prefix}.{name}" if prefix else name
        if isinstance(layer, (nn.Sequential, nn.ModuleList)):
            yield from _flat_layers(layer, full_name)
        elif isinstance(layer, nn.Module):
            yield full_name, layer
        else:
            raise TypeError(f"layer {full_name} must be an nn.Module, got "
                            f"{type(layer).__name__}")


def receptive_field_table(layers: nn.Module | Iterable[nn.Module]) -> list[dict]:
    """Receptive field ``r`` and jump ``j`` after every layer of a stack, in order.

    ``layers`` is an nn.Sequential (such as VGG16 ``features``), another module whose
    children run in the order they were registered, or an iterable of modules.
    Starting from r = 1, j = 1 (one input pixel), a layer with kernel k, stride s and
    dilation d updates r ← r + (k_eff − 1)·j and then j ← j·s, where
    k_eff = d(k−1)+1; ``j`` is the distance in input pixels between neighbouring
    units of the layer's output. Conv2d, MaxPool2d and AvgPool2d (square windows) change
    the geometry; element-wise layers (ReLU, BatchNorm2d, Dropout, Identity, ...) keep
    it; nested nn.Sequential are opened. Any other layer raises ValueError, because it
    may change the geometry (Linear, AdaptiveAvgPool2d, ConvTranspose2d, ...). Returns
    one dict per layer with keys index, name, type, r, jump. Explained in
    ``chapters/01_convolution_operation.ipynb``.
    """
    rows = []
    field, jump = 1, 1
    for index, (name, layer) in enumerate(_flat_layers(layers)):
        if isinstance(layer, _WINDOW_LAYERS):
            kernel = _square(layer.kernel_size, "kernel_size", layer)
            stride = _square(layer.stride, "stride", layer)
            dilation = _square(getattr(layer, "dilation", 1), "dilation", layer)
            field += dilation * (kernel - 1) * jump
            jump *= stride
        elif not isinstance(layer, _POINTWISE_LAYERS):
            raise ValueError(
                f"receptive_field cannot handle layer {name} of type "
                f"{type(layer).__name__}: only Conv2d, MaxPool2d, AvgPool2d, element-"
                f"wise layers and nested nn.Sequential are supported")
        rows.append({"index": index, "name": name, "type": type(layer).__name__,
                     "r": field, "jump": jump})
    return rows


def receptive_field(layers: nn.Module | Iterable[nn.Module]) -> int:
    """Side of the square of input pixels that one output unit of a stack depends on.

    Applies r ← r + (k_eff − 1)·j, j ← j·s with k_eff = d(k−1)+1 layer after layer,
    from r = j = 1 (see ``receptive_field_table``, which also lists the layers it
    accepts). For torchvision's VGG16 ``features``, conv5_3 (``features[:29]``) sees
    196×196 input pixels and pool5 (all of ``features``) 212×212. Padding does not
    change r. Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    table = receptive_field_table(layers)
    return table[-1]["r"] if table else 1


# ------------------------------------------------------- receptive field, measured


def geometry_copy(layers: nn.Module | Iterable[nn.Module]) -> nn.Sequential:
    """One-channel float64 copy of a stack with the same geometry: averaging kernels,
    average instead of max pooling, identity instead of element-wise layers.

    Every path from an input pixel to an output unit then carries a positive weight, so
    the gradient of a unit is non-zero exactly on its receptive field (max pooling
    would pass the gradient to one pixel per window, an inactive ReLU none). Accepts
    the stacks ``receptive_field_table`` accepts. Explained in
    ``chapters/01_convolution_operation.ipynb``.
    """
    copies: list[nn.Module] = []
    for name, layer in _flat_layers(layers):
        if isinstance(layer, nn.Conv2d):
            averaging = nn.Conv2d(1, 1, layer.kernel_size, stride=layer.stride,
                                  padding=layer.padding, dilation=layer.dilation,
                                  bias=False)
            nn.init.constant_(averaging.weight, 1 / averaging.weight.numel())
            copies.append(averaging)
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            copies.append(nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, _POINTWISE_LAYERS):
            copies.append(nn.Identity())
        else:
            raise ValueError(
                f"geometry_copy cannot copy layer {name} of type "
                f"{type(layer).__name__}: only Conv2d, MaxPool2d, AvgPool2d, element-"
                f"wise layers and nested nn.Sequential are supported")
    return nn.Sequential(*copies).double()


def centre_unit_gradient(stack: nn.Module, input_size: int,
                         channels: int = 1) -> np.ndarray:
    """|Gradient| of the centre unit of channel 0 of ``stack``'s output w.r.t. an
    all-ones input of ``channels`` × ``input_size`` × ``input_size``, summed over the
    input channels: an (input_size, input_size) array. Explained in
    ``chapters/01_convolution_operation.ipynb``.
    """
    input_size = validate.integer(input_size, "input_size", 1)
    channels = validate.integer(channels, "channels", 1)
    parameter = next(stack.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float64
    x = torch.ones(1, channels, input_size, input_size, dtype=dtype,
                   requires_grad=True)
    with torch.enable_grad():
        output = stack(x)
        centre = output[0, 0, output.shape[2] // 2, output.shape[3] // 2]
        (gradient,) = torch.autograd.grad(centre, x)
    return gradient[0].abs().sum(0).numpy()


def non_zero_square(gradient: np.ndarray) -> tuple[tuple[int, int], int, bool]:
    """Top-left corner and side of the box around the non-zero entries of a 2-D
    array, and whether every entry inside the box is non-zero. Explained in
    ``chapters/01_convolution_operation.ipynb``."""
    rows, cols = np.nonzero(gradient)
    if rows.size == 0:
        raise ValueError("gradient is zero everywhere: no unit depends on the input")
    top, left = int(rows.min()), int(cols.min())
    side = int(rows.max()) - top + 1
    box = gradient[top:rows.max() + 1, left:cols.max() + 1]
    return (top, left), side, bool((box > 0).all())


def measured_receptive_field(layers: nn.Module | Iterable[nn.Module],
                             input_size: int = 224) -> int:
    """Receptive field measured without the formula: the side of the square of input
    pixels where the centre unit of ``geometry_copy(layers)`` has a non-zero gradient.

    ``input_size`` must exceed the receptive field, or the square is cut by the
    border. Explained in ``chapters/01_convolution_operation.ipynb``.
    """
    gradient = centre_unit_gradient(geometry_copy(layers), input_size)
    return non_zero_square(gradient)[1]
