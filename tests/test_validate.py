"""utils.validate: every check names the argument, the accepted range and the value, and
sizes that cannot fit in memory are refused before PyTorch's allocator sees them."""

import numpy as np
import pytest
import torch

from utils import conv, kernels, validate


def test_integer_accepts_numpy_and_checks_bounds():
    assert validate.integer(np.int64(3), "n", 1) == 3
    assert type(validate.integer(np.int64(3), "n", 1)) is int
    with pytest.raises(TypeError, match="n must be an int, got bool True"):
        validate.integer(True, "n")
    with pytest.raises(TypeError, match="n must be an int, got float 2.0"):
        validate.integer(2.0, "n")
    with pytest.raises(ValueError, match="n must be positive, got 0"):
        validate.integer(0, "n", 1)
    with pytest.raises(ValueError, match="n must be >= 2, got 1"):
        validate.integer(1, "n", 2)
    with pytest.raises(ValueError, match="n must be <= 9, got 10"):
        validate.integer(10, "n", 0, 9)


def test_odd_size_pair_shape_and_boolean():
    assert validate.odd_size(5) == 5
    with pytest.raises(ValueError, match=r"size must be an odd positive int \(1, 3, 5"):
        validate.odd_size(4)
    assert validate.integer_pair(3, "stride", 1) == (3, 3)
    assert validate.integer_pair((2, 4), "stride", 1) == (2, 4)
    with pytest.raises(ValueError, match="stride must be an int or a pair of ints, got 3"):
        validate.integer_pair((1, 2, 3), "stride", 1)
    assert validate.shape(torch.Size([3, 8, 8]), "shape", 3) == (3, 8, 8)
    with pytest.raises(ValueError, match=r"shape must be 3 positive ints \(C, H, W\)"):
        validate.shape((3, 8), "shape", 3, "(C, H, W)")
    with pytest.raises(ValueError, match="shape must be a sequence of positive ints"):
        validate.shape("abc", "shape")
    assert validate.boolean(False, "flag") is False
    with pytest.raises(TypeError, match="flag must be a bool, got int 1"):
        validate.boolean(1, "flag")


@pytest.mark.parametrize("value, kwargs, error, message", [
    (True, {}, TypeError, "x must be a number, got bool"),
    ("1", {}, TypeError, "x must be a number, got str"),
    (float("nan"), {}, ValueError, "x must be a finite number"),
    (0.0, {"positive": True}, ValueError, "x must be a positive finite number, got 0.0"),
    (-0.5, {"minimum": 0}, ValueError, "x must be >= 0, got -0.5"),
])
def test_real_rejects(value, kwargs, error, message):
    with pytest.raises(error, match=message):
        validate.real(value, "x", **kwargs)


def test_real_accepts_numpy_floats():
    assert validate.real(np.float32(0.5), "x", positive=True) == 0.5


def test_tensor_and_window_checks():
    x = torch.zeros(1, 1, 4, 4)
    assert validate.tensor(x, "input", "NCHW") is x
    with pytest.raises(ValueError, match=r"input must be a 4-D tensor \(N, C, H, W\)"):
        validate.tensor(x[0], "input", "NCHW")
    with pytest.raises(ValueError, match="floating-point"):
        validate.tensor(x.long(), "input", "NCHW")
    with pytest.raises(ValueError, match=r"effective kernel d\(k-1\)\+1 = 5 > padded "
                                         r"input 3 \+ 1 = 4"):
        validate.window_fits(3, 3, 1, 2, "height")


def test_allocation_names_the_size_it_would_need(monkeypatch):
    validate.allocation((1024, 1024), torch.float32, "a small tensor")
    monkeypatch.setenv("COURSE_MEMORY_LIMIT", str(1 << 20))
    with pytest.raises(MemoryError, match=r"a tensor would need 4.0 MiB \(1024 × 1024 "
                                          r"values of torch.float32\), more than the "
                                          r"1.0 MiB"):
        validate.allocation((1024, 1024), torch.float32, "a tensor")


def test_memory_limit_is_this_machines_memory():
    assert validate.memory_limit() >= 1 << 30


def test_huge_gaussian_is_refused_before_allocating():
    with pytest.raises(MemoryError, match=r"a 1000001×1000001 Gaussian kernel would "
                                          r"need 7.3 TiB"):
        kernels.gaussian(10**6 + 1, 1.0)


def test_huge_im2col_is_refused_before_allocating():
    # A view of one value, so the test itself allocates nothing: 4096 images of
    # 3 × 512 × 512, padded by 200 on each side.
    batch = torch.zeros(1, 1, 1, 1).expand(4096, 3, 512, 512)
    with pytest.raises(MemoryError, match=r"the zero-padded input would need 38.1 GiB"):
        conv.im2col(batch, 3, padding=200)
    with pytest.raises(MemoryError, match="the im2col columns would need"):
        conv.im2col(torch.zeros(1, 1, 1, 1).expand(64, 3, 512, 512), 31, padding=15)
