"""Every number that chapters 1 and 2 state in their prose, recomputed independently.

The notebooks print these numbers; here they are derived again with SciPy, OpenCV,
PyTorch and plain NumPy (not read from the notebooks), so a change in ``utils`` or in
a library that breaks a sentence of the text fails a test.
"""

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import scipy.stats
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from utils import arithmetic, conv, data, interactive, kernels, models

# ----------------------------------------------------------------------------------
# Chapter 1: the convolution operation
# ----------------------------------------------------------------------------------

PATCH = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)
CH1_KERNEL = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)


def test_worked_example_is_zero_in_every_library():
    assert scipy.signal.correlate2d(PATCH, CH1_KERNEL, mode="valid").item() == 0
    assert 4 * 5 - (2 + 4 + 6 + 8) == 0  # the arithmetic written out in the prose
    patch32, kernel32 = PATCH.astype(np.float32), CH1_KERNEL.astype(np.float32)
    assert cv2.filter2D(patch32, -1, kernel32)[1, 1] == 0
    out = F.conv2d(torch.from_numpy(patch32)[None, None],
                   torch.from_numpy(kernel32)[None, None])
    assert out.shape == (1, 1, 1, 1) and out.item() == 0
    rows, cols = np.mgrid[0:3, 0:3]
    assert np.array_equal(PATCH, 3 * rows + cols + 1)  # a linear ramp


def test_worked_kernel_is_minus_the_standard_laplacian():
    standard = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    assert np.array_equal(kernels.laplacian(4).numpy(), standard)
    assert np.array_equal(CH1_KERNEL, -standard)


def test_dot_product_responses_of_unit_length_patches():
    def response(patch):
        return float(np.sum(patch / np.linalg.norm(patch) * CH1_KERNEL))

    assert response(np.ones((3, 3))) == pytest.approx(0, abs=1e-12)
    assert response(PATCH) == pytest.approx(0, abs=1e-12)
    assert response(np.array([[0, 1, 0]] * 3, float)) == pytest.approx(2 / math.sqrt(3))
    assert round(2 / math.sqrt(3), 3) == 1.155
    dot = np.zeros((3, 3))
    dot[1, 1] = 1
    assert response(dot) == pytest.approx(4)
    assert response(CH1_KERNEL) == pytest.approx(math.sqrt(20))
    assert round(math.sqrt(20), 3) == 4.472
    rng = np.random.default_rng(0)  # Cauchy–Schwarz: nothing beats the kernel's shape
    random_patches = (rng.standard_normal((3, 3)) for _ in range(2000))
    assert max(response(patch) for patch in random_patches) < math.sqrt(20)


def test_deep_learning_convolution_is_cross_correlation():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 10, size=(6, 6)).astype(np.float32)
    asymmetric = np.array([[1, 2, 0], [0, 0, -1], [3, 0, 0]], dtype=np.float32)
    ours = F.conv2d(torch.from_numpy(image)[None, None],
                    torch.from_numpy(asymmetric)[None, None])[0, 0].numpy()
    correlated = scipy.signal.correlate2d(image, asymmetric, "valid")
    np.testing.assert_allclose(ours, correlated)
    assert not np.allclose(ours, scipy.signal.convolve2d(image, asymmetric, "valid"))
    np.testing.assert_allclose(
        ours, scipy.signal.convolve2d(image, asymmetric[::-1, ::-1], "valid"))
    np.testing.assert_allclose(cv2.filter2D(image, -1, asymmetric)[1:-1, 1:-1], ours)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
    assert np.array_equal(sobel[::-1, ::-1], -sobel)


OUTPUT_SIZE_TABLE = [  # (n, k, s, p, d, stated output size)
    (7, 3, 1, 0, 1, 5), (7, 3, 1, 1, 1, 7), (7, 3, 1, 2, 1, 9), (7, 3, 2, 1, 1, 4),
    (8, 3, 3, 0, 1, 2), (28, 5, 1, 0, 1, 24), (28, 3, 1, 1, 1, 28),
    (64, 3, 1, 2, 2, 64), (224, 7, 2, 3, 1, 112), (224, 11, 4, 2, 1, 55),
    (64, 5, 2, 1, 2, 29),  # exercise ch1-predict-size
]


@pytest.mark.parametrize("n, k, s, p, d, expected", OUTPUT_SIZE_TABLE)
def test_output_size_table_against_real_layers(n, k, s, p, d, expected):
    layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    with torch.no_grad():
        assert layer(torch.zeros(1, 1, n, n)).shape[-2:] == (expected, expected)
    assert math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1 == expected
    assert arithmetic.output_size(n, k, stride=s, padding=p, dilation=d) == expected


