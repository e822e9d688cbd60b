"""utils.antialias checked against independent references: SciPy (binomial
coefficients, ndimage filtering, bootstrap), plain PyTorch (max-pooling, rolls,
cosine similarity) and loops written out here."""

import itertools
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import antialias, kernels

# ------------------------------------------------------------------ binomial kernels


@pytest.mark.parametrize("size", [1, 3, 5, 7, 9])
def test_binomial_1d_is_pascals_row(size):
    expected = scipy.special.comb(size - 1, np.arange(size)) / 2 ** (size - 1)
    np.testing.assert_allclose(antialias.binomial_1d(size).numpy(), expected, rtol=1e-15)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_binomial_1d_is_repeated_two_tap_average(size):
    row = np.array([1.0])
    for _ in range(size - 1):
        row = np.convolve(row, [0.5, 0.5])
    np.testing.assert_allclose(antialias.binomial_1d(size).numpy(), row, rtol=1e-15)


@pytest.mark.parametrize("size", [3, 5, 7])
def test_binomial_frequency_response_is_cos_power(size):
    row = antialias.binomial_1d(size).numpy()
    frequencies = np.linspace(0, 0.5, 11)
    taps = np.arange(size) - (size - 1) / 2
    response = np.abs(np.exp(-2j * np.pi * np.outer(frequencies, taps)) @ row)
    np.testing.assert_allclose(response, np.cos(np.pi * frequencies) ** (size - 1),
                               atol=1e-12)


def test_binomial_kernel_3_is_chapter_2s_gaussian():
    expected = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    assert torch.equal(antialias.binomial_kernel(3), expected.float())
    assert antialias.binomial_kernel(5).dtype == torch.float32


@pytest.mark.parametrize("size", [0, 2, -3])
def test_binomial_rejects_even_or_non_positive_sizes(size):
    with pytest.raises(ValueError, match="odd positive"):
        antialias.binomial_1d(size)


def test_binomial_rejects_non_integers():
    with pytest.raises(TypeError, match="must be an int"):
        antialias.binomial_kernel(3.0)


# ------------------------------------------------------------------ BlurPool2d


def _scipy_blurpool(x: np.ndarray, kernel: np.ndarray, stride: int, mode: str):
    """Per channel: scipy.ndimage.correlate with the matching border, then subsample.
    SciPy's 'mirror' is PyTorch's 'reflect' (edge not repeated); 'wrap' is circular."""
    scipy_mode = {"reflect": "mirror", "circular": "wrap"}[mode]
    out = np.empty_like(x)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        out[n, c] = scipy.ndimage.correlate(x[n, c], kernel, mode=scipy_mode)
    return out[:, :, ::stride, ::stride]


@pytest.mark.parametrize("mode", ["reflect", "circular"])
@pytest.mark.parametrize("size,stride,shape", [(3, 2, (2, 3, 8, 8)), (5, 2, (1, 2, 9, 7)),
                                                (3, 3, (1, 1, 10, 11)), (1, 2, (1, 4, 6, 6))])
def test_blurpool_matches_scipy(mode, size, stride, shape):
    generator = torch.Generator().manual_seed(size * 10 + stride)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    kernel = antialias.binomial_kernel(size)
    ours = antialias.BlurPool2d(kernel, stride, mode)(x)
    expected = _scipy_blurpool(x.numpy(), kernel.double().numpy(), stride, mode)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)


def test_blurpool_with_an_asymmetric_kernel_correlates_like_scipy():
    # An asymmetric Gabor-derived kernel (normalised) tells correlation from convolution.
    generator = torch.Generator().manual_seed(0)
    kernel = kernels.gaussian(3, 1.0) * torch.tensor([[1.0, 2.0, 3.0]] * 3)
    kernel = kernel / kernel.sum()
    x = torch.randn(1, 2, 7, 7, generator=generator, dtype=torch.float64)
    ours = antialias.BlurPool2d(kernel, 1)(x)
    expected = _scipy_blurpool(x.numpy(), kernel.double().numpy(), 1, "reflect")
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(height=st.integers(3, 20), width=st.integers(3, 20), stride=st.integers(1, 4),
       size=st.sampled_from([1, 3, 5]))
