"""utils.kernels against OpenCV and SciPy, and its input validation."""

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import kernels as K

odd_sizes = st.integers(min_value=0, max_value=7).map(lambda i: 2 * i + 1)
sigmas = st.floats(min_value=0.3, max_value=6.0)


def test_fixed_kernels_have_documented_values():
    assert K.sobel_x().tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert K.sobel_y().tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    assert K.prewitt_x().tolist() == [[-1, 0, 1]] * 3
    assert K.prewitt_y().tolist() == [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]
    assert K.sharpen().tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert K.laplacian(8).tolist() == [[1, 1, 1], [1, -8, 1], [1, 1, 1]]
    for kernel in (K.sobel_x(), K.box(5), K.gaussian(5, 1.0), K.gabor(5, 1.0, 0.3, 3.0)):
        assert kernel.dtype == torch.float32


def test_sobel_matches_opencv_derivative():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24)).astype(np.float32)
    for kernel, (dx, dy) in ((K.sobel_x(), (1, 0)), (K.sobel_y(), (0, 1))):
        reference = cv2.Sobel(image, cv2.CV_32F, dx, dy, ksize=3)
        ours = cv2.filter2D(image, cv2.CV_32F, kernel.numpy())
        np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_laplacian4_matches_opencv_and_scipy():
    rng = np.random.default_rng(1)
    image = rng.random((16, 16)).astype(np.float64)
    reference = cv2.Laplacian(image, cv2.CV_64F, ksize=1)
    ours = cv2.filter2D(image, cv2.CV_64F, K.laplacian(4).double().numpy())
    np.testing.assert_allclose(ours, reference, atol=1e-10)
    interior = scipy.ndimage.laplace(image)[1:-1, 1:-1]
    np.testing.assert_allclose(ours[1:-1, 1:-1], interior, atol=1e-10)


def test_laplacian_is_zero_on_a_linear_ramp():
    ramp = np.add.outer(np.arange(5.0), 2 * np.arange(5.0))
    for n in (4, 8):
        out = scipy.signal.correlate2d(ramp, K.laplacian(n).double().numpy(), "valid")
        np.testing.assert_allclose(out, 0, atol=1e-12)


def test_sharpen_is_identity_minus_laplacian():
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1
    assert torch.equal(K.sharpen(), identity - K.laplacian(4))


@settings(max_examples=40, deadline=None)
@given(size=odd_sizes)
def test_box_sums_to_one_and_matches_opencv_blur(size):
    kernel = K.box(size)
    assert kernel.shape == (size, size)
    assert math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-5)
    image = np.random.default_rng(size).random((20, 20)).astype(np.float32)
    np.testing.assert_allclose(
        cv2.filter2D(image, -1, kernel.numpy()), cv2.blur(image, (size, size)), atol=1e-5
    )


@settings(max_examples=60, deadline=None)
@given(size=odd_sizes, sigma=sigmas)
def test_gaussian_equals_opencv_outer_product(size, sigma):
    g = cv2.getGaussianKernel(size, sigma)
    np.testing.assert_allclose(K.gaussian(size, sigma).numpy(), g @ g.T, atol=1e-7)
    np.testing.assert_allclose(K.gaussian_1d(size, sigma).numpy(), g[:, 0], atol=1e-7)
    assert math.isclose(float(K.gaussian(size, sigma).double().sum()), 1.0, rel_tol=1e-6)


def test_gaussian_is_separable():
    image = np.random.default_rng(2).random((30, 30))
    g1 = K.gaussian_1d(7, 1.5).double().numpy()
    two_passes = scipy.ndimage.correlate1d(
        scipy.ndimage.correlate1d(image, g1, axis=0, mode="constant"), g1, axis=1,
        mode="constant")
    one_pass = scipy.ndimage.correlate(image, K.gaussian(7, 1.5).double().numpy(),
                                       mode="constant")
    np.testing.assert_allclose(two_passes, one_pass, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    ksize=odd_sizes.filter(lambda k: k >= 3), sigma=sigmas,
    theta=st.floats(0, 2 * math.pi), lambd=st.floats(1.5, 12.0),
    gamma=st.floats(0.2, 2.0), psi=st.floats(-math.pi, math.pi),
)
def test_gabor_equals_opencv(ksize, sigma, theta, lambd, gamma, psi):
    reference = cv2.getGaborKernel((ksize, ksize), sigma, theta, lambd, gamma, psi,
                                   ktype=cv2.CV_64F)
    ours = K.gabor(ksize, sigma, theta, lambd, gamma, psi)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-6)


def test_gabor_bank_orientations():
    bank = K.gabor_bank(7, 2.0, 4.0, n_orientations=4)
    assert bank.shape == (4, 7, 7)
    torch.testing.assert_close(bank[1], K.gabor(7, 2.0, math.pi / 4, 4.0))


def test_kernel_correlation_and_best_matches():
    bank = K.reference_bank(3)
    corr = K.kernel_correlation(K.sobel_x(), K.sobel_x())
    assert corr.shape == (1, 1) and math.isclose(float(corr), 1.0, rel_tol=1e-6)
    a, b = np.random.default_rng(3).random((2, 9))
    expected = np.corrcoef(a, b)[0, 1]
    ours = K.kernel_correlation(torch.tensor(a).view(3, 3), torch.tensor(b).view(3, 3))
    assert math.isclose(float(ours), expected, rel_tol=1e-5)
    matches = K.best_matches(torch.stack([-K.sobel_y(), K.laplacian(4)]), bank)
    assert matches[0][0] == "sobel_y" and math.isclose(matches[0][1], -1.0, rel_tol=1e-5)
    assert matches[1][0] == "laplacian4"
    assert all(k.shape == (5, 5) for k in K.reference_bank(5).values())


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: K.box(4), ValueError, "odd positive"),
        (lambda: K.box(0), ValueError, "odd positive"),
        (lambda: K.box(-3), ValueError, "odd positive"),
        (lambda: K.box(3.0), TypeError, "must be an int"),
        (lambda: K.gaussian(4, 1.0), ValueError, "odd positive"),
        (lambda: K.gaussian(5, 0.0), ValueError, "sigma must be a positive"),
        (lambda: K.gaussian(5, -1.0), ValueError, "sigma must be a positive"),
        (lambda: K.gaussian(5, float("nan")), ValueError, "sigma"),
        (lambda: K.gaussian(5, "1"), TypeError, "sigma must be a number"),
        (lambda: K.gabor(6, 1.0, 0.0, 3.0), ValueError, "ksize must be an odd"),
        (lambda: K.gabor(5, 0.0, 0.0, 3.0), ValueError, "sigma"),
        (lambda: K.gabor(5, 1.0, 0.0, 0.0), ValueError, "lambd"),
        (lambda: K.gabor(5, 1.0, 0.0, 3.0, gamma=-1), ValueError, "gamma"),
        (lambda: K.laplacian(6), ValueError, "neighbours must be 4 or 8"),
        (lambda: K.gabor_bank(5, 1.0, 3.0, 0), ValueError, "n_orientations"),
        (lambda: K.kernel_correlation(torch.ones(3, 3), torch.ones(5, 5)), ValueError,
         "kernel sizes differ"),
        (lambda: K.kernel_correlation([[1.0]], torch.ones(1, 1)), TypeError, "torch.Tensor"),
        (lambda: K.best_matches(torch.ones(1, 3, 3), {}), ValueError, "non-empty"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()
