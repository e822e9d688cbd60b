"""Tests of utils.prune: channel pruning by BatchNorm |γ| (network slimming).

The reference for "the pruned network computes the same function" is the original
network itself, with the channels to remove silenced (γ = β = 0); MAC counts are
checked against closed-form counts written out by hand.
"""

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import prune


def slim_net(seed=0, channels=(6, 8)):
    """conv-BN-ReLU-pool ×2 → Flatten → Linear on 1×8×8 inputs, with running stats
    and affine parameters that are not the defaults."""
    torch.manual_seed(seed)
    c1, c2 = channels
    net = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 2 * 2, 5),
    ).double()
    with torch.no_grad():
        for bn in (net[1], net[5]):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def silence(net, layer, channels):
    with torch.no_grad():
        net[layer].weight[channels] = 0.0
        net[layer].bias[channels] = 0.0


def test_pruning_silenced_channels_keeps_the_function():
    net = slim_net()
    silence(net, 1, [0, 3, 4])
    silence(net, 5, [1, 2, 6])
    slim, keep = prune.slim_sequential(net, prune_fraction=6 / 14)
    assert [k.tolist() for k in keep] == [[1, 2, 5], [0, 3, 4, 5, 7]]
    x = torch.randn(7, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(slim(x), net(x), rtol=0, atol=1e-12)
    assert (slim[0].out_channels, slim[1].num_features,
            slim[4].in_channels) == (3, 3, 3)
    assert (slim[4].out_channels, slim[5].num_features, slim[9].in_features) == (
        5, 5, 5 * 4)
    assert net[0].out_channels == 6 and net[9].in_features == 32, "original changed"


def test_pruning_changes_the_function_when_beta_is_not_zero():
    net = slim_net()
    with torch.no_grad():
        net[1].weight[[0, 3]] = 0.0
        net[1].bias[[0, 3]] = 1.0          # ReLU(β) = 1: a constant map still flows on
    slim, _ = prune.slim_sequential(net, prune_fraction=2 / 14)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    assert not torch.allclose(slim(x), net(x))


def test_prune_conv_bn_channels_copies_the_right_entries():
    net = slim_net(seed=1)
    conv, bn, nxt = prune.prune_conv_bn_channels(net[4], net[5], net[9], [6, 1, 3])
    index = torch.tensor([1, 3, 6])
    assert torch.equal(conv.weight, net[4].weight[index]) and conv.bias is None
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(bn, name), getattr(net[5], name)[index])
    columns = torch.cat([torch.arange(4) + 4 * c for c in (1, 3, 6)])
    assert torch.equal(nxt.weight, net[9].weight[:, columns])
    assert torch.equal(nxt.bias, net[9].bias)
    assert bn.eps == net[5].eps and not bn.training
    assert conv.weight.dtype == torch.float64
    conv1, bn1, conv2 = prune.prune_conv_bn_channels(net[0], net[1], net[4],
                                                     torch.tensor([2, 5]))
    assert torch.equal(conv1.bias, net[0].bias[[2, 5]])
    assert torch.equal(conv2.weight, net[4].weight[:, [2, 5]])
    assert conv2.padding == (1, 1) and conv2.out_channels == 8


def test_parameter_and_mac_counts():
    net = slim_net()
    slim, keep = prune.slim_sequential(net, 0.5)
    c1, c2 = (len(k) for k in keep)
    assert c1 + c2 == 7
    expected_params = ((9 * c1 + c1) + 2 * c1 + (c2 * c1 * 9) + 2 * c2
                       + (5 * 4 * c2 + 5))
    assert sum(p.numel() for p in slim.parameters()) == expected_params
    assert prune.network_macs(net, (1, 8, 8)) == 6 * 9 * 64 + 8 * 6 * 9 * 16 + 32 * 5
    assert prune.network_macs(slim, (1, 8, 8)) == (c1 * 9 * 64 + c2 * c1 * 9 * 16
                                                   + 4 * c2 * 5)


def test_channels_to_keep_per_layer():
    gammas = [torch.tensor([0.5, -0.1, 0.9, 0.2]), torch.tensor([0.3, 0.01])]
    keep = prune.channels_to_keep(gammas, 0.5, scope="layer")
    assert [k.tolist() for k in keep] == [[0, 2], [0]]
    keep = prune.channels_to_keep(gammas, 0.99, scope="layer")
    assert [k.tolist() for k in keep] == [[2], [0]]


