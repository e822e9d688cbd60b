"""utils.conv against PyTorch, torchvision and SciPy, and its input validation."""

from unittest import mock

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from utils import conv as C

quick = settings(max_examples=40, deadline=None, derandomize=True)
ATOL = 1e-4


def _rtol_close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-4)


# ------------------------------------------------------------------------- im2col


conv_cases = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "groups": st.integers(1, 3),
    "c_in": st.integers(1, 3), "c_out": st.integers(1, 3),
    "k_h": st.integers(1, 4), "k_w": st.integers(1, 4),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2),
                                                      st.integers(0, 2))),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "height": st.integers(1, 11), "width": st.integers(1, 11),
    "bias": st.booleans(), "double": st.booleans(),
})


def _make_case(case, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if case["double"] else torch.float32
    c_in, c_out = case["c_in"] * case["groups"], case["c_out"] * case["groups"]
    x = torch.randn(case["batch"], c_in, case["height"], case["width"], generator=g,
                    dtype=dtype)
    w = torch.randn(c_out, case["c_in"], case["k_h"], case["k_w"], generator=g,
                    dtype=dtype)
    b = torch.randn(c_out, generator=g, dtype=dtype) if case["bias"] else None
    kwargs = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    return x, w, b, kwargs


def _fits(case):
    pad_h, pad_w = ((case["padding"],) * 2 if isinstance(case["padding"], int)
                    else case["padding"])
    d_h, d_w = case["dilation"]
    return (d_h * (case["k_h"] - 1) < case["height"] + 2 * pad_h
            and d_w * (case["k_w"] - 1) < case["width"] + 2 * pad_w)


@quick
@given(case=conv_cases)
def test_im2col_matches_unfold(case):
    assume(_fits(case))
    x, w, _, kwargs = _make_case(case)
    kernel = tuple(w.shape[2:])
    del kwargs["groups"]
    assert torch.equal(C.im2col(x, kernel, **kwargs), F.unfold(x, kernel, **kwargs))


def test_im2col_of_a_tiny_image_by_hand():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    columns = C.im2col(x, 2)
    assert columns.tolist() == [[[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7],
                                 [4, 5, 7, 8]]]


# ------------------------------------------------------------------ convolutions


# conv2d_im2col makes one product per image (NCHW) for large images and one over
# the whole batch (channels-last) for small ones; _SMALL_IMAGE forces either path.
PATHS = [(C.conv2d_naive, None), (C.conv2d_im2col, 0), (C.conv2d_im2col, 10**9)]


@pytest.mark.parametrize("impl, small_image", PATHS)
@settings(max_examples=50, deadline=None, derandomize=True)
@given(case=conv_cases)
def test_conv2d_matches_pytorch(impl, small_image, case):
    assume(_fits(case))
    x, w, b, kwargs = _make_case(case)
    expected = F.conv2d(x, w, b, **kwargs)
    with mock.patch.object(C, "_SMALL_IMAGE", small_image):
        out = impl(x, w, b, **kwargs)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    _rtol_close(out, expected)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("impl", [C.conv2d_naive, C.conv2d_im2col])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (1, 5)])
def test_conv2d_string_padding(impl, padding, kernel):
    torch.manual_seed(1)
    x, w = torch.randn(2, 4, 9, 10), torch.randn(6, 2, *kernel)
    expected = F.conv2d(x, w, padding=padding, dilation=(1, 2), groups=2)
    _rtol_close(impl(x, w, padding=padding, dilation=(1, 2), groups=2), expected)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("small_image", [0, 10**9])
def test_conv2d_im2col_in_blocks(monkeypatch, groups, small_image):
    """Small column blocks force whole-image blocks and row blocks of one image."""
    torch.manual_seed(2)
    x, b = torch.randn(3, 4, 13, 11), torch.randn(6)
    w = torch.randn(6, 4 // groups, 3, 3)
    expected = F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=groups)
    monkeypatch.setattr(C, "_SMALL_IMAGE", small_image)
    for block in (50, 400, 2000, 10**6):
        monkeypatch.setattr(C, "_COLUMN_BLOCK", block)
        out = C.conv2d_im2col(x, w, b, stride=(2, 1), padding=1, groups=groups)
        _rtol_close(out, expected)


