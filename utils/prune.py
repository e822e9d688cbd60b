"""Channel pruning by BatchNorm scale factors (network slimming, Liu et al. 2017).

Every channel c of a Conv2d followed by a BatchNorm2d leaves the BatchNorm as
γ_c·ẑ_c + β_c, so a channel with a small |γ_c| contributes little after it. Network
slimming ranks the |γ| of all BatchNorm layers together, removes the channels with the
smallest ones, and builds a physically smaller network: fewer filters in the
convolution, fewer entries in the BatchNorm, fewer input channels in the next layer.
Explained in ``chapters/09_model_compression.ipynb``; ``tests/test_prune.py`` checks it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import validate
from .layers import total_costs

__all__ = ["channels_to_keep", "prune_conv_bn_channels", "slim_sequential",
           "network_macs"]

# Layers that may sit between a pruned BatchNorm2d and the layer that consumes its
# channels: they act on each channel separately (or only reshape, like Flatten).
_PASS_THROUGH = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
                 nn.Tanh, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout,
                 nn.Dropout2d, nn.Flatten)


def _check_fraction(prune_fraction: object) -> float:
    prune_fraction = validate.real(prune_fraction, "prune_fraction", minimum=0)
    if prune_fraction >= 1:
        raise ValueError(f"prune_fraction must be in [0, 1), got {prune_fraction}")
    return float(prune_fraction)


def channels_to_keep(gammas: Sequence[Tensor], prune_fraction: float,
                     scope: str = "global") -> list[Tensor]:
    """Indices of the channels that survive a |γ| threshold, one tensor per layer.

    With ``scope="global"`` the |γ| of all layers are ranked together and the
    n = round(prune_fraction · total) smallest are pruned, as in network slimming;
    ties are broken by layer order and channel index. A layer always keeps at least
    its largest-|γ| channel, so no layer disappears. With ``scope="layer"`` each
    layer prunes its own round(prune_fraction · n_layer) smallest (at most n_layer − 1).
    Returns sorted int64 index tensors. Explained in
    ``chapters/09_model_compression.ipynb``.
    """
    fraction = _check_fraction(prune_fraction)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    if isinstance(gammas, Tensor) or not isinstance(gammas, Sequence) or not gammas:
        raise TypeError("gammas must be a non-empty list of 1-D tensors (one per "
                        f"BatchNorm layer), got {type(gammas).__name__}")
    for number, gamma in enumerate(gammas):
        if not isinstance(gamma, Tensor) or gamma.dim() != 1 or gamma.numel() == 0:
            shape = tuple(gamma.shape) if isinstance(gamma, Tensor) else type(gamma)
            raise ValueError(f"gammas[{number}] must be a non-empty 1-D tensor, got "
                             f"{shape}")
    if scope == "layer":
        return [torch.sort(g.detach().abs().double().cpu(), stable=True).indices[
            min(round(fraction * len(g)), len(g) - 1):].sort().values for g in gammas]
    magnitudes = torch.cat([g.detach().abs().double().cpu() for g in gammas])
    layer_of = torch.cat([torch.full((len(g),), n) for n, g in enumerate(gammas)])
    channel_of = torch.cat([torch.arange(len(g)) for g in gammas])
    n_pruned = round(fraction * len(magnitudes))
    order = torch.sort(magnitudes, stable=True).indices
    pruned = torch.zeros(len(magnitudes), dtype=torch.bool)
    pruned[order[:n_pruned]] = True
    keep = []
    for number, gamma in enumerate(gammas):
        mine = layer_of == number
        survivors = channel_of[mine & ~pruned]
        if len(survivors) == 0:
            survivors = gamma.detach().abs().argmax().view(1).cpu()
        keep.append(survivors.sort().values)
    return keep


def _check_keep(keep: object, channels: int) -> Tensor:
    if isinstance(keep, Tensor):
        if keep.dim() != 1 or keep.is_floating_point() or keep.dtype == torch.bool:
            raise ValueError(f"keep must be a 1-D tensor of channel indices, got dtype "
                             f"{keep.dtype} and shape {tuple(keep.shape)}")
        indices = keep.detach().cpu().long()
    elif isinstance(keep, Sequence) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in keep):
        indices = torch.tensor(list(keep), dtype=torch.long)
    else:
        raise TypeError(f"keep must be a 1-D integer tensor or a list of ints, got "
                        f"{type(keep).__name__}")
    if indices.numel() == 0:
        raise ValueError("keep must name at least one channel, got none")
    if indices.min() < 0 or indices.max() >= channels:
        raise ValueError(f"keep must hold indices in [0, {channels}), got "
                         f"{indices.tolist()}")
    if len(indices.unique()) != len(indices):
        raise ValueError(f"keep must not repeat a channel, got {indices.tolist()}")
    return indices.sort().values


def prune_conv_bn_channels(
    conv: nn.Conv2d, bn: nn.BatchNorm2d, next_layer: nn.Conv2d | nn.Linear,
    keep: Tensor | Sequence[int],
) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d | nn.Linear]:
    """Smaller copies of conv → bn → … → next_layer keeping only channels ``keep``.

    The new conv has the filters w[keep] (and biases b[keep]), the new BatchNorm the
    entries γ, β, running mean and variance at ``keep``, and the next layer only the
    inputs that read those channels: w_next[:, keep] for a Conv2d, and for a Linear
    after a flatten of C×H×W maps the columns c·H·W … (c+1)·H·W − 1 of every kept c.
    Layers in between must act per channel (ReLU, pooling, Flatten). The originals
    are not changed. If the removed channels had γ = β = 0, the network computes the
    same function as before. Explained in ``chapters/09_model_compression.ipynb``.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
    if not isinstance(next_layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"next_layer must be an nn.Conv2d or nn.Linear, got "
                        f"{type(next_layer).__name__}")
    channels = conv.out_channels
    if conv.groups != 1:
        raise ValueError(f"conv must have groups=1 to prune its filters, got "
                         f"groups={conv.groups}")
    if bn.num_features != channels:
        raise ValueError(f"channel mismatch: conv has {channels} output channels but "
                         f"bn normalises {bn.num_features}")
    if isinstance(next_layer, nn.Conv2d):
        if next_layer.groups != 1 or next_layer.in_channels != channels:
            raise ValueError(
                f"next_layer must be a groups=1 Conv2d reading {channels} channels, "
                f"got in_channels={next_layer.in_channels}, groups={next_layer.groups}")
    elif next_layer.in_features % channels:
        raise ValueError(
            f"next_layer.in_features ({next_layer.in_features}) must be a multiple of "
            f"the {channels} channels (a flattened C×H×W input)")
    keep = _check_keep(keep, channels).to(conv.weight.device)
    kept = len(keep)
    factory = {"device": conv.weight.device, "dtype": conv.weight.dtype}

    new_conv = nn.Conv2d(conv.in_channels, kept, conv.kernel_size, stride=conv.stride,
                         padding=conv.padding, dilation=conv.dilation,
                         bias=conv.bias is not None, padding_mode=conv.padding_mode,
                         **factory)
    new_bn = nn.BatchNorm2d(kept, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                            track_running_stats=bn.track_running_stats,
                            device=bn.weight.device if bn.affine else factory["device"],
                            dtype=bn.weight.dtype if bn.affine else factory["dtype"])
    with torch.no_grad():
        new_conv.weight.copy_(conv.weight[keep])
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias[keep])
        if bn.affine:
            new_bn.weight.copy_(bn.weight[keep])
            new_bn.bias.copy_(bn.bias[keep])
        if bn.track_running_stats:
            new_bn.running_mean.copy_(bn.running_mean[keep])
            new_bn.running_var.copy_(bn.running_var[keep])
            new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
        new_next = _prune_inputs(next_layer, keep, channels)
    new_conv.train(conv.training)
    new_bn.train(bn.training)
    new_next.train(next_layer.training)
    return new_conv, new_bn, new_next