def test_named_paddings_and_the_floor_example():
    for k in (3, 5, 7):
        n = 11
        assert arithmetic.output_size(n, k, padding=0) == n - (k - 1)  # valid shrinks
        assert arithmetic.output_size(n, k, padding=(k - 1) // 2) == n  # same keeps
        assert arithmetic.output_size(n, k, padding=k - 1) == n + (k - 1)  # full grows
    starts = list(range(0, 8 - 3 + 1, 3))  # n = 8, k = 3, s = 3
    assert starts == [0, 3]
    seen = {start + i for start in starts for i in range(3)}
    assert set(range(8)) - seen == {6, 7}  # the last two pixels are never seen
    assert 2 * (3 - 1) + 1 == 5  # a dilated 3×3 (d = 2) spans 5 pixels
    same = nn.Conv2d(1, 1, 3, padding="same", dilation=2)
    assert same(torch.zeros(1, 1, 64, 64)).shape[-1] == 64


def test_sliding_window_animations_have_the_stated_frames():
    assert len(interactive.sliding_window_positions(7, 3, 1, 0)) == 25
    assert math.floor((7 + 2 - 3) / 2) + 1 == 4
    assert len(interactive.sliding_window_positions(7, 3, 2, 1)) == 16
    assert len(interactive.sliding_window_positions(7, 3, 1, 1)) == 7 * 7
    # default input: a bright 3×3 square in a 7×7 input, Sobel x kernel
    image = np.zeros((7, 7))
    image[2:5, 2:5] = 1
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    valid = scipy.signal.correlate2d(image, sobel, mode="valid")
    assert (valid[:, :2] >= 0).all() and valid[:, :2].max() > 0  # left edge positive
    assert (valid[:, -2:] <= 0).all() and valid[:, -2:].min() < 0  # right edge negative
    np.testing.assert_allclose(interactive.sliding_window_outputs(1, 0), valid)
    padded_corner = np.pad(np.ones((7, 7)), 1)[0:3, 0:3]  # stride 2, padding 1, (0, 0)
    assert int((padded_corner == 0).sum()) == 5  # 5 of 9 cells are padding


def _receptive_fields(layers):
    """r ← r + (k_eff − 1)·j, j ← j·s, written out again for the test."""
    field, jump, rows = 1, 1, []
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k, s, d = (np.atleast_1d(value)[0] for value in (
                layer.kernel_size, layer.stride, layer.dilation))
            field += (d * (k - 1) + 1 - 1) * jump
            jump *= s
            rows.append((type(layer).__name__, field, jump))
    return rows


def _gradient_side(layers, input_size):
    """Side of the square where the centre unit's gradient is non-zero (geometry copy
    of ``utils.arithmetic``), and the smallest over the largest |gradient| inside."""
    gradient = arithmetic.centre_unit_gradient(arithmetic.geometry_copy(layers),
                                               input_size)
    (top, left), side, filled = arithmetic.non_zero_square(gradient)
    assert filled  # non-zero exactly inside the square
    box = gradient[top:top + side, left:left + side]
    return side, float(box.min() / box.max())


def test_small_stack_receptive_field():
    stack = [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1),
             nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1)]
    assert [r for _, r, _ in _receptive_fields(stack)] == [3, 5, 6, 10]
    assert _gradient_side(stack, 16)[0] == 10
    assert arithmetic.receptive_field(nn.Sequential(*stack)) == 10


@pytest.fixture(scope="module")
def torchvision_vgg16_features():
    return torchvision.models.vgg16(weights=None).features