def test_blurpool_output_size_is_ceil(height, width, stride, size):
    if size // 2 >= min(height, width):
        return
    y = antialias.BlurPool2d(antialias.binomial_kernel(size), stride)(
        torch.zeros(1, 1, height, width))
    assert y.shape[-2:] == (math.ceil(height / stride), math.ceil(width / stride))


def test_blurpool_keeps_constants():
    y = antialias.BlurPool2d(antialias.binomial_kernel(5))(torch.full((1, 3, 9, 9), 2.5))
    assert torch.allclose(y, torch.full_like(y, 2.5))


def test_blurpool_validates():
    with pytest.raises(ValueError, match="sum to 1"):
        antialias.BlurPool2d(torch.ones(3, 3))
    with pytest.raises(ValueError, match="odd side"):
        antialias.BlurPool2d(torch.full((2, 2), 0.25))
    with pytest.raises(ValueError, match="odd side"):
        antialias.BlurPool2d(torch.full((3, 1), 1 / 3))
    with pytest.raises(ValueError, match="2-D tensor"):
        antialias.BlurPool2d(antialias.binomial_1d(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        antialias.BlurPool2d([[1.0]])
    with pytest.raises(ValueError, match="finite"):
        antialias.BlurPool2d(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="positive"):
        antialias.BlurPool2d(torch.ones(1, 1), stride=0)
    with pytest.raises(ValueError, match="padding_mode"):
        antialias.BlurPool2d(torch.ones(1, 1), padding_mode="zeros")
    pool = antialias.BlurPool2d(antialias.binomial_kernel(5))
    with pytest.raises(ValueError, match="4-D tensor"):
        pool(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        pool(torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="larger than 2 pixels"):
        pool(torch.zeros(1, 1, 2, 8))


def test_blurpool_repr_and_kernel_is_copied():
    kernel = antialias.binomial_kernel(3)
    pool = antialias.BlurPool2d(kernel, 2, "circular")
    kernel.zero_()
    assert pool.kernel.sum() == 1
    assert "kernel=3×3, stride=2, circular" in repr(pool)


# ------------------------------------------------------------------ MaxBlurPool


@settings(max_examples=30, deadline=None)
@given(height=st.integers(2, 12), width=st.integers(2, 12), seed=st.integers(0, 99))
def test_dense_max_is_max_pool_with_stride_one(height, width, seed):
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(antialias.DenseMax2d()(x), F.max_pool2d(x, 2, 1))


def test_dense_max_validates():
    with pytest.raises(ValueError, match="at least 2×2"):
        antialias.DenseMax2d()(torch.zeros(1, 1, 1, 5))
    with pytest.raises(ValueError, match="4-D tensor"):
        antialias.DenseMax2d()(torch.zeros(5, 5))


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_max_blur_pool_with_identity_kernel_is_max_pool(mode):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 10, 12, generator=generator)
    ours = antialias.max_blur_pool(torch.ones(1, 1), 2, mode)(x)
    assert torch.equal(ours, F.max_pool2d(x, 2, 2))


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_max_blur_pool_is_dense_max_then_blur(mode):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 8, 8, generator=generator, dtype=torch.float64)
    if mode == "circular":
        dense = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="circular"), 2, 1)
    else:
        dense = F.max_pool2d(x, 2, 1)
    expected = _scipy_blurpool(dense.numpy(), antialias.binomial_1d(3).outer(
        antialias.binomial_1d(3)).numpy(), 2, mode)
    ours = antialias.max_blur_pool(antialias.binomial_kernel(3), 2, mode)(x)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-7)
    assert ours.shape[-2:] == (4, 4)


