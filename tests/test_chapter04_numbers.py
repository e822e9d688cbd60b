"""Every number stated in the prose of chapters/04_fast_convolution.ipynb, recomputed
independently of the notebook (closed-form counts, SciPy correlation, NumPy algebra,
the Winograd matrices written out from Lavin & Gray 2016).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from repo_scripts import load_script
from scipy import signal
from torch.utils.flop_counter import FlopCounterMode

from utils import arithmetic, conv, data, kernels

# ------------------------------------------------------------------- naive, im2col

def test_naive_loop_counts():
    assert 9 * 9 == 81                        # 9×9 input, 3×3 kernel, padding 1
    assert arithmetic.output_size(9, 3, padding=1) == 9
    assert 224 * 224 == 50_176


def test_tiny_im2col_columns():
    image = np.arange(16).reshape(4, 4)
    windows = [image[y:y + 3, x:x + 3].ravel() for y in range(2) for x in range(2)]
    assert windows[0].tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert len(windows) == 4 and all(len(w) == 9 for w in windows)
    # neighbouring columns (right and below) share six of their nine values
    assert len(set(windows[0]) & set(windows[1])) == 6
    assert len(set(windows[0]) & set(windows[2])) == 6


def test_vgg_conv1_2_column_matrix():
    rows, columns = 64 * 3 * 3, 224 * 224
    assert (rows, columns) == (576, 50_176)
    assert rows * columns == 28_901_376
    assert round(rows * columns * 4 / 1e6, 1) == 115.6       # "about 116 MB"
    assert round(rows * columns * 4 / 1e6) == 116
    assert 64 * 224 * 224 == 3_211_264
    assert round(64 * 224 * 224 * 4 / 1e6, 1) == 12.8
    assert rows * columns / (64 * 224 * 224) == 9.0 == 3 ** 2


def test_im2col_block_is_two_mib():
    assert conv._COLUMN_BLOCK * 4 == 2 * 2 ** 20


def test_exercise_im2col_tinycnn_batch():
    assert (16 * 9, 14 * 14) == (144, 196)
    values = 144 * 196 * 128
    assert values == 3_612_672 and round(values * 4 / 1e6, 1) == 14.5
    batch = 128 * 16 * 14 * 14
    assert batch == 401_408 and round(batch * 4 / 1e6, 1) == 1.6
    assert values / batch == 9.0


# ------------------------------------------------------------------------ Winograd

def test_winograd_1d_f23_against_scipy():
    """F(2, 3): "4 multiplies instead of 6", m1..m4 as in the text, y0 = m1 + m2 + m3,
    y1 = m2 − m3 − m4, against scipy's correlation over many random tiles; the
    matrices read off m1..m4 are Lavin & Gray's."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        d, g = rng.standard_normal(4), rng.standard_normal(3)
        m1 = (d[0] - d[2]) * g[0]
        m2 = (d[1] + d[2]) * (g[0] + g[1] + g[2]) / 2
        m3 = (d[2] - d[1]) * (g[0] - g[1] + g[2]) / 2
        m4 = (d[1] - d[3]) * g[2]
        np.testing.assert_allclose([m1 + m2 + m3, m2 - m3 - m4],
                                   signal.correlate(d, g, mode="valid"), atol=1e-12)
    assert 2 * 3 == 6 and 2 + 3 - 1 == 4 and 6**2 == 36 and 4**2 == 16
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    g_matrix = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    np.testing.assert_array_equal(conv.WINOGRAD_BT.numpy(), bt)
    np.testing.assert_array_equal(conv.WINOGRAD_G.numpy(), g_matrix)
    np.testing.assert_array_equal(conv.WINOGRAD_AT.numpy(), at)
    # the kernel factors are g(x) = g0 + g1·x + g2·x² at 0, 1 (halved), −1 (halved), ∞
    g = rng.standard_normal(3)
    poly = np.polynomial.Polynomial(g)
    np.testing.assert_allclose(g_matrix @ g, [poly(0), poly(1) / 2, poly(-1) / 2, g[2]])


def test_exercise_winograd_1d_signal():
    """ch04-ex-winograd-1d: 10 values, 3 taps: 8 outputs, 4 tiles, 16 against 24."""
    outputs = 10 - 3 + 1
    tiles = len(range(0, 10 - 3, 2))
    assert (outputs, tiles, 4 * tiles, 3 * outputs) == (8, 4, 16, 24)