def _prune_inputs(layer: nn.Conv2d | nn.Linear, keep: Tensor,
                  channels: int) -> nn.Conv2d | nn.Linear:
    """A copy of ``layer`` that reads only the input channels ``keep``."""
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(len(keep), layer.out_channels, layer.kernel_size,
                        stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation, bias=layer.bias is not None,
                        padding_mode=layer.padding_mode, **factory)
        new.weight.copy_(layer.weight[:, keep])
    else:
        per_channel = layer.in_features // channels
        columns = (keep[:, None] * per_channel
                   + torch.arange(per_channel, device=keep.device)).flatten()
        new = nn.Linear(len(columns), layer.out_features, bias=layer.bias is not None,
                        **factory)
        new.weight.copy_(layer.weight[:, columns])
    if layer.bias is not None:
        new.bias.copy_(layer.bias)
    return new


def _conv_bn_pairs(layers: list[nn.Module]) -> list[tuple[int, int]]:
    """(index of a Conv2d followed by a BatchNorm2d, index of the layer reading it)."""
    pairs = []
    for index in range(len(layers) - 1):
        if not (isinstance(layers[index], nn.Conv2d)
                and isinstance(layers[index + 1], nn.BatchNorm2d)):
            continue
        for later in range(index + 2, len(layers)):
            layer = layers[later]
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                pairs.append((index, later))
                break
            if not isinstance(layer, _PASS_THROUGH):
                raise ValueError(
                    f"layer {later} ({type(layer).__name__}) between the BatchNorm2d "
                    f"at {index + 1} and the next Conv2d/Linear does not act per "
                    f"channel, so its channels cannot be pruned")
        else:
            raise ValueError(
                f"the BatchNorm2d at {index + 1} feeds no later Conv2d or Linear; "
                f"pruning its channels would change the network's output size")
    return pairs


