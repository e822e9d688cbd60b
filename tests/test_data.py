"""utils.data: offline mirror, checksums, replacement of corrupt files, sample data."""

import hashlib
import shutil

import numpy as np
import pytest
import torch

from utils import data


@pytest.fixture
def tmp_data(tmp_path, monkeypatch):
    """An empty data folder and a private copy of the (read-only) mirror."""
    mirror = data.mirror_dir()
    if mirror is None:
        pytest.skip("COURSE_DATA_MIRROR is not set")
    private = tmp_path / "mirror"
    for relative in data.DATASET_FILES["MNIST"]:
        (private / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / relative, private / relative)
    (private / data.CIFAR_SAMPLE_FILE).parent.mkdir(parents=True)
    shutil.copyfile(mirror / data.CIFAR_SAMPLE_FILE, private / data.CIFAR_SAMPLE_FILE)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(private))
    return tmp_path / "data", private


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_mnist_from_mirror_matches_published_checksums(tmp_data):
    data_path, mirror = tmp_data
    before = {p: p.read_bytes() for p in mirror.rglob("*") if p.is_file()}
    train, test = data.load_mnist(True), data.load_mnist(False)
    assert len(train) == 60_000 and len(test) == 10_000
    for relative, expected in data.DATASET_FILES["MNIST"].items():
        assert md5(data_path / relative) == expected
    after = {p: p.read_bytes() for p in mirror.rglob("*") if p.is_file()}
    assert before == after, "the mirror must never be written to"
    images, labels = data.dataset_tensors(test)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert labels.dtype == torch.int64 and labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_corrupt_and_truncated_files_are_replaced(tmp_data):
    data_path, _ = tmp_data
    relative = "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    expected = data.DATASET_FILES["MNIST"][relative]
    assert data.ensure_file(relative, expected) is not None
    target = data_path / relative
    target.write_bytes(target.read_bytes()[:100])  # truncated
    data.ensure_file(relative, expected)
    assert md5(target) == expected
    corrupted = bytearray(target.read_bytes())
    corrupted[50] ^= 0xFF
    target.write_bytes(bytes(corrupted))
    data.ensure_file(relative, expected)
    assert md5(target) == expected


def test_bad_mirror_copy_is_refused(tmp_data):
    _, mirror = tmp_data
    relative = "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    (mirror / relative).write_bytes(b"not the real file")
    with pytest.raises(OSError, match="fails its md5 check"):
        data.ensure_file(relative, data.DATASET_FILES["MNIST"][relative])


def test_missing_file_without_mirror_returns_none(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_DATA_MIRROR", raising=False)
    assert data.ensure_file("MNIST/raw/t10k-labels-idx1-ubyte.gz", "0" * 32) is None


def test_mirror_must_be_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        data.mirror_dir()


def test_cifar10_sample_arrays(tmp_data):
    images, labels = data.cifar10_sample()
    assert images.shape == (1398, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (1398,) and labels.dtype == torch.int64
    with np.load(data.mirror_dir() / data.CIFAR_SAMPLE_FILE) as archive:
        np.testing.assert_array_equal(images.numpy(), archive["images_chw"])
        np.testing.assert_array_equal(labels.numpy(), archive["labels_all_10000"][:1398])
    assert len(data.CIFAR10_CLASSES) == 10


def test_sample_images():
    import skimage.data

    cat = data.sample_image("chelsea")
    assert cat.shape == (3, 300, 451) and cat.dtype == torch.float32
    np.testing.assert_allclose(cat.permute(1, 2, 0).numpy() * 255, skimage.data.chelsea(),
                               atol=1e-3)
    small = data.sample_image("chelsea", size=64)
    assert small.shape == (3, 64, 64) and 0 <= float(small.min()) <= float(small.max()) <= 1
    assert data.sample_image("grace_hopper").shape[0] == 3


@pytest.mark.parametrize("call, error, message", [
    (lambda: data.sample_image("dog"), ValueError, "unknown image"),
    (lambda: data.sample_image("chelsea", size=0), ValueError, "size must be"),
    (lambda: data.load_mnist(train="yes"), TypeError, "train must be a bool"),
    (lambda: data.dataset_tensors([1, 2]), TypeError, "MNIST-style"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