def test_conv2d_im2col_on_a_large_image():
    """Rows of one 64×64 image per block, written straight into the NCHW output."""
    torch.manual_seed(9)
    x, w, b = torch.randn(2, 24, 64, 64), torch.randn(16, 24, 3, 3), torch.randn(16)
    out = C.conv2d_im2col(x, w, b, padding=1)
    assert out.is_contiguous()
    _rtol_close(out, F.conv2d(x, w, b, padding=1))


def test_conv2d_on_benchmark_shape():
    torch.manual_seed(3)
    x, w, b = torch.randn(4, 16, 14, 14), torch.randn(32, 16, 3, 3), torch.randn(32)
    expected = F.conv2d(x, w, b, padding=1)
    _rtol_close(C.conv2d_im2col(x, w, b, padding=1), expected)
    _rtol_close(C.conv2d_winograd(x, w, b, padding=1), expected, atol=3e-4)


def test_single_channel_matches_scipy():
    rng = np.random.default_rng(4)
    image, kernel = rng.standard_normal((9, 12)), rng.standard_normal((3, 3))
    x = torch.from_numpy(image).view(1, 1, 9, 12)
    w = torch.from_numpy(kernel).view(1, 1, 3, 3)
    for mode, padding in (("valid", 0), ("same", 1)):
        expected = scipy.signal.correlate2d(image, kernel, mode=mode)
        for impl in (C.conv2d_naive, C.conv2d_im2col, C.conv2d_winograd,
                     C.conv2d_fft):
            np.testing.assert_allclose(impl(x, w, padding=padding)[0, 0].numpy(),
                                       expected, atol=1e-10)
    flipped = scipy.signal.convolve2d(image, kernel[::-1, ::-1], mode="valid")
    np.testing.assert_allclose(C.conv2d_naive(x, w)[0, 0].numpy(), flipped, atol=1e-10)


def test_worked_laplacian_example_is_zero():
    patch = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    kernel = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]).view(1, 1, 3, 3)
    for impl in (C.conv2d_naive, C.conv2d_im2col, C.conv2d_winograd):
        assert impl(patch, kernel).item() == 0.0


@pytest.mark.parametrize("impl", [C.conv2d_naive, C.conv2d_im2col])
def test_conv2d_gradients_match_pytorch(impl):
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, 4, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    kwargs = {"stride": (2, 1), "padding": 1, "dilation": (1, 2), "groups": 2}
    ours = torch.autograd.grad(impl(x, w, b, **kwargs).square().sum(), (x, w, b))
    reference = torch.autograd.grad(F.conv2d(x, w, b, **kwargs).square().sum(),
                                    (x, w, b))
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs)


# ---------------------------------------------------------------------- Winograd


@pytest.mark.parametrize("height", [3, 4, 7, 10])
@pytest.mark.parametrize("width", [3, 5, 8])
@pytest.mark.parametrize("padding", [0, 1])
def test_winograd_matches_conv2d(height, width, padding):
    torch.manual_seed(height * 100 + width * 10 + padding)
    x, w, b = torch.randn(3, 5, height, width), torch.randn(4, 5, 3, 3), torch.randn(4)
    expected = F.conv2d(x, w, b, padding=padding)
    out = C.conv2d_winograd(x, w, b, padding=padding)
    assert out.shape == expected.shape
    _rtol_close(out, expected)


@quick
@given(batch=st.integers(1, 3), c_in=st.integers(1, 6), c_out=st.integers(1, 6),
       height=st.integers(1, 12), width=st.integers(1, 12),
       padding=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2),
                                                      st.integers(0, 2))))