def test_winograd_counts():
    assert 2 * 2 * 3 * 3 == 36 and 4 * 4 == 16 and 36 / 16 == 2.25
    tiles = (224 // 2) ** 2
    assert tiles == 12_544 and tiles * 16 == 200_704
    assert 224 * 224 * 9 == 451_584 and 451_584 / 200_704 == 2.25


def test_winograd_matrices_have_cheap_entries():
    assert set(conv.WINOGRAD_BT.unique().tolist()) == {-1.0, 0.0, 1.0}
    assert set(conv.WINOGRAD_AT.unique().tolist()) == {-1.0, 0.0, 1.0}
    assert set(conv.WINOGRAD_G.abs().unique().tolist()) == {0.0, 0.5, 1.0}


def test_winograd_tile_against_scipy():
    rng = np.random.default_rng(0)
    bt, g_matrix, at = (m.double().numpy() for m in (
        conv.WINOGRAD_BT, conv.WINOGRAD_G, conv.WINOGRAD_AT))
    for _ in range(50):
        d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
        y = at @ ((g_matrix @ g @ g_matrix.T) * (bt @ d @ bt.T)) @ at.T
        np.testing.assert_allclose(y, signal.correlate2d(d, g, mode="valid"),
                                   rtol=0, atol=1e-12)


def test_larger_winograd_tile_needs_larger_constants():
    """F(4, 3) from Lavin & Gray (2016): its constants include 1/6 and ±4."""
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                  dtype=float)
    g_matrix = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6],
                         [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                   [0, 1, -1, 8, -8, 1]], dtype=float)
    rng = np.random.default_rng(1)
    for _ in range(20):
        d, g = rng.standard_normal(6), rng.standard_normal(3)
        np.testing.assert_allclose(at @ ((g_matrix @ g) * (bt @ d)),
                                   np.correlate(d, g, mode="valid"), atol=1e-12)
    assert np.isclose(np.abs(g_matrix), 1 / 6).any() and (np.abs(bt) == 4).any()


def test_winograd_float32_error_is_like_im2col():
    """ "In float32 they agree about as closely as im2col does" (within 2×)."""
    generator = torch.Generator().manual_seed(0)
    for channels in (8, 64, 256):
        x = torch.randn(2, channels, 15, 17, generator=generator)
        w = torch.randn(16, channels, 3, 3, generator=generator)
        exact = signal_reference(x, w)
        winograd = (conv.conv2d_winograd(x, w, padding=1).double() - exact).abs().max()
        im2col = (conv.conv2d_im2col(x, w, padding=1).double() - exact).abs().max()
        assert winograd < 2 * im2col
        assert winograd / exact.abs().max() < 1e-5


def signal_reference(x, w):
    """Zero-padded correlation in float64 with SciPy, summed over input channels."""
    xs, ws = x.double().numpy(), w.double().numpy()
    out = np.zeros((xs.shape[0], ws.shape[0], xs.shape[2], xs.shape[3]))
    for n in range(xs.shape[0]):
        for o in range(ws.shape[0]):
            padded = np.pad(xs[n], ((0, 0), (1, 1), (1, 1)))
            out[n, o] = signal.correlate(padded, ws[o], mode="valid")[0]
    return torch.from_numpy(out)


def test_notebook_tolerances_hold():
    generator = torch.Generator().manual_seed(3)
    for dtype, tolerance in [(torch.float32, 1e-4), (torch.float64, 1e-12)]:
        x = torch.randn(2, 8, 15, 17, generator=generator, dtype=dtype)
        w = torch.randn(16, 8, 3, 3, generator=generator, dtype=dtype)
        error = (conv.conv2d_winograd(x, w, padding=1).double()
                 - signal_reference(x, w)).abs().max()
        assert error < tolerance


# ----------------------------------------------------------------- FFT convolution

def chapter_gabor():
    """The section's 21×21 odd Gabor kernel (ψ = π/2), as a NumPy array."""
    return kernels.gabor(21, sigma=3.0, theta=np.pi / 4, lambd=8.0, gamma=1.0,
                         psi=np.pi / 2).double().numpy()