def test_circular_max_blur_pool_commutes_with_even_rolls():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 12, 12, generator=generator, dtype=torch.float64)
    pool = antialias.max_blur_pool(antialias.binomial_kernel(5), 2, "circular")
    for shift in (2, 4, 6):
        rolled = pool(x.roll((shift, shift), dims=(-2, -1)))
        expected = pool(x).roll((shift // 2, shift // 2), dims=(-2, -1))
        torch.testing.assert_close(rolled, expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ VGG16 surgery


def _small_vgg() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))


def test_antialias_vgg16_replaces_every_pool_and_keeps_the_original():
    features = _small_vgg()
    blurred = antialias.antialias_vgg16(features, antialias.binomial_kernel(3))
    assert len(blurred) == len(features)
    assert isinstance(features[2], nn.MaxPool2d) and isinstance(features[5], nn.MaxPool2d)
    for i in (2, 5):
        assert isinstance(blurred[i], nn.Sequential)
        assert isinstance(blurred[i][-1], antialias.BlurPool2d)
    assert torch.equal(blurred[0].weight, features[0].weight)
    assert blurred[0].weight is not features[0].weight


def test_antialias_vgg16_with_identity_kernel_changes_nothing():
    features = _small_vgg()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    same = antialias.antialias_vgg16(features, torch.ones(1, 1))
    with torch.no_grad():
        assert torch.equal(same(x), features(x))


def test_antialias_vgg16_on_the_real_vgg16_keeps_probe_indices():
    from utils import models, probe
    features = models.vgg16_features(pretrained=False)
    blurred = antialias.antialias_vgg16(features, antialias.binomial_kernel(3))
    assert len(blurred) == len(features) == 31
    with torch.no_grad():
        out = blurred[:probe.PROBE_LAYER](torch.zeros(1, 3, 48, 48))
    assert out.shape == (1, 512, 3, 3)


def test_antialias_vgg16_validates():
    with pytest.raises(TypeError, match="nn.Sequential"):
        antialias.antialias_vgg16(nn.Conv2d(1, 1, 3), torch.ones(1, 1))
    with pytest.raises(ValueError, match="no nn.MaxPool2d"):
        antialias.antialias_vgg16(nn.Sequential(nn.ReLU()), torch.ones(1, 1))
    with pytest.raises(ValueError, match="only nn.MaxPool2d"):
        antialias.antialias_vgg16(nn.Sequential(nn.MaxPool2d(3, 2)), torch.ones(1, 1))
    with pytest.raises(ValueError, match="sum to 1"):
        antialias.antialias_vgg16(_small_vgg(), torch.ones(3, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        antialias.antialias_vgg16(_small_vgg(), torch.ones(1, 1), "zeros")


def test_circular_padding_makes_a_stride_one_stack_roll_equivariant():
    stack = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(3, 2, 5, padding=2)).double()
    wrapped = antialias.circular_padding(stack)
    assert stack[0].padding_mode == "zeros"
    x = torch.randn(1, 2, 9, 9, generator=torch.Generator().manual_seed(5),
                    dtype=torch.float64)
    with torch.no_grad():
        rolled = wrapped(x.roll((3, 1), dims=(-2, -1)))
        torch.testing.assert_close(rolled, wrapped(x).roll((3, 1), dims=(-2, -1)))
        # With zero padding the border breaks it, so the check can fail.
        assert not torch.allclose(stack(x.roll((3, 1), dims=(-2, -1))),
                                  stack(x).roll((3, 1), dims=(-2, -1)))
        # Circular padding is F.pad(mode="circular") followed by an unpadded conv.
        expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), stack[0].weight,
                            stack[0].bias)
        torch.testing.assert_close(wrapped[0](x), expected)


def test_circular_padding_validates():
    with pytest.raises(TypeError, match="nn.Sequential"):
        antialias.circular_padding(nn.Conv2d(1, 1, 3))


# ------------------------------------------------------------------ shifts and agreement


def test_circular_shifts_are_rolls():
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    out = antialias.circular_shifts(x, [0, 1, 3])
    assert out.shape == (3, 2, 1, 4, 5)
    assert torch.equal(out[0], x)
    # pixel (i, j) moves to ((i + t) mod H, (j + t) mod W)
    for index, t in enumerate([0, 1, 3]):
        for i, j in itertools.product(range(4), range(5)):
            assert out[index, :, :, (i + t) % 4, (j + t) % 5].equal(x[:, :, i, j])


