"""Data for the course: MNIST, Fashion-MNIST, a CIFAR-10 sample and sample photographs.

Files live in ``data/`` at the top of the repository (git-ignored; the environment
variable ``COURSE_DATA_DIR`` moves it). When ``COURSE_DATA_MIRROR`` names an offline
mirror laid out like torchvision's ``root`` (as ``../shared/data`` is), files are copied
from it; otherwise torchvision downloads them. Every file is checked against its
published checksum, and a corrupt or truncated file is replaced, never used.
Run ``python -m utils.data`` (``make data``) to fetch everything once.
Explained in ``chapters/00_getting_started.ipynb``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from . import validate

__all__ = [
    "data_dir", "mirror_dir", "ensure_file", "load_mnist", "load_fashion_mnist",
    "dataset_tensors", "cifar10_sample", "sample_image", "centre_square", "data_status",
    "save_atomic",
    "MNIST_MEAN", "MNIST_STD", "CIFAR10_CLASSES", "SAMPLE_IMAGES",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# Published MD5 checksums (what torchvision checks) of the raw files.
DATASET_FILES: dict[str, dict[str, str]] = {
    "MNIST": {
        "MNIST/raw/train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "MNIST/raw/train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "MNIST/raw/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "MNIST/raw/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "FashionMNIST": {
        "FashionMNIST/raw/train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "FashionMNIST/raw/train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "FashionMNIST/raw/t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "FashionMNIST/raw/t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
CIFAR_SAMPLE_FILE = "cifar10-sample/cifar10_data_batch_4_first1398.npz"
CIFAR_SAMPLE_SHA256 = "720f4cb82c348e975d31aebb4dd27335fd37f09656b5daaa206d048c3ecc4a6a"
CIFAR_SAMPLE_RANGE = (30000, 31398)  # indices in CIFAR10(train=True)

SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "grace_hopper")


def data_dir() -> Path:
    """The course's data folder (``COURSE_DATA_DIR``, else ``data/`` in the repo)."""
    path = Path(os.environ.get("COURSE_DATA_DIR") or REPO_ROOT / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror_dir() -> Path | None:
    """The offline mirror named by ``COURSE_DATA_MIRROR``, or ``None``.

    The mirror is only ever read from.
    """
    value = os.environ.get("COURSE_DATA_MIRROR")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"COURSE_DATA_MIRROR={value!r} is not a directory")
    return path


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_file(relative: str, digest: str, algorithm: str = "md5") -> Path | None:
    """Make ``data/<relative>`` a verified copy; return its path, or ``None``.

    A present file with the right checksum is kept. A wrong one (corrupt, truncated)
    is deleted, together with anything torchvision extracted from it. Then the file is
    copied from the mirror, if there is one, and verified. ``None`` means it is not
    available offline, so the caller may download it.
    """
    target = data_dir() / relative
    if target.exists():
        if _digest(target, algorithm) == digest:
            return target
        target.unlink()
        if target.suffix == ".gz":
            target.with_suffix("").unlink(missing_ok=True)
    mirror = mirror_dir()
    if mirror is None or not (mirror / relative).exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(mirror / relative, partial)
    if _digest(partial, algorithm) != digest:
        partial.unlink()
        raise OSError(f"the mirror's copy of {relative} fails its {algorithm} check")
    partial.replace(target)
    return target


def _torchvision_dataset(name: str, train: bool, transform=None):
    validate.boolean(train, "train")
    for relative, md5 in DATASET_FILES[name].items():
        ensure_file(relative, md5)
    cls = getattr(torchvision.datasets, name)
    with contextlib.redirect_stdout(io.StringIO()):  # quiet "Extracting ..." lines
        return cls(str(data_dir()), train=train, download=True, transform=transform)


def load_mnist(train: bool = True, transform=None) -> torchvision.datasets.MNIST:
    """The MNIST training (60,000) or test (10,000) set as a torchvision dataset.

    ``dataset.data`` holds uint8 images (N, 28, 28) and ``dataset.targets`` int64
    labels; ``dataset_tensors`` turns them into float tensors for fast training.
    """
    return _torchvision_dataset("MNIST", train, transform)


def load_fashion_mnist(train: bool = True, transform=None):
    """The Fashion-MNIST training or test set, laid out like ``load_mnist``."""
    return _torchvision_dataset("FashionMNIST", train, transform)


