"""Every number stated in the prose of chapters/09_model_compression.ipynb, recomputed
independently of the notebook (NumPy algebra for the fusion formula, closed-form
parameter and MAC counts for the pruned networks).
"""

import numpy as np
import torch
from torch import nn

from utils import fusion, prune

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
    fused = fusion.fuse_conv_bn(layer.eval(), norm)
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


def test_pruning_channels_with_zero_gamma_and_beta_changes_nothing():
    """ "When the removed channels have γ = β = 0 … the pruned network computes the
    same function as the original." """
    torch.manual_seed(3)
    model = chapter_slim_cnn().double().eval()
    removed = ([1, 4, 6], [0, 5, 9, 10, 15])
    with torch.no_grad():
        for bn, channels in zip((model[1], model[5]), removed, strict=True):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
            bn.weight[channels] = 0.0
            bn.bias[channels] = 0.0
    keep = [[c for c in range(8) if c not in removed[0]],
            [c for c in range(16) if c not in removed[1]]]
    conv1, bn1, conv2 = prune.prune_conv_bn_channels(model[0], model[1], model[4],
                                                     keep[0])
    conv2, bn2, linear = prune.prune_conv_bn_channels(conv2, model[5], model[9],
                                                      keep[1])
    pruned = nn.Sequential(conv1, bn1, nn.ReLU(), nn.MaxPool2d(2), conv2, bn2,
                           nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), linear).eval()
    x = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=0, atol=1e-12)


def test_global_threshold_takes_every_first_layer_channel():
    """ "a global threshold that removes 12 of the 24 channels takes all 8 of the
    first layer … the global scope keeps 1 + 12 = 13" when every first-layer |γ| is
    below every second-layer one."""
    first, second = torch.linspace(0.09, 0.2, 8), torch.linspace(0.22, 0.53, 16)
    keep = prune.channels_to_keep([first, second], 0.5, "global")
    assert [len(k) for k in keep] == [1, 12]
    assert keep[0].tolist() == [7]                       # the largest first-layer |γ|
    assert round(0.5 * 24) == 12 and 1 + 12 == 13


def test_half_pruning_leaves_a_quarter_of_conv2():
    """ "pruning 50% of every layer leaves about a quarter" of conv2's MACs."""
    assert (8 * 4 * 9 * 196) / (16 * 8 * 9 * 196) == 0.25


def test_bn_before_conv_folds_exactly_only_without_padding():
    """ch09-ex-bn-before-conv: conv(bn(x)) folds into one conv for padding 0; with
    zero padding only the interior agrees (checked here with NumPy/SciPy)."""
    from scipy import signal

    rng = np.random.default_rng(5)
    a, t = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x = rng.standard_normal((3, 9, 9))

    def conv(inputs, weight, bias, padding):
        padded = np.pad(inputs, ((0, 0), (padding, padding), (padding, padding)))
        return np.stack([sum(signal.correlate2d(padded[c], weight[o, c], mode="valid")
                             for c in range(3)) + bias[o] for o in range(4)])

    normalised = a[:, None, None] * x + t[:, None, None]
    w_folded = w * a[None, :, None, None]
    b_folded = b + (w * t[None, :, None, None]).sum((1, 2, 3))
    for padding in (0, 1):
        gap = np.abs(conv(x, w_folded, b_folded, padding) - conv(normalised, w, b, padding))
        if padding == 0:
            assert gap.max() < 1e-12
        else:
            assert gap[:, 1:-1, 1:-1].max() < 1e-12 and gap.max() > 1e-3


def test_hand_pruning_shapes():
    """Keeping 4 of conv1's 8 channels: (8, 1, 3, 3) -> (4, 1, 3, 3), BatchNorm 8 -> 4,
    conv2 (16, 8, 3, 3) -> (16, 4, 3, 3)."""
    model = chapter_slim_cnn()
    keep = torch.tensor([0, 1, 4, 6])
    conv1, bn1, conv2 = prune.prune_conv_bn_channels(model[0], model[1], model[4], keep)
    assert tuple(conv1.weight.shape) == (4, 1, 3, 3)
    assert tuple(bn1.weight.shape) == (4,) and tuple(bn1.running_mean.shape) == (4,)
    assert tuple(conv2.weight.shape) == (16, 4, 3, 3)
    torch.testing.assert_close(conv2.weight, model[4].weight[:, keep])