def test_circular_shifts_validates():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="non-empty sequence"):
        antialias.circular_shifts(x, [])
    with pytest.raises(ValueError, match="non-empty sequence"):
        antialias.circular_shifts(x, 3)
    with pytest.raises(ValueError, match=">= 0"):
        antialias.circular_shifts(x, [-1])
    with pytest.raises(ValueError, match="4-D tensor"):
        antialias.circular_shifts(torch.zeros(4, 4), [1])


def test_shift_agreement_same_class_by_hand():
    # 4 shifts (t = 0..3) of 2 images.
    classes = torch.tensor([[1, 5], [1, 5], [2, 5], [1, 6]])
    agreement = antialias.shift_agreement(classes, "same_class")
    expected_image_0 = [np.mean([1, 0, 0]), np.mean([0, 1]), 1.0]
    expected_image_1 = [np.mean([1, 1, 0]), np.mean([1, 0]), 0.0]
    np.testing.assert_allclose(agreement.numpy(),
                               np.array([expected_image_0, expected_image_1]).T)


def test_shift_agreement_cosine_matches_a_loop():
    generator = torch.Generator().manual_seed(6)
    features = torch.randn(5, 3, 7, generator=generator)
    agreement = antialias.shift_agreement(features, "cosine")
    for d in range(1, 5):
        for n in range(3):
            cosines = [float(features[t, n] @ features[t + d, n]
                             / features[t, n].norm() / features[t + d, n].norm())
                       for t in range(5 - d)]
            assert agreement[d - 1, n].item() == pytest.approx(np.mean(cosines), abs=1e-6)


def test_shift_agreement_validates():
    with pytest.raises(ValueError, match="measure"):
        antialias.shift_agreement(torch.zeros(3, 2, dtype=torch.long), "l2")
    with pytest.raises(ValueError, match="integer class indices"):
        antialias.shift_agreement(torch.zeros(3, 2), "same_class")
    with pytest.raises(ValueError, match="3-D tensor"):
        antialias.shift_agreement(torch.zeros(3, 2), "cosine")
    with pytest.raises(ValueError, match="at least 2 offsets"):
        antialias.shift_agreement(torch.zeros(1, 2, dtype=torch.long), "same_class")
    with pytest.raises(TypeError, match="torch.Tensor"):
        antialias.shift_agreement([[1, 2]], "same_class")


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_ci_agrees_with_scipy():
    rng = np.random.default_rng(0)
    values = rng.beta(2, 5, size=300)
    mean, low, high = antialias.bootstrap_ci(torch.tensor(values), resamples=4000)
    reference = scipy.stats.bootstrap((values,), np.mean, method="percentile",
                                      n_resamples=4000, random_state=1)
    assert mean == pytest.approx(values.mean())
    half_width = (reference.confidence_interval.high - reference.confidence_interval.low) / 2
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.1 * half_width)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.1 * half_width)
    # and with the normal approximation mean ± 1.96 s/√n
    normal = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(normal, rel=0.1)


def test_bootstrap_ci_is_seeded_and_ordered():
    values = torch.linspace(0, 1, 50)
    assert antialias.bootstrap_ci(values, seed=3) == antialias.bootstrap_ci(values, seed=3)
    mean, low, high = antialias.bootstrap_ci(values, level=0.5)
    assert low < mean < high
    assert antialias.bootstrap_ci(torch.ones(10)) == (1.0, 1.0, 1.0)


def test_bootstrap_ci_validates():
    with pytest.raises(ValueError, match="between 0 and 1"):
        antialias.bootstrap_ci(torch.ones(3), level=1.0)
    with pytest.raises(ValueError, match="positive"):
        antialias.bootstrap_ci(torch.ones(3), level=0)
    with pytest.raises(ValueError, match="1-D tensor"):
        antialias.bootstrap_ci(torch.ones(3, 2))
    with pytest.raises(ValueError, match="positive"):
        antialias.bootstrap_ci(torch.ones(3), resamples=0)
