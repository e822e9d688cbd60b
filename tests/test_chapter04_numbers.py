"""Every number stated in the prose of chapters/04_fast_convolution.ipynb, recomputed
independently of the notebook (closed-form counts, SciPy correlation, NumPy algebra,
the Winograd matrices written out from Lavin & Gray 2016).
"""

import sys
from pathlib import Path

import numpy as np
import torch
from scipy import signal
from torch import nn

from utils import conv, prune

REPO_ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------- naive, im2col

def test_naive_loop_counts():
    assert 9 * 9 == 81                        # 9×9 input, 3×3 kernel, padding 1
    assert conv.output_size(9, 3, padding=1) == 9
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


# ------------------------------------------------------------------- Conv-BN fusion

def test_fusion_formula_with_numpy():
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    mu, var, eps = rng.standard_normal(4), rng.uniform(0.5, 2, 4), 1e-5
    sigma = np.sqrt(var + eps)
    z = rng.standard_normal((4, 5))                  # conv outputs w∗x, per channel
    bn_out = gamma[:, None] * (z + b[:, None] - mu[:, None]) / sigma[:, None] \
        + beta[:, None]
    w_fused = w * (gamma / sigma)[:, None, None, None]
    b_fused = beta + (b - mu) * gamma / sigma
    fused_out = (gamma / sigma)[:, None] * z + b_fused[:, None]
    np.testing.assert_allclose(fused_out, bn_out, atol=1e-12)
    layer = nn.Conv2d(3, 4, 3).double()
    norm = nn.BatchNorm2d(4).double().eval()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
        norm.weight.copy_(torch.from_numpy(gamma))
        norm.bias.copy_(torch.from_numpy(beta))
        norm.running_mean.copy_(torch.from_numpy(mu))
        norm.running_var.copy_(torch.from_numpy(var))
    fused = conv.fuse_conv_bn(layer.eval(), norm)
    np.testing.assert_allclose(fused.weight.detach().numpy(), w_fused, atol=1e-12)
    np.testing.assert_allclose(fused.bias.detach().numpy(), b_fused, atol=1e-12)


# ------------------------------------------------------------------------- pruning

def slim_counts(c1, c2):
    """Closed-form parameters and MACs of the chapter's slim_cnn(c1, c2)."""
    parameters = (c1 * 9 + 2 * c1) + (c2 * c1 * 9 + 2 * c2) + (c2 * 49 * 10 + 10)
    macs = c1 * 9 * 28 * 28 + c2 * c1 * 9 * 14 * 14 + c2 * 49 * 10
    return parameters, macs


def chapter_slim_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10))


def test_slim_cnn_table_sizes():
    assert slim_counts(8, 16) == (9_122, 290_080)
    model = chapter_slim_cnn()
    assert sum(p.numel() for p in model.parameters()) == 9_122
    assert 7 * 7 == 49
    assert all(bool((bn.weight.detach() == 1).all()) for bn in (model[1], model[5]))
    torch.manual_seed(0)
    with torch.no_grad():
        for bn in (model[1], model[5]):
            bn.weight.uniform_(0.1, 1.0)
    for fraction, channels in [(0.25, (6, 12)), (0.5, (4, 8)), (0.75, (2, 4))]:
        pruned, keep = prune.slim_sequential(model, fraction, scope="layer")
        assert tuple(len(k) for k in keep) == channels
        parameters, macs = slim_counts(*channels)
        assert sum(p.numel() for p in pruned.parameters()) == parameters
        assert prune.network_macs(pruned, (1, 28, 28)) == macs
    assert slim_counts(6, 12) == (6_628, 175_224)
    assert slim_counts(4, 8) == (4_278, 88_592)
    assert slim_counts(2, 4) == (2_072, 30_184)


def test_half_pruning_leaves_a_quarter_of_conv2():
    """ "pruning 50% of every layer leaves about a quarter" of conv2's MACs."""
    assert (8 * 4 * 9 * 196) / (16 * 8 * 9 * 196) == 0.25


# ---------------------------------------------------------------------- benchmarks

def test_benchmark_shapes_and_targets_match_the_prose():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import conv_bench

    shapes = conv_bench.SHAPES
    assert shapes["a"]["input"] == (1, 64, 224, 224) and shapes["a"]["weight"][0] == 64
    assert shapes["b"]["input"] == (128, 16, 14, 14) and shapes["b"]["weight"][0] == 32
    assert shapes["c"]["input"] == (1, 8, 32, 32)
    assert conv_bench.TARGETS == {"conv2d_im2col": 1.5, "conv2d_winograd": 3.0}
    assert "conv2d_naive" in shapes["c"]["implementations"]