def test_vgg16_geometry_and_receptive_fields(torchvision_vgg16_features):
    layers = list(torchvision_vgg16_features)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    pools = [m for m in layers if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 13 and len(pools) == 5
    assert all(m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (1, 1)
               for m in convs)
    assert all(m.kernel_size == 2 and m.stride == 2 for m in pools)
    table = _receptive_fields(layers)
    assert [r for _, r, _ in table] == [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92,
                                        100, 132, 164, 196, 212]
    assert [j for _, _, j in table][-2:] == [16, 32]
    assert arithmetic.receptive_field(torchvision_vgg16_features[:29]) == 196
    assert arithmetic.receptive_field(torchvision_vgg16_features) == 212


def test_vgg16_receptive_fields_by_the_gradient_method(torchvision_vgg16_features):
    side_conv5_3, ratio_conv5_3 = _gradient_side(torchvision_vgg16_features[:29], 224)
    side_pool5, ratio_pool5 = _gradient_side(torchvision_vgg16_features, 224)
    assert (side_conv5_3, side_pool5) == (196, 212)
    # "at the corners more than ten orders of magnitude below the centre": every path
    # has the same number of layers, so the ratio is the same for any constant
    # positive weight
    assert ratio_conv5_3 < 1e-10 and ratio_pool5 < 1e-10


def test_vgg16_gradient_at_the_middle_of_an_edge(torchvision_vgg16_features):
    """"in the middle of an edge about six" orders of magnitude (torchvision's VGG16)."""
    for stack, side, digits in ((torchvision_vgg16_features[:29], 196, (-11.1, -5.6)),
                                (torchvision_vgg16_features, 212, (-11.7, -5.9))):
        gradient = arithmetic.centre_unit_gradient(arithmetic.geometry_copy(stack), 224)
        (top, left), found_side, _ = arithmetic.non_zero_square(gradient)
        assert found_side == side
        box = gradient[top:top + side, left:left + side] / gradient.max()
        corner, edge = np.log10(box[0, 0]), np.log10(box[0, side // 2])
        assert (round(float(corner), 1), round(float(edge), 1)) == digits
        assert corner < -10 and -7 < edge < -5


def test_effective_receptive_field_of_pretrained_vgg16():
    features = models.vgg16_features(pretrained=True)
    mean = torch.tensor(models.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(models.IMAGENET_STD)[:, None, None]
    photo = ((data.sample_image("chelsea", size=224) - mean) / std)[None]
    photo.requires_grad_(True)
    features[:29](photo)[0, :, 7, 7].sum().backward()
    gradient = photo.grad[0].abs().sum(0).numpy()
    top = 7 * 16 + 7 - 97  # unit 7 (jump 16) is centred on pixel 119.5; r = 196
    assert top == 22
    outside = np.ones_like(gradient, dtype=bool)
    outside[top:top + 196, top:top + 196] = False
    assert (gradient[outside] == 0).all()
    centre = gradient[top + 49:top + 196 - 49, top + 49:top + 196 - 49]
    assert centre.shape == (98, 98) and 98 * 98 * 4 == 196 * 196
    assert round(float(centre.sum() / gradient.sum()), 2) == 0.83
    relative = gradient / gradient.max()
    band = relative[top:top + 8, top:top + 196]  # "about five powers of ten below"
    median = np.nanmedian(np.log10(np.where(band > 0, band, np.nan)))
    assert -5.5 < median < -4.5


def test_why_convolution_parameters_equivariance_and_channels():
    conv_params = 64 * 3 * 3 * 3 + 64
    dense_params = (224 * 224 * 3) * (224 * 224 * 64) + 224 * 224 * 64
    assert (conv_params, dense_params) == (1_792, 483_388_358_656)  # "about 4.8·10¹¹"
    assert f"{dense_params / conv_params:.1e}" == "2.7e+08"
    assert round(4 * dense_params / 1e12, 1) == 1.9  # "1.9 TB of float32 weights"
    rng = np.random.default_rng(0)
    image, kernel = rng.random((28, 28)), rng.standard_normal((3, 3))
    out = scipy.signal.correlate2d(image, kernel, mode="same")
    shifted = scipy.signal.correlate2d(np.roll(image, (2, 3), (0, 1)), kernel, mode="same")
    np.testing.assert_allclose(shifted[4:-4, 4:-4],
                               np.roll(out, (2, 3), (0, 1))[4:-4, 4:-4], atol=1e-12)
    assert not np.allclose(shifted, np.roll(out, (2, 3), (0, 1)))  # the border breaks it
    x, w, b = rng.random((3, 5, 5)), rng.standard_normal((2, 3, 3, 3)), rng.random(2)
    ours = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), torch.from_numpy(b))
    for o in range(2):
        by_hand = sum(scipy.signal.correlate2d(x[c], w[o, c], "valid") for c in range(3))
        np.testing.assert_allclose(ours[0, o].numpy(), by_hand + b[o], atol=1e-12)
    assert w[0].size == 27


def test_where_equivariance_breaks():
    """The table of chapter 1: stride 1 exact; stride 2 and a 2×2 max pool exact for a
    2-pixel shift, not for 1 pixel; zero padding breaks it at the border. Recomputed
    with SciPy (correlation, then every other sample) and a NumPy max pool."""
    photo = data.sample_image("chelsea", size=128).mean(0).double().numpy()
    sobel = kernels.sobel_x().double().numpy()

    def conv(x, stride):
        return scipy.signal.correlate2d(np.pad(x, 1), sobel, mode="valid")[::stride, ::stride]

    def pool(x):
        return x.reshape(32, 2, 32, 2).max(axis=(1, 3))

    def gap(layer, shift, stride, margin):
        out, moved = layer(photo[32:96, 32:96]), layer(photo[32 - shift:96 - shift, 32:96])
        rows, gaps = out.shape[0], []
        for t in {shift // stride, -(-shift // stride)}:
            diff = (moved[margin + t:rows - margin, margin:out.shape[1] - margin]
                    - out[margin:rows - margin - t, margin:out.shape[1] - margin])
            gaps.append(np.abs(diff).max() / np.abs(out).max())
        return min(gaps)

    assert max(gap(lambda x: conv(x, 1), s, 1, 4) for s in (1, 2)) < 1e-12
    for layer in (lambda x: conv(x, 2), pool):
        assert gap(layer, 2, 2, 4) < 1e-12 and 0.2 < gap(layer, 1, 2, 4) < 0.4  # 1/4 to 1/3
    assert min(gap(lambda x: conv(x, 1), s, 1, 0) for s in (1, 2)) > 0.05
    # exercise ch1-stride-3-shifts: only the multiples of 3
    assert [s for s in range(1, 7) if gap(lambda x: conv(x, 3)[:21, :21], s, 3, 4) < 1e-12] \
        == [3, 6]


def test_multichannel_worked_example():
    """The C_in = 3 → C_out = 2 example: integers, first value (−8) + (−2) + (5) + 1 = −4."""
    integers = torch.Generator().manual_seed(1)
    x = torch.randint(0, 4, (1, 3, 4, 4), generator=integers).double()
    w = torch.randint(-1, 2, (2, 3, 3, 3), generator=integers).double()
    b = np.array([1.0, -2.0])
    xs, ws = x[0].numpy(), w.numpy()
    for o in range(2):
        total = sum(scipy.signal.correlate2d(xs[c], ws[o, c], "valid") for c in range(3))
        np.testing.assert_array_equal(
            F.conv2d(x, w, torch.from_numpy(b))[0, o].numpy(), total + b[o])
    per_channel = [int((xs[c, :3, :3] * ws[0, c]).sum()) for c in range(3)]
    assert per_channel == [-8, -2, 5] and sum(per_channel) + 1 == -4


def test_max_pool_example():
    block = torch.tensor([[1.0, 5, 2, 0], [3, 4, 1, 1], [0, 2, 9, 8], [6, 1, 7, 3]])
    expected = block.reshape(2, 2, 2, 2).permute(0, 2, 1, 3).reshape(2, 2, 4).amax(-1)
    assert expected.tolist() == [[5, 2], [6, 9]]
    assert F.max_pool2d(block[None, None], 2)[0, 0].tolist() == [[5, 2], [6, 9]]


def test_naive_loop_matches_conv2d():
    rng = torch.Generator().manual_seed(0)
    batch = torch.randn(2, 3, 10, 10, generator=rng)
    weight, bias = torch.randn(4, 3, 3, 3, generator=rng), torch.randn(4, generator=rng)
    for (stride, padding, dilation), shape in (((1, 0, 1), (2, 4, 8, 8)),
                                               ((2, 1, 1), (2, 4, 5, 5)),
                                               ((1, 2, 2), (2, 4, 10, 10))):
        reference = F.conv2d(batch, weight, bias, stride, padding, dilation)
        assert tuple(reference.shape) == shape
        torch.testing.assert_close(
            conv.conv2d_naive(batch, weight, bias, stride, padding, dilation),
            reference, atol=1e-5, rtol=1e-5)


def test_chapter1_exercises():
    tiny = models.TinyCNN()
    assert (tiny.conv1.in_channels, tiny.conv1.out_channels) == (1, 16)
    assert tiny.conv1.kernel_size == (3, 3) and tiny.conv1.padding == (1, 1)
    x = torch.zeros(1, 1, 28, 28)
    for padding, after_one, after_five in ((1, 28, 28), (0, 26, 18)):
        layers = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=padding) for _ in range(5)])
        assert layers[0](x).shape[-1] == after_one and layers(x).shape[-1] == after_five
    # how many valid 3×3 windows contain a corner, an edge and an interior pixel
    coverage = scipy.signal.convolve2d(np.ones((26, 26)), np.ones((3, 3)), mode="full")
    assert coverage[0, 0] == 1 and coverage[0, 10] == 3 and coverage[10, 10] == 9
    assert 2 * (5 - 1) + 1 == 9 and (64 + 2 - 9) // 2 + 1 == 29
    vgg = torchvision.models.vgg16(weights=None).features
    deeper = nn.Sequential(*vgg, nn.Conv2d(512, 512, 3, padding=1))
    assert _receptive_fields(deeper)[-1][1:] == (276, 32)
    deepest = nn.Sequential(*deeper, nn.MaxPool2d(2))
    assert _receptive_fields(deepest)[-1][1:] == (308, 64)
    assert arithmetic.receptive_field(deeper) == 276 and arithmetic.receptive_field(deepest) == 308