def dataset_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of an MNIST-style dataset at once: float32 (N, 1, 28, 28) in [0, 1]
    and int64 labels (N,).

    Pre-built tensors feed a training loop much faster than per-sample PIL
    transforms (measured in ``benchmarks/loader_bench.py``).
    """
    data = getattr(dataset, "data", None)
    if not isinstance(data, torch.Tensor) or data.dim() != 3:
        raise TypeError("dataset must be an MNIST-style torchvision dataset with a "
                        f"(N, H, W) uint8 .data tensor, got {type(dataset).__name__}")
    images = data.unsqueeze(1).float().div_(255.0)
    return images, torch.as_tensor(dataset.targets, dtype=torch.int64)


def cifar10_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """1,398 CIFAR-10 training images (indices 30000–31397) and their labels.

    Returns uint8 images (1398, 3, 32, 32) in RGB and int64 labels (1398,); class
    names are in ``CIFAR10_CLASSES``. Offline they come from the mirror's sample file,
    online from torchvision's full download: the arrays are identical.
    """
    path = ensure_file(CIFAR_SAMPLE_FILE, CIFAR_SAMPLE_SHA256, "sha256")
    if path is not None:
        with np.load(path) as archive:
            images, labels = archive["images_chw"], archive["labels"]
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            full = torchvision.datasets.CIFAR10(str(data_dir()), train=True, download=True)
        start, stop = CIFAR_SAMPLE_RANGE
        images = full.data[start:stop].transpose(0, 3, 1, 2)
        labels = np.asarray(full.targets[start:stop])
    return (
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        torch.from_numpy(labels.astype(np.int64)),
    )


def _load_photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(matplotlib.image.imread(f, format="jpg"))
    import skimage.data

    return getattr(skimage.data, name)()


def sample_image(name: str = "chelsea", size: int | None = None) -> torch.Tensor:
    """A real photograph shipped inside an installed package, as float32 (3, H, W)
    RGB in [0, 1].

    ``name``: ``"chelsea"`` (a cat, CC0), ``"coffee"`` (CC0), ``"astronaut"`` (public
    domain, from scikit-image) or ``"grace_hopper"`` (matplotlib). With ``size`` the
    photo is centre-cropped to a square and resized to ``size``×``size`` (antialiased
    bilinear).
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown image {name!r}; choose one of {SAMPLE_IMAGES}")
    image = torch.from_numpy(_load_photo(name).copy()).permute(2, 0, 1)
    image = image[:3].float().div_(255.0)
    return image if size is None else centre_square(image, size)


def centre_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """The largest centred square of a (C, H, W) image, resized to ``size``×``size``
    (bilinear, antialiased, clamped back to [0, 1])."""
    size = validate.integer(size, "size", 1)
    validate.tensor(image, "image", "CHW")
    height, width = image.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[:, top : top + side, left : left + side]
    resized = F.interpolate(
        square[None], size=(size, size), mode="bilinear", antialias=True,
        align_corners=False,
    )
    return resized[0].clamp_(0.0, 1.0)


def save_atomic(obj: object, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` without ever leaving a half-written file: the
    file is written next to its target and then renamed over it (the way the cached
    weights and features under ``data/`` are saved)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def data_status() -> list[dict[str, object]]:
    """One row per data file: name, whether it is present and whether its checksum
    matches. Shown in ``chapters/00_getting_started.ipynb``."""
    rows = []
    expected = [(rel, md5, "md5") for files in DATASET_FILES.values()
                for rel, md5 in files.items()]
    expected.append((CIFAR_SAMPLE_FILE, CIFAR_SAMPLE_SHA256, "sha256"))
    for relative, digest, algorithm in expected:
        path = data_dir() / relative
        present = path.exists()
        ok = present and _digest(path, algorithm) == digest
        rows.append({"file": relative, "present": present, "checksum_ok": ok,
                     "algorithm": algorithm, "expected": digest[:12]})
    return rows


def prepare_all() -> None:
    """Fetch or copy every data set, then print their status."""
    for train in (True, False):
        load_mnist(train)
        load_fashion_mnist(train)
    cifar10_sample()
    for row in data_status():
        print(f"{'ok' if row['checksum_ok'] else 'MISSING':8} {row['file']}")


if __name__ == "__main__":
    prepare_all()
