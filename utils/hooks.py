"""Capturing intermediate feature maps with forward hooks.

Explained in ``chapters/06_vgg16_feature_maps.ipynb`` (hook hygiene: detach the
output, remove the handle).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["capture_activations"]


def _detach(output: object) -> object:
    if isinstance(output, torch.Tensor):
        # A copy, not a view: an in-place layer after the hooked one (VGG16's
        # ReLU(inplace=True) after each conv) would otherwise overwrite the capture.
        return output.detach().clone()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach(o) for o in output)
    return output


@contextmanager
def capture_activations(
    model: nn.Module, layer_names: Iterable[str] | str
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of named sub-modules while the ``with`` block runs.

    ``layer_names`` are names from ``model.named_modules()`` (for VGG16 ``features``:
    ``"0"`` is conv1_1; see ``utils.models.VGG16_LAYERS``). Yields a dict that fills
    with ``output.detach().clone()`` per layer on every forward pass (the last pass
    wins), so no autograd graph is kept alive and a later in-place layer cannot
    change what was captured. Every hook handle is removed when the block ends,
    also when it raises. An unknown name raises ``KeyError`` before any hook is added.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if not names:
        raise ValueError("layer_names is empty: name at least one layer")
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        known = ", ".join(repr(n) for n in list(modules)[1:12])
        raise KeyError(f"unknown layer name(s) {unknown}; the model has e.g. {known}, ...")
    activations: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            activations[name] = _detach(output)

        return hook

    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        yield activations
    finally:
        for handle in handles:
            handle.remove()