# ----------------------------------------------------------------------------------
# Chapter 2: classic kernels
# ----------------------------------------------------------------------------------

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
PREWITT_X = np.array([[-1, 0, 1]] * 3, dtype=np.float64)


@pytest.fixture(scope="module")
def rectangle():
    image = np.zeros((40, 56))
    image[10:30, 14:42] = 1.0
    return image


def correlate_same(image, kernel, boundary="fill"):
    return scipy.signal.correlate2d(image, kernel, mode="same", boundary=boundary)


def correlate_reflect_101(image, kernel):
    """SciPy's "mirror" border is OpenCV's default BORDER_REFLECT_101."""
    return scipy.ndimage.correlate(image, kernel, mode="mirror")


def test_mnist_digit_and_sobel_structure():
    test_set = data.load_mnist(train=False)
    assert int(test_set.targets[0]) == 7
    assert np.array_equal(SOBEL_X, np.outer([1, 2, 1], [-1, 0, 1]))
    assert np.array_equal(PREWITT_X, np.outer([1, 1, 1], [-1, 0, 1]))
    assert np.array_equal(kernels.sobel_x().numpy(), SOBEL_X)
    assert np.array_equal(kernels.prewitt_x().numpy(), PREWITT_X)


def test_sobel_numbers_on_the_rectangle(rectangle):
    gx = correlate_same(rectangle, SOBEL_X, "symm")
    gy = correlate_same(rectangle, SOBEL_X.T, "symm")
    assert gx[20, 11:17].tolist() == [0, 0, 4, 4, 0, 0]
    assert gx[20, 39:45].tolist() == [0, 0, -4, -4, 0, 0]
    # "1 + 2 + 1 = 4": on a straight vertical edge of height 1 the response is the
    # sum of Sobel x's positive column
    assert SOBEL_X[:, 2].sum() == 4 == gx[20, 13] == -gx[20, 42]
    magnitude = np.hypot(gx, gy)
    direction = np.degrees(np.arctan2(gy, gx)) % 360
    for (row, col), angle in (((20, 14), 0), ((20, 41), 180), ((10, 28), 90),
                              ((29, 28), 270)):
        assert magnitude[row, col] == 4 and direction[row, col] == angle
    assert magnitude.max() == pytest.approx(3 * math.sqrt(2))
    assert round(3 * math.sqrt(2), 2) == 4.24
    assert magnitude[10, 14] == magnitude.max()
    # exercise ch2-predict-corner
    assert (gx[10, 14], gy[10, 14], direction[10, 14]) == (3, 3, 45)
    assert (gx[9, 13], gy[9, 13]) == (1, 1)
    assert round(math.sqrt(2), 2) == 1.41 and direction[9, 13] == 45
    prewitt = correlate_same(rectangle, PREWITT_X, "symm")
    assert prewitt[20, 14] == 3 and prewitt[10, 14] == 2 and gx[10, 14] == 3
    assert (np.sign(prewitt) == np.sign(gx)).all()


