"""The course's networks: ``TinyCNN`` (chapter 5) and pretrained VGG16 ``features``.

VGG16 weights are torchvision's IMAGENET1K_V1 convolutional layers, fetched and checked
by ``utils.weights``. Explained in ``chapters/05_tinycnn_mnist.ipynb`` (TinyCNN) and
``chapters/06_vgg16_feature_maps.ipynb`` (VGG16).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from . import validate
from .weights import VGG16_CONV_INDICES, vgg16_state

__all__ = [
    "TinyCNN", "vgg16_features", "truncate_after", "VGG16_LAYERS", "VGG16_CONV_INDICES",
    "IMAGENET_MEAN", "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Names of the 31 layers of VGG16 ``features`` (index -> name used in the chapters).
VGG16_LAYERS: dict[str, str] = {}
_block_sizes = (2, 2, 3, 3, 3)
_index = 0
for _block, _n in enumerate(_block_sizes, start=1):
    for _i in range(1, _n + 1):
        VGG16_LAYERS[str(_index)] = f"conv{_block}_{_i}"
        VGG16_LAYERS[str(_index + 1)] = f"relu{_block}_{_i}"
        _index += 2
    VGG16_LAYERS[str(_index)] = f"pool{_block}"
    _index += 1



class TinyCNN(nn.Module):
    """conv(1→16, k, same) → ReLU → maxpool 2 → conv(16→32, k, same) → ReLU → maxpool 2
    → linear(32·7·7 → 10), for 28×28 inputs.

    ``kernel_size`` (odd, default 3) is a parameter for the chapter-5 exercise on 5×5
    kernels; ``in_channels`` allows RGB inputs. Trained in
    ``chapters/05_tinycnn_mnist.ipynb``.

    Each block has its own ReLU and pooling modules (``relu1``, ``pool1``, ``relu2``,
    ``pool2``), so that a hook can take any stage: ``relu2``'s output is the last
    rectified feature map, (N, 32, 7, 7), which Grad-CAM explains
    (``chapters/07_attribution.ipynb``). These modules have no parameters, so the
    ``state_dict`` keys are ``conv1``, ``conv2`` and ``fc`` only.

    ``forward`` pools before the ReLU: ReLU never decreases, so max-pooling commutes
    with it (max(relu(a), relu(b)) = relu(max(a, b))), and both orders give
    bit-identical outputs and gradients; pooling first runs the ReLU on a quarter of
    the values.
    """

    def __init__(self, kernel_size: int = 3, in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        kernel_size = validate.odd_size(kernel_size, "kernel_size")
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size, padding=padding)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, kernel_size, padding=padding)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(32 * 7 * 7, n_classes)

    @property
    def relu(self) -> nn.ReLU:
        """Block 1's ReLU, under the name that code written before the split used
        (every ReLU of TinyCNN computes the same function)."""
        return self.relu1

    @property
    def pool(self) -> nn.MaxPool2d:
        """Block 1's max-pooling, under the name that code written before the split
        used (both pooling layers compute the same function)."""
        return self.pool1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"TinyCNN expects (N, C, 28, 28) input, got {tuple(x.shape)}")
        x = self.relu1(self.pool1(self.conv1(x)))  # = pool(relu(conv1(x))), cheaper
        x = self.relu2(self.pool2(self.conv2(x)))
        return self.fc(x.flatten(1))


def vgg16_features(pretrained: bool = True) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (13 convs, 5 max-pools; 14,714,688 parameters).

    With ``pretrained=True`` it carries the ImageNet IMAGENET1K_V1 weights (see
    ``utils.weights.vgg16_state``) and expects RGB input normalised with ``IMAGENET_MEAN`` and
    ``IMAGENET_STD``; with ``pretrained=False`` the weights are torchvision's random
    initialisation (seed first for reproducibility). Returned in eval mode.
    """
    validate.boolean(pretrained, "pretrained")
    vgg = torchvision.models.vgg
    features = vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    if pretrained:
        features.load_state_dict(vgg16_state())
    return features.eval()


def truncate_after(features: nn.Sequential, layer: str | int) -> nn.Sequential:
    """The layers of ``features`` up to and including ``layer``, so that a forward
    pass stops there and deeper layers cost nothing.

    ``layer`` is an index (``13`` or ``"13"``) or a VGG16 name from
    ``VGG16_LAYERS`` (``"conv3_3"``). The returned ``nn.Sequential``
    shares its modules (and weights) with ``features``.
    """
    if not isinstance(features, nn.Sequential):
        raise TypeError("features must be an nn.Sequential, got "
                        f"{type(features).__name__}")
    if isinstance(layer, bool):
        raise TypeError("layer must be an int index or a layer name, got a bool")
    if isinstance(layer, str):
        by_name = {name: int(index) for index, name in VGG16_LAYERS.items()}
        if layer in by_name:
            index = by_name[layer]
        elif layer.isdigit():
            index = int(layer)
        else:
            raise ValueError(f"unknown layer {layer!r}: use an index or a name such as "
                             "'conv1_1', 'relu3_3', 'pool5'")
    elif isinstance(layer, int):
        index = layer
    else:
        raise TypeError(f"layer must be an int or a str, got {type(layer).__name__}")
    if not 0 <= index < len(features):
        raise ValueError(f"layer index must be in [0, {len(features) - 1}], "
                         f"got {index}")
    return features[: index + 1]