def test_one_channel_fft_correlation_with_numpy_and_scipy():
    """Pad to 128 + 21 − 1 = 148, rfft2, multiply by the conjugate, irfft2, crop the
    first 108 values: SciPy's correlation. Without the conjugate: SciPy's convolution,
    valid part from index k − 1. The spectrum has 148 × 75 values."""
    cat = data.sample_image("chelsea", size=128).mean(0).double().numpy()
    gabor = chapter_gabor()
    assert cat.shape == (128, 128) and 128 + 21 - 1 == 148 and 128 - 21 + 1 == 108
    cat_spectrum = np.fft.rfft2(cat, s=(148, 148))
    gabor_spectrum = np.fft.rfft2(gabor, s=(148, 148))
    assert cat_spectrum.shape == (148, 148 // 2 + 1) == (148, 75)
    correlation = np.fft.irfft2(cat_spectrum * gabor_spectrum.conj(), s=(148, 148))
    np.testing.assert_allclose(correlation[:108, :108],
                               signal.correlate2d(cat, gabor, mode="valid"),
                               rtol=0, atol=1e-10)
    convolution = np.fft.irfft2(cat_spectrum * gabor_spectrum, s=(148, 148))
    np.testing.assert_allclose(convolution, signal.fftconvolve(cat, gabor, "full"),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(convolution[20:128, 20:128],
                               signal.convolve2d(cat, gabor, mode="valid"),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(gabor[::-1, ::-1], -gabor, rtol=0, atol=1e-6)


def test_gabor_spectrum_is_one_diagonal_blob_at_an_eighth_cycle():
    spectrum = np.abs(np.fft.rfft2(chapter_gabor(), s=(148, 148)))
    f_y = np.fft.fftfreq(148)[:, None] + 0 * spectrum
    f_x = np.fft.rfftfreq(148)[None, :] + 0 * spectrum
    peak = np.unravel_index(spectrum.argmax(), spectrum.shape)
    assert abs(math.hypot(f_y[peak], f_x[peak]) - 1 / 8) < 1 / 148
    assert abs(abs(f_y[peak]) - f_x[peak]) < 1 / 148                  # on a diagonal
    distance = np.minimum(np.hypot(f_y - f_y[peak], f_x - f_x[peak]),
                          np.hypot(f_y + f_y[peak], f_x + f_x[peak]))
    assert spectrum[distance > 0.25].max() < 1e-3 * spectrum.max()     # almost zero


def test_multichannel_check_shapes():
    """Output sizes H + 2p − k + 1 of the chapter's check on a 2×4×20×17 batch."""
    for k, p, shape in [(3, 1, (20, 17)), (8, 0, (13, 10)), (21, 2, (4, 1))]:
        assert (20 + 2 * p - k + 1, 17 + 2 * p - k + 1) == shape
    assert (20 + 4, 17 + 4) == (24, 21)             # 21×21 kernel as wide as the input
    x = torch.randn(2, 4, 20, 17, dtype=torch.float64)
    w = torch.randn(6, 4, 21, 21, dtype=torch.float64)
    out = conv.conv2d_fft(x, w, padding=2)
    np.testing.assert_allclose(out.numpy(), signal_reference_padded(x, w, 2),
                               rtol=0, atol=1e-10)


def signal_reference_padded(x, w, padding):
    """Zero-padded correlation with SciPy, summed over input channels."""
    xs = np.pad(x.numpy(), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    return np.stack([np.stack([signal.correlate(image, kernel, mode="valid")[0]
                               for kernel in w.numpy()]) for image in xs])


def radix2_fft(values):
    """Recursive radix-2 FFT; returns the transform and its complex multiplies."""
    n = len(values)
    if n == 1:
        return values.astype(complex), 0
    even, even_count = radix2_fft(values[0::2])
    odd, odd_count = radix2_fft(values[1::2])
    twiddled = np.exp(-2j * np.pi * np.arange(n // 2) / n) * odd
    return (np.concatenate([even + twiddled, even - twiddled]),
            even_count + odd_count + n // 2)


def test_fft_multiply_model():
    """A complex radix-2 FFT of n points does (n/2)·log2 n complex multiplies, i.e.
    2n·log2 n real ones; a real-input FFT (one complex FFT of n/2 points plus n/2
    twiddles) about half of that, n·log2 n."""
    rng = np.random.default_rng(5)
    for n in (8, 64, 1024):
        values = rng.standard_normal(n)
        transform, count = radix2_fft(values)
        np.testing.assert_allclose(transform, np.fft.fft(values), atol=1e-9)
        assert count == n // 2 * math.log2(n)
    for n in (2**14, 2**15):                        # about 132² and 176² points
        real_input = 4 * (n // 4 * math.log2(n // 2) + n // 2)
        assert 1 <= real_input / (n * math.log2(n)) < 1.1


def fft_count(size, k, c_in=8, c_out=8):
    """The section's model, written out: transforms + complex products."""
    side = size + (k - 1) + (k - 1)             # 'same' padding k − 1, plus k − 1
    transforms = (c_in + c_out + c_in * c_out) * side * side * math.log2(side * side)
    return side, transforms + 4 * c_in * c_out * side * (side // 2 + 1)


def test_multiply_count_table():
    table = {3: (132, 9.4, 21.9, 0.43), 5: (136, 26.2, 23.4, 1.12),
             9: (144, 84.9, 26.5, 3.21), 15: (156, 235.9, 31.5, 7.48),
             25: (176, 655.4, 41.0, 15.99), 41: (208, 1762.7, 58.9, 29.93)}
    for k, (side, direct_m, fft_m, ratio) in table.items():
        x, w = torch.zeros(1, 8, 128, 128), torch.zeros(8, 8, k, k)
        with FlopCounterMode(display=False) as counter:
            F.conv2d(x, w, padding=k // 2)
        direct = counter.get_total_flops() // 2
        assert direct == 8 * 8 * k * k * 128 * 128
        fft_side, fft = fft_count(128, k)
        assert fft_side == side
        assert (round(direct / 1e6, 1), round(fft / 1e6, 1)) == (direct_m, fft_m)
        assert round(direct / fft, 2) == ratio


def test_multiply_count_prose():
    """187-fold (1681/9) against less than triple; 2.3× more for 3×3; cheaper from
    k = 5 on."""
    counts = {k: (8 * 8 * k * k * 128 * 128, fft_count(128, k)[1])
              for k in (3, 5, 9, 15, 25, 41)}
    direct_growth = counts[41][0] / counts[3][0]
    assert direct_growth == 1681 / 9 and round(direct_growth) == 187
    assert counts[41][1] / counts[3][1] < 3
    assert round(counts[3][1] / counts[3][0], 1) == 2.3
    assert [k for k, (direct, fft) in counts.items() if fft < direct] == [
        5, 9, 15, 25, 41]


def test_fft_sizes_and_their_prime_factors():
    """ "144 = 2⁴·3² at k = 9 … 136 = 2³·17 at k = 5" (FFT size H + 2p + k − 1)."""
    assert fft_count(128, 9)[0] == 144 == 2**4 * 3**2
    assert fft_count(128, 5)[0] == 136 == 2**3 * 17
    assert fft_count(128, 41)[0] == 208


def test_vgg_kernel_spectra_memory():
    side = 224 + 2 + 3 - 1
    assert side == 228 and np.fft.rfft2(np.zeros((side, side))).shape == (228, 115)
    assert round(64 * 64 * 3 * 3 * 4 / 1e3) == 147                   # kB of weights
    assert round(64 * 64 * 228 * 115 * np.dtype(np.complex64).itemsize / 1e6) == 859


def test_exercise_wraparound():
    """16×16 image, 5×5 kernel: full convolution 20×20; a 20-point FFT has no wrong
    value, a 16-point one 16² − 12² = 112, all in the first 4 rows or columns, and
    the 12×12 valid block is exact."""
    rng = np.random.default_rng(6)
    image, kernel = rng.standard_normal((16, 16)), rng.standard_normal((5, 5))
    full = signal.convolve2d(image, kernel, mode="full")
    assert full.shape == (16 + 5 - 1,) * 2 == (20, 20)
    wrong = {}
    for size in (20, 16):
        shape = (size, size)
        product = np.fft.rfft2(image, s=shape) * np.fft.rfft2(kernel, s=shape)
        circular = np.fft.irfft2(product, s=shape)
        wrong[size] = np.abs(circular - full[:size, :size]) > 1e-9
        assert not wrong[size][4:16, 4:16].any()
    assert wrong[20].sum() == 0
    assert wrong[16].sum() == 16**2 - 12**2 == 112
    assert wrong[16][:4].all() and wrong[16][:, :4].all()
    # "with fewer than 16 points rfft2 would cut off part of the image itself"
    np.testing.assert_allclose(np.fft.rfft2(image, s=(15, 15)),
                               np.fft.rfft2(image[:15, :15]))
    cropped = torch.fft.rfft2(torch.from_numpy(image), s=(15, 15))
    np.testing.assert_allclose(cropped.numpy(), np.fft.rfft2(image[:15, :15]))
    np.testing.assert_allclose(full[4:16, 4:16],
                               signal.convolve2d(image, kernel, mode="valid"))


# ---------------------------------------------------------------------- benchmarks

def test_benchmark_shapes_and_targets_match_the_prose():
    conv_bench = load_script("benchmarks/conv_bench.py")

    shapes = conv_bench.SHAPES
    assert shapes["a"]["input"] == (1, 64, 224, 224) and shapes["a"]["weight"][0] == 64
    assert shapes["b"]["input"] == (128, 16, 14, 14) and shapes["b"]["weight"][0] == 32
    assert shapes["c"]["input"] == (1, 8, 32, 32)
    assert conv_bench.TARGETS == {"conv2d_im2col": 1.5, "conv2d_winograd": 3.0}
    assert "conv2d_naive" in shapes["c"]["implementations"]
    assert shapes["d"] == {"input": (1, 8, 128, 128), "weight": (8, 8, 25, 25),
                           "padding": 12,
                           "implementations": ("F.conv2d", "conv2d_fft")}
    assert "conv2d_fft" in shapes["b"]["implementations"]
    assert "conv2d_fft" not in shapes["a"]["implementations"]
    # the docstring's reason: (a)'s 64×64 kernel spectra at FFT size 226 + 3 − 1
    assert round(64 * 64 * 228 * 115 * 8 / 1e6) == 859
    assert "859 MB" in conv_bench.__doc__