def test_gaussian_numbers():
    sigma = 1 / math.sqrt(2 * math.log(2))
    assert round(sigma, 4) == 0.8493
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * sigma**2))
    np.testing.assert_allclose(taps / taps.sum(), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(np.outer(taps, taps) / taps.sum() ** 2,
                               np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    opencv_3_taps = cv2.getGaussianKernel(3, 0).ravel()
    np.testing.assert_array_equal(opencv_3_taps, [0.25, 0.5, 0.25])
    expected = {0.5: (5, 1.0000), 1.0: (7, 0.9995), 1.5: (11, 0.9998),
                2.0: (13, 0.9988), 3.0: (19, 0.9985)}
    for sigma, (size, mass) in expected.items():
        assert 2 * math.ceil(3 * sigma) + 1 == size
        half_span = size / 2  # an independent route to erf(half_span / (σ√2))
        continuous = float(scipy.stats.norm.cdf(half_span / sigma)
                           - scipy.stats.norm.cdf(-half_span / sigma))
        assert round(continuous, 4) == mass and continuous > 0.9973
        g = cv2.getGaussianKernel(size, sigma)
        np.testing.assert_allclose(kernels.gaussian(size, sigma).numpy(), g @ g.T,
                                   atol=1e-7)
    assert (7 * 7, 2 * 7) == (49, 14)


def test_separable_gaussian_equals_two_passes():
    rng = np.random.default_rng(0)
    image = rng.random((40, 50))
    g = cv2.getGaussianKernel(7, 1.0).ravel()
    two_d = correlate_reflect_101(image, np.outer(g, g))
    rows_then_cols = correlate_reflect_101(correlate_reflect_101(image, g[None]),
                                             g[:, None])
    np.testing.assert_allclose(rows_then_cols, two_d, atol=1e-12)


def test_sharpen_laplacian_and_log():
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    laplacian4 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
    assert np.array_equal(sharpen, identity - laplacian4)
    assert np.array_equal(kernels.sharpen().numpy(), sharpen)
    assert sharpen.sum() == 1 and laplacian4.sum() == 0 and kernels.box(3).sum() == 1
    assert np.array_equal(kernels.laplacian(8).numpy(),
                          np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]]))
    size = 2 * math.ceil(3 * 1.4) + 1  # the chapter's rule: 11 taps for σ = 1.4
    assert size == 11
    g = cv2.getGaussianKernel(size, 1.4)
    log_kernel = scipy.signal.convolve2d(laplacian4, g @ g.T)
    assert log_kernel.shape == (13, 13) and abs(log_kernel.sum()) < 1e-12
    rng = np.random.default_rng(1)
    image = rng.random((48, 48))
    one_filter = scipy.signal.correlate2d(image, log_kernel, mode="same")
    two_steps = scipy.signal.correlate2d(
        scipy.signal.correlate2d(image, g @ g.T, mode="same"), laplacian4, mode="same")
    inside = np.s_[8:-8, 8:-8]
    np.testing.assert_allclose(one_filter[inside], two_steps[inside], atol=1e-10)