def test_winograd_matches_conv2d_float64(batch, c_in, c_out, height, width, padding):
    pad_h, pad_w = (padding, padding) if isinstance(padding, int) else padding
    assume(height + 2 * pad_h >= 3 and width + 2 * pad_w >= 3)
    g = torch.Generator().manual_seed(batch + 7 * c_in + 11 * height)
    x = torch.randn(batch, c_in, height, width, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(C.conv2d_winograd(x, w, padding=padding),
                               F.conv2d(x, w, padding=padding), atol=1e-12, rtol=0)


def test_winograd_gradients_match_pytorch():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(C.conv2d_winograd(x, w, padding=1).square().sum(),
                               (x, w))
    reference = torch.autograd.grad(F.conv2d(x, w, padding=1).square().sum(), (x, w))
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_winograd_in_blocks(monkeypatch):
    torch.manual_seed(5)
    x, w = torch.randn(3, 4, 13, 10), torch.randn(5, 4, 3, 3)
    expected = F.conv2d(x, w, padding=1)
    for block in (50, 800, 3000, 10**6):
        monkeypatch.setattr(C, "_WINOGRAD_BLOCK", block)
        _rtol_close(C.conv2d_winograd(x, w, padding=1), expected)


def test_winograd_tile_matches_direct_correlation():
    g = torch.Generator().manual_seed(6)
    for _ in range(20):
        d = torch.randn(4, 4, generator=g, dtype=torch.float64)
        k = torch.randn(3, 3, generator=g, dtype=torch.float64)
        direct = torch.tensor([[(d[i:i + 3, j:j + 3] * k).sum() for j in range(2)]
                               for i in range(2)], dtype=torch.float64)
        torch.testing.assert_close(C.winograd_tile(d, k), direct, atol=1e-12, rtol=0)


def test_winograd_needs_16_multiplies_instead_of_36():
    """Bᵀ and Aᵀ hold only 0 and ±1 (additions), G g Gᵀ is precomputed per kernel,
    so the only multiplies per 2×2 output tile are the 4×4 element-wise products."""
    shapes = [tuple(m.shape) for m in (C.WINOGRAD_G, C.WINOGRAD_BT, C.WINOGRAD_AT)]
    assert shapes == [(4, 3), (4, 4), (2, 4)]
    for matrix in (C.WINOGRAD_BT, C.WINOGRAD_AT):
        assert set(matrix.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert set(C.WINOGRAD_G.unique().tolist()) <= {-0.5, 0.0, 0.5, 1.0}
    u = C.WINOGRAD_G @ torch.ones(3, 3) @ C.WINOGRAD_G.T
    v = C.WINOGRAD_BT @ torch.ones(4, 4) @ C.WINOGRAD_BT.T
    winograd_multiplies = (u * v).numel()
    direct_multiplies = 2 * 2 * 3 * 3
    assert (winograd_multiplies, direct_multiplies) == (16, 36)
    assert direct_multiplies / winograd_multiplies == 2.25


def test_winograd_constants_are_float32():
    for name in ("G", "BT", "AT"):
        assert getattr(C, f"WINOGRAD_{name}").dtype == torch.float32


# --------------------------------------------------------------------------- FFT


@st.composite
def fft_cases(draw):
    """Shapes, paddings and kernels from 1×1 up to the whole padded input."""
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    pad_h, pad_w = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    return {"batch": draw(st.integers(1, 2)), "c_in": draw(st.integers(1, 3)),
            "c_out": draw(st.integers(1, 3)), "height": height, "width": width,
            "k_h": draw(st.integers(1, height + 2 * pad_h)),
            "k_w": draw(st.integers(1, width + 2 * pad_w)),
            "padding": draw(st.sampled_from([(pad_h, pad_w), pad_h])),
            "bias": draw(st.booleans()), "seed": draw(st.integers(0, 2**16))}


def _fft_case(case, dtype):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["batch"], case["c_in"], case["height"], case["width"],
                    generator=g, dtype=dtype)
    w = torch.randn(case["c_out"], case["c_in"], case["k_h"], case["k_w"],
                    generator=g, dtype=dtype)
    b = torch.randn(case["c_out"], generator=g, dtype=dtype) if case["bias"] else None
    return x, w, b


def _output_scale(x, w, padding):
    """Largest Σ|x|·|w| over the outputs: the size of the terms that are rounded."""
    return F.conv2d(x.abs(), w.abs(), padding=padding).max().item()


@quick
@given(case=fft_cases())
def test_fft_matches_conv2d_float64(case):
    x, w, b = _fft_case(case, torch.float64)
    padding = case["padding"]
    expected = F.conv2d(x, w, b, padding=padding)
    out = C.conv2d_fft(x, w, b, padding=padding)
    assert out.shape == expected.shape and out.dtype == torch.float64
    assert out.is_contiguous()
    scale = _output_scale(x, w, padding) + (0 if b is None else b.abs().max().item())
    torch.testing.assert_close(out, expected, atol=1e-10 * scale, rtol=0)


@pytest.mark.parametrize("shape, kernel, padding", [
    ((2, 3, 16, 16), 3, 1), ((1, 8, 32, 32), 9, 4), ((1, 4, 20, 17), (6, 5), 0),
    ((1, 2, 9, 9), 9, 0), ((3, 5, 7, 8), 1, 2)])
def test_fft_matches_conv2d_float32(shape, kernel, padding):
    torch.manual_seed(12)
    k_h, k_w = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, w, b = torch.randn(shape), torch.randn(6, shape[1], k_h, k_w), torch.randn(6)
    out = C.conv2d_fft(x, w, b, padding=padding)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding=padding),
                               atol=1e-5 * _output_scale(x, w, padding), rtol=0)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (1, 5)])
