"""Building blocks made of special convolutions, and a cost counter for any stack.

``DepthwiseSeparableConv`` (MobileNet, Xception) and ``ASPP`` (atrous spatial pyramid
pooling, DeepLab v3) are derived in ``chapters/03_convolution_types.ipynb``, which
also counts their parameters, multiply-accumulates (MACs) and FLOPs with
``layer_costs`` and ``total_costs``. ``tests/test_layers.py`` checks them against
PyTorch's functional convolutions, torchvision's DeepLab v3 ``ASPP`` and
``torch.utils.flop_counter``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import validate
from .arithmetic import conv_macs

__all__ = ["DepthwiseSeparableConv", "ASPP", "layer_costs", "total_costs"]


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, *,
                stride: int = 1, padding: int = 0, dilation: int = 1,
                groups: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """Conv2d, then BatchNorm2d and ReLU (conv without bias) or nothing (with bias)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                     padding=padding, dilation=dilation, groups=groups,
                     bias=not batch_norm)
    if not batch_norm:
        return nn.Sequential(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DepthwiseSeparableConv(nn.Module):
    """A k×k depthwise convolution followed by a 1×1 pointwise convolution.

    The depthwise step (``groups = in_channels``) filters every input channel with
    its own k×k kernel, C_in·k² weights; the pointwise step mixes channels, C_out·C_in
    weights. Against a standard convolution's C_out·C_in·k² weights (and MACs) the
    ratio is 1/C_out + 1/k² (Howard et al. 2017; Chollet 2017).

    With ``batch_norm=True`` (as in MobileNet) each convolution has no bias and is
    followed by BatchNorm2d and ReLU; with ``batch_norm=False`` both convolutions
    have a bias and there is no activation, so the block is exactly the linear
    factorisation conv2d(groups=C_in) then 1×1 conv2d. ``stride``, ``padding`` (and
    so the output size) belong to the depthwise step. Explained in
    ``chapters/03_convolution_types.ipynb``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        in_channels = validate.integer(in_channels, "in_channels", 1)
        out_channels = validate.integer(out_channels, "out_channels", 1)
        kernel_size = validate.integer(kernel_size, "kernel_size", 1)
        stride = validate.integer(stride, "stride", 1)
        padding = validate.integer(padding, "padding", 0)
        batch_norm = validate.boolean(batch_norm, "batch_norm")
        self.depthwise = _conv_block(in_channels, in_channels, kernel_size,
                                     stride=stride, padding=padding,
                                     groups=in_channels, batch_norm=batch_norm)
        self.pointwise = _conv_block(in_channels, out_channels, 1,
                                     batch_norm=batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class _ImagePooling(nn.Module):
    """Global average pool → 1×1 conv → BN → ReLU → bilinear upsample to H×W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = _conv_block(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.project(self.pool(x))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, the head of DeepLab v3 (Chen et al. 2017).

    Parallel branches see the same input: one 1×1 convolution, one 3×3 convolution
    with dilation r and padding r for every rate r in ``rates`` (so all keep H×W), and
    an image-pooling branch (global average pool → 1×1 conv → upsample back to H×W).
    Every branch ends with BatchNorm2d and ReLU and has ``out_channels`` channels, so
    their concatenation has (len(rates) + 2)·out_channels channels; a final 1×1
    convolution (+ BN + ReLU) projects it back to ``out_channels``. Output:
    (N, out_channels, H, W). In training mode the pooling branch's BatchNorm needs
    more than one image per batch. Explained in
    ``chapters/03_convolution_types.ipynb``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        in_channels = validate.integer(in_channels, "in_channels", 1)
        out_channels = validate.integer(out_channels, "out_channels", 1)
        if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence):
            raise TypeError(f"rates must be a sequence of positive ints, got "
                            f"{type(rates).__name__} {rates!r}")
        if len(rates) == 0:
            raise ValueError("rates must hold at least one dilation rate, got ()")
        rates = tuple(validate.integer(rate, "every rate", 1) for rate in rates)
        if len(set(rates)) != len(rates):
            raise ValueError(f"rates must be different from each other, got {rates}")
        self.rates = rates
        branches = [_conv_block(in_channels, out_channels, 1)]
        branches += [_conv_block(in_channels, out_channels, 3, padding=rate,
                                 dilation=rate) for rate in rates]
        branches.append(_ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = _conv_block(len(branches) * out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"ASPP expects an (N, C, H, W) tensor, got {shape}")
        features = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.project(features)


# ----------------------------------------------------------------------------- costs

# Layers that do no arithmetic: they copy, reshape or compare values. Max pooling
# compares; like torch.utils.flop_counter, it counts no FLOP.
_FREE_LAYERS = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.MaxPool2d)


def _layer_cost(layer: nn.Module, inputs: Tensor, output: Tensor) -> tuple[int, int]:
    """(MACs, FLOPs) of one leaf layer for the whole batch it ran on."""
    if isinstance(layer, nn.Conv2d):
        n, _, out_h, out_w = output.shape
        macs = n * conv_macs(layer.in_channels, layer.out_channels, layer.kernel_size,
                             out_h, out_w, layer.groups)
        bias_adds = output.numel() if layer.bias is not None else 0
        return macs, 2 * macs + bias_adds
    if isinstance(layer, nn.ConvTranspose2d):
        n, _, in_h, in_w = inputs.shape
        macs = n * layer.weight.numel() * in_h * in_w
        bias_adds = output.numel() if layer.bias is not None else 0
        return macs, 2 * macs + bias_adds
    if isinstance(layer, nn.Linear):
        macs = output.numel() * layer.in_features
        bias_adds = output.numel() if layer.bias is not None else 0
        return macs, 2 * macs + bias_adds
    if isinstance(layer, nn.BatchNorm2d):
        return 0, 2 * output.numel()
    if isinstance(layer, (nn.ReLU, nn.ReLU6)):
        return 0, output.numel()
    if isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
        return 0, inputs.numel()
    if isinstance(layer, _FREE_LAYERS):
        return 0, 0
    raise ValueError(
        f"layer_costs cannot count layer {type(layer).__name__}: supported are "
        f"Conv2d, ConvTranspose2d, Linear, BatchNorm2d, ReLU, ReLU6, AdaptiveAvgPool2d, "
        f"AvgPool2d, MaxPool2d, Flatten, Identity and Dropout")


def layer_costs(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """Parameters, MACs and FLOPs of every leaf layer of ``model`` for one image.

    Runs ``model`` (in eval mode, without gradients) on one zero image of shape
    ``input_shape`` = (C, H, W) with forward hooks. A convolution costs
    C_out·(C_in/groups)·kH·kW·H_out·W_out MACs (``utils.arithmetic.conv_macs``); FLOPs
    count 2 per MAC, 1 per bias add, 2 per element for BatchNorm2d at inference (a
    multiply and an add), 1 per element for ReLU and 1 per input element for average
    pooling. Returns one dict per layer that ran, in order, with keys name, type,
    output_shape, params, macs, flops. Explained in
    ``chapters/03_convolution_types.ipynb``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    shape = validate.shape(input_shape, "input_shape", 3, "(C, H, W) for one image")
    rows: list[dict] = []

    def record(name: str):
        def hook(layer: nn.Module, inputs: tuple, output: Tensor) -> None:
            macs, flops = _layer_cost(layer, inputs[0], output)
            rows.append({
                "name": name, "type": type(layer).__name__,
                "output_shape": tuple(output.shape[1:]),
                "params": sum(p.numel() for p in layer.parameters(recurse=False)),
                "macs": macs, "flops": flops})
        return hook

    leaves = [(name, layer) for name, layer in model.named_modules()
              if not list(layer.children())]
    handles = [layer.register_forward_hook(record(name)) for name, layer in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            parameter = next(model.parameters(), None)
            factory = ({"device": parameter.device, "dtype": parameter.dtype}
                       if parameter is not None else {})
            model(torch.zeros((1, *shape), **factory))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return rows


def total_costs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Totals of ``layer_costs``: {"params", "macs", "flops"} of ``model`` per image.

    ``params`` is ``sum(p.numel() for p in model.parameters())`` (BatchNorm's γ and
    β count, its running mean and variance are buffers and do not). Explained in
    ``chapters/03_convolution_types.ipynb``.
    """
    rows = layer_costs(model, input_shape)
    return {"params": sum(p.numel() for p in model.parameters()),
            "macs": sum(row["macs"] for row in rows),
            "flops": sum(row["flops"] for row in rows)}