def test_noise_amplification_of_the_laplacian_and_the_log():
    """"noise of standard deviation 0.05 into a response of about 0.22, more than four
    times larger"; edges "about 9" and "about 30" times the noise; "more than three
    times better"."""
    laplacian4 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)
    g = cv2.getGaussianKernel(11, 1.4)
    log_kernel = scipy.signal.convolve2d(laplacian4, g @ g.T)
    # the standard deviation of filtered white noise is σ·‖kernel‖ (no image needed)
    assert 0.05 * np.linalg.norm(laplacian4) == pytest.approx(0.2236, abs=1e-4)
    rectangle = np.zeros((40, 56))
    rectangle[10:30, 14:42] = 1.0
    noise = 0.05 * np.random.default_rng(0).standard_normal((40, 56))
    ratios = {}
    for name, kernel in (("laplacian", laplacian4), ("log", log_kernel)):
        edge = np.abs(correlate_reflect_101(rectangle, kernel)).max()
        spread = correlate_reflect_101(noise, kernel)[8:-8, 8:-8].std()
        ratios[name] = edge / spread
    assert round(ratios["laplacian"]) == 9 and round(ratios["log"], -1) == 30
    assert ratios["log"] > 3 * ratios["laplacian"]


def test_gabor_bank_is_not_truncated_and_prefers_its_orientation():
    sigma, gamma = 4.0, 0.5
    size = 2 * math.ceil(3 * sigma / gamma) + 1
    assert size == 49
    bank = np.stack([cv2.getGaborKernel((size, size), sigma, i * math.pi / 8, 10.0, gamma,
                                        0.0, ktype=cv2.CV_64F) for i in range(8)])
    border = np.concatenate([bank[:, 0], bank[:, -1], bank[:, :, 0], bank[:, :, -1]], 1)
    assert np.abs(border).max() < 0.02  # "below 2% of its peak at the border"
    ours = kernels.gabor_bank(size, sigma, 10.0, n_orientations=8, gamma=gamma, psi=0.0)
    np.testing.assert_allclose(ours.numpy(), bank, atol=1e-6)
    zero_mean = bank - bank.mean(axis=(1, 2), keepdims=True)
    rows, cols = np.mgrid[0:64, 0:64].astype(float)
    for i in range(8):
        t = i * math.pi / 8
        stripes = np.cos(2 * math.pi * (cols * math.cos(t) + rows * math.sin(t)) / 10)
        energy = [np.abs(scipy.ndimage.correlate(stripes, k, mode="mirror")).mean()
                  for k in zero_mean]
        assert int(np.argmax(energy)) == i


def test_gabor_bank_and_opencv_flip():
    bank = kernels.gabor_bank(21, 4.0, 10.0, n_orientations=8)
    assert tuple(bank.shape) == (8, 21, 21)
    assert [round(math.degrees(i * math.pi / 8), 1) for i in range(8)][1] == 22.5
    half, sigma, lambd, gamma, theta = 10, 4.0, 10.0, 0.5, math.pi / 8
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    x_rot = x * math.cos(theta) + y * math.sin(theta)
    y_rot = -x * math.sin(theta) + y * math.cos(theta)
    envelope = np.exp(-(x_rot**2 + gamma**2 * y_rot**2) / (2 * sigma**2))
    for psi, formula_matches in ((0.0, True), (math.pi / 2, False)):
        formula = envelope * np.cos(2 * math.pi * x_rot / lambd + psi)
        opencv = cv2.getGaborKernel((21, 21), sigma, theta, lambd, gamma, psi,
                                    ktype=cv2.CV_64F)
        assert np.allclose(formula, opencv) == formula_matches
        np.testing.assert_allclose(formula[::-1, ::-1], opencv, atol=1e-12)
        np.testing.assert_allclose(kernels.gabor(21, sigma, theta, lambd, gamma, psi),
                                   opencv, atol=1e-6)


def test_kernels_as_one_layer():
    digit = data.load_mnist(train=False).data[0].numpy().astype(np.float32) / 255
    stack = [SOBEL_X, SOBEL_X.T, PREWITT_X,
             np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
             np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
             np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])]
    weight = torch.tensor(np.stack(stack), dtype=torch.float32)[:, None]
    assert tuple(weight.shape) == (6, 1, 3, 3)
    maps = F.conv2d(torch.from_numpy(digit)[None, None], weight, padding=1)
    assert tuple(maps.shape) == (1, 6, 28, 28)
    for channel, kernel in enumerate(stack):
        np.testing.assert_allclose(maps[0, channel].numpy(),
                                   correlate_same(digit.astype(float), kernel),
                                   atol=1e-5)
    gabor_layer = F.conv2d(torch.zeros(1, 1, 176, 176),
                           torch.zeros(8, 1, 49, 49))
    assert tuple(gabor_layer.shape) == (1, 8, 128, 128)  # reflect-padded by 24