def test_fft_string_padding(padding, kernel):
    torch.manual_seed(13)
    x, w = torch.randn(2, 3, 9, 10, dtype=torch.float64), torch.randn(
        4, 3, *kernel, dtype=torch.float64)
    torch.testing.assert_close(C.conv2d_fft(x, w, padding=padding),
                               F.conv2d(x, w, padding=padding), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fft_half_precision_keeps_its_dtype(dtype):
    torch.manual_seed(14)
    x, w = torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3)
    out = C.conv2d_fft(x.to(dtype), w.to(dtype), padding=1)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), F.conv2d(x, w, padding=1),
                               atol=0.1, rtol=0.02)


@pytest.mark.parametrize("kernel, padding", [((2, 3), 1), ((1, 1), 0)])
def test_fft_gradcheck(kernel, padding):
    g = torch.Generator().manual_seed(15)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, *kernel, generator=g, dtype=torch.float64,
                    requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: C.conv2d_fft(x, w, b, padding=padding), (x, w, b))


def test_fft_gradients_match_pytorch():
    g = torch.Generator().manual_seed(16)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(C.conv2d_fft(x, w, padding=2).square().sum(), (x, w))
    reference = torch.autograd.grad(F.conv2d(x, w, padding=2).square().sum(), (x, w))
    for mine, theirs in zip(ours, reference, strict=True):
        torch.testing.assert_close(mine, theirs)


# ------------------------------------------------------------------------ bad input