def slim_sequential(model: nn.Sequential, prune_fraction: float,
                    scope: str = "global") -> tuple[nn.Sequential, list[Tensor]]:
    """Network slimming of an ``nn.Sequential``: a smaller copy and the kept channels.

    Every Conv2d directly followed by a BatchNorm2d is pruned with
    ``prune_conv_bn_channels``, with channels chosen by ``channels_to_keep`` over the
    |γ| of all those BatchNorm layers (``scope="global"``, one threshold for all, as
    in the paper, or ``"layer"``, the same fraction in every layer). The layer that
    reads the channels is the next Conv2d or Linear (only per-channel layers may lie
    between). ``model`` is not changed. Explained in ``chapters/09_model_compression.ipynb``.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    fraction = _check_fraction(prune_fraction)
    layers = list(copy.deepcopy(model))
    pairs = _conv_bn_pairs(layers)
    if not pairs:
        raise ValueError("model has no Conv2d followed by a BatchNorm2d to prune")
    if not all(layers[conv + 1].affine for conv, _ in pairs):
        raise ValueError("every BatchNorm2d to prune needs affine=True (a γ to rank)")
    keep = channels_to_keep([layers[conv + 1].weight for conv, _ in pairs], fraction,
                            scope)
    for (conv, reader), indices in zip(pairs, keep, strict=True):
        layers[conv], layers[conv + 1], layers[reader] = prune_conv_bn_channels(
            layers[conv], layers[conv + 1], layers[reader], indices)
    return nn.Sequential(*layers).train(model.training), keep


def network_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model``, per image.

    The MAC column of ``utils.layers.layer_costs`` summed: a Conv2d costs
    C_out·(C_in/groups)·kH·kW·H_out·W_out (``utils.arithmetic.conv_macs``), a Linear
    in·out; BatchNorm, ReLU and pooling do no multiply-accumulate. ``input_shape`` is
    (C, H, W) of one image. Explained in ``chapters/09_model_compression.ipynb``.
    """
    return total_costs(model, input_shape)["macs"]