def test_four_libraries_agree_with_zero_padding():
    rng = np.random.default_rng(2)
    image = rng.random((32, 40)).astype(np.float32)
    reference = correlate_same(image.astype(float), SOBEL_X)
    ours = F.conv2d(torch.from_numpy(image)[None, None],
                    torch.from_numpy(SOBEL_X.astype(np.float32))[None, None],
                    padding=1)[0, 0].numpy()
    opencv = cv2.filter2D(image, cv2.CV_32F, SOBEL_X.astype(np.float32),
                          borderType=cv2.BORDER_CONSTANT)
    assert np.abs(ours - reference).max() < 1e-5
    assert np.abs(opencv - reference).max() < 1e-5


def test_uint8_saturation_counts(rectangle):
    exact = correlate_same(rectangle * 255, SOBEL_X, "symm")
    assert exact.min() == -1020 and exact.max() == 1020 and 4 * 255 == 1020
    clipped = np.clip(exact, 0, 255)
    negative = exact < 0
    assert int(negative.sum()) == 44 == 2 * (20 + 2)
    assert int((negative & (clipped == 0)).sum()) == 44
    assert int((exact > 255).sum()) == 40
    uint8 = cv2.filter2D((rectangle * 255).astype(np.uint8), -1,
                         SOBEL_X.astype(np.float32))
    assert uint8.dtype == np.uint8 and np.array_equal(uint8, clipped.astype(np.uint8))


def test_bgr_round_trip():
    rgb = (data.sample_image("chelsea", size=128).permute(1, 2, 0).numpy() * 255)
    rgb = rgb.round().astype(np.uint8)
    _, png = cv2.imencode(".png", rgb[:, :, ::-1].copy())  # save as BGR, correctly
    loaded = cv2.imdecode(png, cv2.IMREAD_COLOR)
    assert not np.array_equal(loaded, rgb)
    assert np.array_equal(loaded[:, :, ::-1], rgb)


def test_border_modes_differ_exactly_on_the_ring():
    weights = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    grey = (data.sample_image("chelsea", size=128) * weights).sum(0).double().numpy()
    box = np.full((3, 3), 1 / 9)
    reflect_101 = correlate_reflect_101(grey, box)
    zero = correlate_same(grey, box, "fill")
    differs = ~np.isclose(reflect_101, zero, atol=1e-6)
    ring = np.ones_like(differs)
    ring[1:-1, 1:-1] = False
    assert int(ring.sum()) == 4 * 128 - 4 == 508
    assert np.array_equal(differs, ring)
    ones = np.pad(np.ones((5, 5)), 1)  # zero padding: black share of border windows
    assert (ones[0:3, 2:5] == 0).sum() == 3 and (ones[0:3, 0:3] == 0).sum() == 5
    padded = np.pad(grey, 1, mode="reflect")  # numpy "reflect" = OpenCV reflect-101
    np.testing.assert_allclose(scipy.signal.correlate2d(padded, box, "valid"),
                               reflect_101, atol=1e-12)


def test_nhwc_image_whose_height_equals_the_channels_runs_silently():
    images, _ = data.cifar10_sample()
    nhwc = images[:1].float().permute(0, 2, 3, 1)  # (1, 32, 32, 3)
    with torch.no_grad():
        out = nn.Conv2d(32, 8, 3)(nhwc)  # the height, 32, is read as the channels
    assert tuple(out.shape) == (1, 8, 30, 1)


def test_layout_and_dtype_traps():
    weight = torch.zeros(1, 3, 3, 3)
    message = (r"expected input\[1, 128, 128, 3\] to have 3 channels, "
               r"but got 128 channels instead")
    with pytest.raises(RuntimeError, match=message):
        F.conv2d(torch.zeros(1, 128, 128, 3), weight)
    assert tuple(F.conv2d(torch.zeros(1, 3, 128, 128), weight, padding=1).shape) == (
        1, 1, 128, 128)
    digit = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="expected scalar type Byte but found Float"):
        F.conv2d(digit, torch.zeros(1, 1, 3, 3))
    message = r"Input type \(unsigned char\) and bias type \(float\) should be the same"
    with pytest.raises(RuntimeError, match=message):
        nn.Conv2d(1, 1, 3)(digit)
    wrapped = F.conv2d(torch.full((1, 1, 3, 3), 200, dtype=torch.uint8),
                       torch.ones((1, 1, 3, 3), dtype=torch.uint8))
    assert int(wrapped) == 9 * 200 % 256 == 8
    assert tuple(F.conv2d(digit.float() / 255, torch.zeros(1, 1, 3, 3)).shape) == (
        1, 1, 26, 26)


def test_explorer_gaussian_sizes():
    sizes = [2 * math.ceil(3 * s) + 1 for s in (0.5, 1, 2, 3, 4)]
    assert sizes[0] == 5 and sizes[-1] == 25
    assert interactive.explorer_kernel("gaussian", sigma=0.5).shape == (5, 5)
    assert interactive.explorer_kernel("gaussian", sigma=4).shape == (25, 25)


@pytest.mark.parametrize("size, intermediate, ramp, peak", [
    (3, 2, [1 / 3, 2 / 3], 8 / 3), (5, 4, [0.2, 0.4, 0.6, 0.8], 1.6)])