def _x(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


IMPLEMENTATIONS = [C.conv2d_naive, C.conv2d_im2col, C.conv2d_winograd, C.conv2d_fft]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_non_tensor_input(impl):
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        impl([[1.0]], _x(1, 1, 3, 3))
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        impl(_x(1, 1, 3, 3), np.zeros((1, 1, 3, 3)))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_wrong_rank(impl):
    with pytest.raises(ValueError, match=r"input must be a 4-D tensor .* got shape "
                                         r"\(1, 5, 5\) \(3-D\)"):
        impl(_x(1, 5, 5), _x(1, 1, 3, 3))
    with pytest.raises(ValueError, match="weight must be a 4-D tensor"):
        impl(_x(1, 1, 5, 5), _x(3, 3))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_empty_tensors(impl):
    with pytest.raises(ValueError, match=r"input must not be empty, got shape "
                                         r"\(0, 1, 5, 5\)"):
        impl(_x(0, 1, 5, 5), _x(1, 1, 3, 3))
    with pytest.raises(ValueError, match="weight must not be empty"):
        impl(_x(1, 1, 5, 5), _x(0, 1, 3, 3))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_channel_mismatch(impl):
    with pytest.raises(ValueError, match="channel mismatch: input has C=3 channels "
                                         "but weight expects C_in .* = 2"):
        impl(_x(1, 3, 5, 5), _x(4, 2, 3, 3))


@pytest.mark.parametrize("impl", [C.conv2d_naive, C.conv2d_im2col])
def test_rejects_groups_that_do_not_divide(impl):
    with pytest.raises(ValueError, match="groups=3 must divide"):
        impl(_x(1, 4, 5, 5), _x(6, 2, 3, 3), groups=3)
    with pytest.raises(ValueError, match="groups must be positive"):
        impl(_x(1, 4, 5, 5), _x(6, 4, 3, 3), groups=0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_integer_tensors(impl):
    with pytest.raises(ValueError, match="floating-point tensor .* torch.int64"):
        impl(_x(1, 1, 5, 5, dtype=torch.int64), _x(1, 1, 3, 3))
    with pytest.raises(ValueError, match="must match input dtype"):
        impl(_x(1, 1, 5, 5), _x(1, 1, 3, 3, dtype=torch.float64))


@pytest.mark.parametrize("impl", [C.conv2d_naive, C.conv2d_im2col])
def test_rejects_bad_stride_dilation_padding(impl):
    x, w = _x(1, 1, 5, 5), _x(1, 1, 3, 3)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        impl(x, w, stride=0)
    with pytest.raises(ValueError, match="dilation must be positive, got -1"):
        impl(x, w, dilation=(1, -1))
    with pytest.raises(TypeError, match="stride must be an int, got float"):
        impl(x, w, stride=1.5)
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        impl(x, w, padding=-1)
    with pytest.raises(ValueError, match="padding must be an int, a pair, 'valid'"):
        impl(x, w, padding="full")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        impl(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="pair of ints, got 3 values"):
        impl(x, w, stride=(1, 1, 1))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_kernel_larger_than_padded_input(impl):
    with pytest.raises(ValueError, match=r"kernel larger than padded input along "
                                         r"height: .* 3 > padded input 2 \+ 0 = 2"):
        impl(_x(1, 1, 2, 5), _x(1, 1, 3, 3))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rejects_bias_of_wrong_shape(impl):
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\).* got \(3,\)"):
        impl(_x(1, 1, 5, 5), _x(2, 1, 3, 3), _x(3))
    with pytest.raises(TypeError, match="bias must be a torch.Tensor or None"):
        impl(_x(1, 1, 5, 5), _x(2, 1, 3, 3), [0.0, 0.0])


def test_winograd_rejects_other_kernels_and_strides():
    x = _x(1, 2, 8, 8)
    with pytest.raises(ValueError, match="needs a 3×3 kernel, got 5×5"):
        C.conv2d_winograd(x, _x(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"needs stride 1.* stride=\(2, 2\)"):
        C.conv2d_winograd(x, _x(1, 2, 3, 3), stride=2)
    with pytest.raises(ValueError, match=r"dilation=\(2, 2\)"):
        C.conv2d_winograd(x, _x(1, 2, 3, 3), dilation=2)
    with pytest.raises(ValueError, match="groups=2"):
        C.conv2d_winograd(x, _x(2, 1, 3, 3), groups=2)


def test_fft_rejects_strides_dilations_and_groups():
    x, w = _x(1, 2, 8, 8), _x(1, 2, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d_fft needs stride 1.* stride=\(2, "
                                         r"1\)"):
        C.conv2d_fft(x, w, stride=(2, 1))
    with pytest.raises(ValueError, match=r"dilation=\(2, 2\)"):
        C.conv2d_fft(x, w, dilation=2)
    with pytest.raises(ValueError, match="groups=2"):
        C.conv2d_fft(x, _x(2, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        C.conv2d_fft(x, w, groups=3)


def test_winograd_tile_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"4×4 tile d and a 3×3 kernel g, got d "
                                         r"\(3, 3\)"):
        C.winograd_tile(_x(3, 3), _x(3, 3))
    with pytest.raises(ValueError, match="g must be a 2-D tensor"):
        C.winograd_tile(_x(4, 4), _x(1, 3, 3))


def test_im2col_rejects_bad_input():
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        C.im2col(np.zeros((1, 1, 4, 4)), 3)
    with pytest.raises(ValueError, match="4-D tensor"):
        C.im2col(_x(4, 4), 3)
    with pytest.raises(ValueError, match="kernel_size must be positive, got 0"):
        C.im2col(_x(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="kernel larger than padded input"):
        C.im2col(_x(1, 1, 4, 4), 5, padding=0)


def test_public_api_is_documented():
    for name in C.__all__:
        obj = getattr(C, name)
        if callable(obj):
            assert "chapters/0" in obj.__doc__, name
