"""A classifier head for the offline VGG16: a linear probe on its conv5_3 features.

The offline VGG16 weights are the 13 convolutional layers only, so there are no
ImageNet class scores. A *linear probe* is transfer learning at its simplest: freeze
the pretrained layers, global-average-pool the last feature maps (relu5_3) into 512
numbers per image, and train one linear layer on labelled images the course has
offline, the CIFAR-10 sample, upsampled to ``PROBE_SIZE`` pixels. The same probe on a
randomly initialised VGG16 shows how much of the accuracy comes from pretraining.
Derived in ``chapters/07_attribution.ipynb``.

Extracting the features is the slow part, so ``probe_features`` caches them under
``data/`` (recomputed when the file is missing or unreadable), the way
``utils.train.load_or_train_tinycnn`` caches TinyCNN's weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .data import cifar10_sample, data_dir, save_atomic
from .models import vgg16_features
from .vis_optim import imagenet_normalise

__all__ = ["PROBE_SIZE", "PROBE_LAYER", "N_PROBE_TRAIN", "cifar_probe_split",
           "cifar_probe_images", "gap_features", "probe_features", "fit_linear_probe",
           "random_vgg16_features", "VGG16Classifier"]

PROBE_SIZE = 48  # CIFAR's 32×32 images, upsampled ×1.5
PROBE_LAYER = 30  # features[:30] ends with relu5_3 (features[29])
N_PROBE_TRAIN = 1000  # of the 1,398 sample images; the other 398 are held out


def cifar_probe_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the CIFAR-10 sample for training (1,000) and held-out testing (398),
    from a random permutation drawn with ``seed``."""
    _, labels = cifar10_sample()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return order[:N_PROBE_TRAIN], order[N_PROBE_TRAIN:]


def cifar_probe_images(size: int = PROBE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """The CIFAR-10 sample as VGG16 input: float32 (1398, 3, size, size), resized
    (bilinear, antialiased) and normalised with the ImageNet mean and standard
    deviation; and the labels (1398,)."""
    size = validate.integer(size, "size", 32)
    images, labels = cifar10_sample()
    pixels = images.float() / 255
    if size != pixels.shape[-1]:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear",
                               antialias=True, align_corners=False).clamp(0, 1)
    return imagenet_normalise(pixels), labels


class VGG16Classifier(nn.Module):
    """VGG16 ``features`` up to relu5_3, global average pooling, and a linear head:
    logits (N, classes) for normalised images (N, 3, H, W).

    The ReLUs are not in-place (attribution methods hook them). ``head`` is an
    ``nn.Linear(512, classes)``, e.g. from ``fit_linear_probe``.
    """

    def __init__(self, features: nn.Sequential, head: nn.Linear):
        super().__init__()
        if not isinstance(features, nn.Sequential) or len(features) < PROBE_LAYER:
            raise TypeError("features must be VGG16's features (an nn.Sequential of 31 "
                            "layers)")
        if not isinstance(head, nn.Linear) or head.in_features != 512:
            raise TypeError("head must be an nn.Linear with 512 inputs")
        self.features = features[:PROBE_LAYER]
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


@torch.no_grad()
def gap_features(features: nn.Sequential, images: torch.Tensor,
                 batch_size: int = 100) -> torch.Tensor:
    """Global-average-pooled relu5_3 features (N, 512) of normalised images."""
    trunk = nn.Sequential(*features[:PROBE_LAYER], nn.AdaptiveAvgPool2d(1),
                          nn.Flatten())
    trunk.eval()
    return torch.cat([trunk(batch) for batch in images.split(batch_size)])


def random_vgg16_features(seed: int = 0) -> nn.Sequential:
    """VGG16 ``features`` with random weights that are the same on every CPU.

    torchvision initialises VGG's convolutions with Kaiming-normal weights (variance
    2/fan_out, fan_out = C_out·k²) and zero biases, but PyTorch's normal sampler rounds
    differently on different processors, which changes the baseline's features and
    accuracy. Here every weight is uniform with the same variance,
    (2u − 1)·√(6/fan_out), with u drawn in float64 from a generator seeded with
    ``seed`` (``torch.rand`` gives the same bits everywhere); biases are zero.
    """
    features = vgg16_features(pretrained=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in features:
            if isinstance(module, nn.Conv2d):
                weight = module.weight
                fan_out = weight.shape[0] * weight.shape[2] * weight.shape[3]
                uniform = torch.rand(weight.shape, generator=generator,
                                     dtype=torch.float64)
                weight.copy_((2 * uniform - 1) * math.sqrt(6.0 / fan_out))
                module.bias.zero_()
    return features


def _feature_file(pretrained: bool, size: int) -> Path:
    kind = "imagenet" if pretrained else "random"
    return data_dir() / f"vgg16_{kind}_cifar_sample_gap_{size}px.pt"


def probe_features(pretrained: bool = True, size: int = PROBE_SIZE,
                   path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1398, 512) float32 features of the CIFAR-10 sample and its labels, from
    the ImageNet VGG16 (``pretrained=True``) or a random one
    (``random_vgg16_features(0)``), loaded from ``data/`` when cached.

    An unreadable or mismatched cache file is deleted and rebuilt.
    """
    validate.boolean(pretrained, "pretrained")
    path = Path(path) if path is not None else _feature_file(pretrained, size)
    _, labels = cifar10_sample()
    if path.exists():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            features = cached["features"]
            if features.shape == (len(labels), 512) and torch.equal(
                    cached["labels"], labels):
                return features, labels
        except Exception:  # unreadable: rebuild below
            pass
        path.unlink()
    trunk = vgg16_features(pretrained=True) if pretrained else random_vgg16_features(0)
    images, _ = cifar_probe_images(size)
    features = gap_features(trunk, images)
    save_atomic({"features": features, "labels": labels}, path)
    return features, labels


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, classes: int = 10,
                     weight_decay: float = 1e-2, iterations: int = 100) -> nn.Linear:
    """Multinomial logistic regression on standardised features, by full-batch L-BFGS
    in float64: minimise mean cross-entropy + ``weight_decay``·|W|².

    Deterministic (no mini-batches, no random start: the weights start at zero). The
    standardisation (per-feature mean and standard deviation of ``features``) is
    folded into the returned ``nn.Linear(512, classes)``, which takes raw features and
    is float32.
    """
    validate.tensor(features, "features", ("N", "D"))
    if not isinstance(labels, torch.Tensor) or labels.shape != (features.shape[0],):
        raise ValueError(f"labels must be a tensor of {features.shape[0]} class "
                         f"indices")
    classes = validate.integer(classes, "classes", 2)
    weight_decay = validate.real(weight_decay, "weight_decay", minimum=0)
    iterations = validate.integer(iterations, "iterations", 1)
    x = features.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mean) / std
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, labels) \
            + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    head = nn.Linear(x.shape[1], classes)
    with torch.no_grad():
        folded = weight.detach() / std
        head.weight.copy_(folded)
        head.bias.copy_(bias.detach() - folded @ mean)
    return head