def test_blur_exercise(rectangle, size, intermediate, ramp, peak):
    blurred = correlate_reflect_101(rectangle, np.full((size, size), 1 / size**2))
    row = blurred[20, 10:20]
    inside = row[(row > 1e-9) & (row < 1 - 1e-9)]
    assert len(inside) == intermediate == size - 1
    np.testing.assert_allclose(inside, ramp, atol=1e-12)
    sobel = correlate_reflect_101(blurred, SOBEL_X)
    assert sobel.max() == pytest.approx(peak) == 4 * 2 / size
    assert int((sobel[20] > 1e-9).sum()) == size + 1
    assert round(8 / 3, 2) == 2.67


def test_channel_strengths_of_the_six_kernel_layer():
    """Chapter 2: 'the derivative channels reach about 4, the Gaussian channel stays
    below 1', so a shared scale would wash the Gaussian channel out."""
    digit = data.load_mnist(train=False).data[0].numpy().astype(float) / 255
    stack = {"Sobel x": SOBEL_X, "Sobel y": SOBEL_X.T, "Prewitt x": PREWITT_X,
             "Laplacian 4": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
             "Gaussian 3×3": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
             "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])}
    largest = {name: np.abs(correlate_same(digit, kernel)).max()
               for name, kernel in stack.items()}
    assert round(largest["Sobel x"], 2) == round(largest["Sobel y"], 2) == 3.98
    assert round(largest["Gaussian 3×3"], 2) == 0.95 < 1
    assert largest["Gaussian 3×3"] < largest["Sobel x"] / 3  # > the 2× rule of utils.viz


def _cat_grey() -> np.ndarray:
    weights = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    return (data.sample_image("chelsea", size=128) * weights).sum(0).double().numpy()


def test_orientation_energy_is_smooth_and_peaks_where_the_text_says():
    """Chapter 2's orientation-energy maps, recomputed with OpenCV's Gabor kernels (in
    both phases; OpenCV's 180° rotation flips the sine phase's sign, which the energy
    squares away) and SciPy's reflect-101 correlation."""
    grey = _cat_grey()
    sigma, lambd, gamma, size = 4.0, 10.0, 0.5, 49
    even_maps, odd_maps = [], []
    for i in range(8):
        theta = i * math.pi / 8
        for psi, maps in ((0.0, even_maps), (math.pi / 2, odd_maps)):
            kernel = cv2.getGaborKernel((size, size), sigma, theta, lambd, gamma, psi,
                                        ktype=cv2.CV_64F)
            maps.append(correlate_reflect_101(grey, kernel - kernel.mean()))
    even, odd = np.stack(even_maps), np.stack(odd_maps)
    energy = np.sqrt(even**2 + odd**2)
    laplacian4 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)

    def roughness(maps):
        valid = [scipy.signal.correlate2d(m, laplacian4, mode="valid") for m in maps]
        return np.abs(valid).mean() / maps.mean()

    assert round(roughness(np.abs(even)), 2) == 0.45
    assert round(roughness(energy), 2) == 0.06
    peaks = [divmod(int(m.argmax()), m.shape[1]) for m in energy]
    assert peaks[0] == (55, 58)  # 0°: vertical stripes, between the eyes
    assert peaks[4] == (36, 35)  # 90°: horizontal stripes, over the left eye
    # exercise ch2-dominant-orientation: every orientation wins a tenth to a sixth
    share = np.bincount(energy.argmax(axis=0).ravel(), minlength=8) / energy[0].size
    assert share.min() > 0.09 and share.max() < 0.18
    assert set(np.argsort(share)[-2:]) == {0, 4}  # 0° and 90° win most often
    # the same maps as the chapter's PyTorch layer (reflect padding by 24)
    bank = kernels.gabor_bank(size, sigma, lambd, n_orientations=8, gamma=gamma,
                              psi=0.0).double()
    bank = bank - bank.mean(dim=(1, 2), keepdim=True)
    padded = F.pad(torch.from_numpy(grey)[None, None], (24,) * 4, mode="reflect")
    ours = F.conv2d(padded, bank[:, None])[0].numpy()
    np.testing.assert_allclose(ours, even, atol=1e-5)  # the bank is float32


def test_border_difference_counts_by_distance():
    grey = _cat_grey().astype(np.float32)
    box = kernels.box(3)
    opencv = cv2.filter2D(grey, cv2.CV_32F, box.numpy())
    zero = F.conv2d(torch.from_numpy(grey)[None, None], box[None, None],
                    padding=1)[0, 0].numpy()
    difference = np.abs(opencv - zero)
    rows, cols = np.indices(difference.shape)
    distance = np.minimum.reduce([rows, cols, rows[::-1], cols[:, ::-1]])
    counts = [int((difference[distance == d] > 1e-6).sum()) for d in range(8)]
    assert counts == [508, 0, 0, 0, 0, 0, 0, 0]
    assert round(float(difference.max()), 2) == 0.36