def test_channels_to_keep_global_threshold():
    gammas = [torch.tensor([0.5, -0.1, 0.9]), torch.tensor([0.2, 0.05, -0.8, 0.3])]
    keep = prune.channels_to_keep(gammas, 3 / 7)
    assert [k.tolist() for k in keep] == [[0, 2], [2, 3]]
    assert [k.tolist() for k in prune.channels_to_keep(gammas, 0.0)] == [
        [0, 1, 2], [0, 1, 2, 3]]
    tiny = [torch.tensor([0.01, 0.02]), torch.tensor([5.0, 6.0, 7.0])]
    assert [k.tolist() for k in prune.channels_to_keep(tiny, 0.4)] == [[1], [0, 1, 2]]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       fraction=st.floats(0, 0.99), seed=st.integers(0, 1000))
def test_channels_to_keep_matches_a_numpy_ranking(sizes, fraction, seed):
    rng = np.random.default_rng(seed)
    gammas = [rng.standard_normal(n) for n in sizes]
    keep = prune.channels_to_keep([torch.from_numpy(g) for g in gammas], fraction)
    magnitudes = np.abs(np.concatenate(gammas))
    layer = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    channel = np.concatenate([np.arange(n) for n in sizes])
    order = np.lexsort((channel, layer, magnitudes))
    pruned = set(order[:round(fraction * len(magnitudes))].tolist())
    for i, g in enumerate(gammas):
        survivors = [int(channel[j]) for j in range(len(layer))
                     if layer[j] == i and j not in pruned]
        expected = survivors or [int(np.abs(g).argmax())]
        assert keep[i].tolist() == expected


@pytest.mark.parametrize("call, error, message", [
    (lambda n: prune.channels_to_keep([n[1].weight], 1.0), ValueError, "[0, 1)"),
    (lambda n: prune.channels_to_keep([n[1].weight], "half"), TypeError,
         "prune_fraction must be a number"),
    (lambda n: prune.channels_to_keep(n[1].weight, 0.5), TypeError, "list"),
    (lambda n: prune.channels_to_keep([torch.ones(2, 2)], 0.5), ValueError, "1-D"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[5], n[4], [0]), ValueError,
     "mismatch"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[0], [0]), ValueError,
     "reading 6 channels"),
    (lambda n: prune.prune_conv_bn_channels(n[4], n[5], nn.Linear(30, 2), [0]),
     ValueError, "multiple"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[2], [0]), TypeError,
     "Conv2d or nn.Linear"),
    (lambda n: prune.prune_conv_bn_channels(n[1], n[1], n[4], [0]), TypeError,
     "nn.Conv2d"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[4], []), ValueError,
     "at least one"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[4], [0, 6]), ValueError,
     "[0, 6)"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[4], [1, 1]), ValueError,
     "repeat"),
    (lambda n: prune.prune_conv_bn_channels(n[0], n[1], n[4], torch.ones(2)),
     ValueError, "indices"),
    (lambda n: prune.slim_sequential(n[0], 0.5), TypeError, "nn.Sequential"),
    (lambda n: prune.slim_sequential(nn.Sequential(n[0], n[1]), 0.5), ValueError,
     "feeds no later"),
    (lambda n: prune.slim_sequential(nn.Sequential(n[0], n[1], nn.BatchNorm2d(6),
                                                   n[4]), 0.5), ValueError,
     "does not act per channel"),
    (lambda n: prune.slim_sequential(nn.Sequential(n[2], n[9]), 0.5), ValueError,
     "no Conv2d"),
    (lambda n: prune.network_macs(n, (1, 0, 8)), ValueError,
         "every size in input_shape must be positive"),
    (lambda n: prune.channels_to_keep([n[1].weight], 0.5, "net"), ValueError,
     "'global' or 'layer'"),
    (lambda n: prune.network_macs("net", (1, 8, 8)), TypeError, "nn.Module"),
])
def test_validation(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(slim_net())


def test_grouped_conv_is_refused():
    conv = nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups=1"):
        prune.prune_conv_bn_channels(conv, nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), [0])
