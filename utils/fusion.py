"""Conv-BN fusion: fold an inference-mode BatchNorm2d into the convolution before it.

Derived in ``chapters/09_model_compression.ipynb``, next to channel pruning
(``utils.prune``), the other change that makes a trained network cheaper to run
without retraining. ``tests/test_fusion.py`` checks the fused layer against
``bn(conv(x))`` and against ``torch.nn.utils.fusion.fuse_conv_bn_eval``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fuse_conv_bn"]


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an inference-mode BatchNorm2d into the Conv2d before it.

    BatchNorm computes γ(z − μ)/σ + β with σ = √(running_var + eps), a per-channel
    affine map, so bn(conv(x)) is one convolution with w' = w·γ/σ and
    b' = β + (b − μ)·γ/σ (b = 0 when the conv has no bias). Returns a new Conv2d with
    the same stride, padding, dilation and groups; fused(x) equals bn(conv(x)) in eval
    mode. Explained in ``chapters/09_model_compression.ipynb``.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"channel mismatch: conv has {conv.out_channels} output channels but bn "
            f"normalises {bn.num_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn has no running statistics (track_running_stats=False), "
                         "so there is no fixed affine map to fold")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode, device=conv.weight.device,
                      dtype=conv.weight.dtype)
    with torch.no_grad():
        sigma = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(sigma)
        beta = bn.bias if bn.affine else torch.zeros_like(sigma)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(sigma)
        scale = gamma / sigma
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(beta + (bias - bn.running_mean) * scale)
    return fused.train(conv.training)
