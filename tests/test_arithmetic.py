"""utils.arithmetic: output sizes, receptive fields, parameter and MAC counts, checked
against PyTorch's layers, its FLOP counter and autograd (hypothesis draws the shapes)."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from utils import arithmetic as A

quick = settings(max_examples=40, deadline=None, derandomize=True)


def _leaves(layers):
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            yield from _leaves(layer)
        else:
            yield layer


# ------------------------------------------------------------------- output sizes


@quick
@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4),
       p=st.integers(0, 3), d=st.integers(1, 3))
def test_output_size_matches_conv2d(n, k, s, p, d):
    x, w = torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1)
    if d * (k - 1) + 1 > n + 2 * p:
        with pytest.raises(ValueError, match="kernel larger than padded input"):
            A.output_size(n, k, s, p, d)
        with pytest.raises(RuntimeError):
            F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
        return
    out = F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    assert A.output_size(n, k, s, p, d) == out.shape[2]
    layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    assert A.output_size(n, k, s, p, d) == layer(torch.zeros(1, 1, n, n)).shape[-1]


@quick
@given(n=st.integers(2, 30), k=st.integers(1, 5), s=st.integers(1, 3))
def test_output_size_matches_pooling(n, k, s):
    assume(k <= n)
    for p in range(k // 2 + 1):
        pooled = nn.MaxPool2d(k, s, p)(torch.zeros(1, 1, n, n))
        assert A.output_size(n, k, s, p) == pooled.shape[-1]


def test_output_size_padding_kinds():
    assert A.output_size(7, 3) == 5                       # valid
    assert A.output_size(7, 3, padding=1) == 7            # same (odd k, stride 1)
    assert A.output_size(7, 3, padding=2) == 9            # full
    assert A.output_size(224, 3, stride=2, padding=1) == 112
    assert A.output_size(7, 3, dilation=2, padding=2) == 7


@quick
@given(n=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 4),
       p=st.integers(0, 4), op=st.integers(0, 3), d=st.integers(1, 3))
def test_transposed_output_size_matches_conv_transpose2d(n, k, s, p, op, d):
    layer = nn.ConvTranspose2d(1, 1, (k, 1), stride=(s, 1), padding=(p, 0),
                               output_padding=(op, 0), dilation=(d, 1))
    try:
        expected = layer(torch.zeros(1, 1, n, 1)).shape[2]
    except (RuntimeError, ValueError):
        expected = None
    if expected is None or expected < 1:
        with pytest.raises(ValueError):
            A.transposed_output_size(n, k, s, p, op, d)
    else:
        assert A.transposed_output_size(n, k, s, p, op, d) == expected


@quick
@given(n=st.integers(1, 30), k=st.integers(1, 5), s=st.integers(1, 4),
       p=st.integers(0, 2))
def test_transposed_conv_inverts_output_size(n, k, s, p):
    assume(k <= n + 2 * p)
    m = A.output_size(n, k, s, p)
    lost = (n + 2 * p - k) % s        # rows the strided conv never reached
    assert A.transposed_output_size(m, k, s, p, output_padding=lost) == n


# ---------------------------------------------------------------- parameter counts


@quick
@given(c_in=st.integers(1, 6), c_out=st.integers(1, 6), groups=st.integers(1, 3),
       k_h=st.integers(1, 5), k_w=st.integers(1, 5), bias=st.booleans(),
       size=st.integers(5, 9), stride=st.integers(1, 2))
def test_conv_params_and_macs_match_pytorch(c_in, c_out, groups, k_h, k_w, bias,
                                            size, stride):
    c_in, c_out = c_in * groups, c_out * groups
    layer = nn.Conv2d(c_in, c_out, (k_h, k_w), stride=stride, groups=groups,
                      bias=bias)
    expected = sum(p.numel() for p in layer.parameters())
    assert A.conv_params(c_in, c_out, (k_h, k_w), groups, bias) == expected
    x = torch.zeros(1, c_in, size, size)
    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    macs = A.conv_macs(c_in, c_out, (k_h, k_w), out.shape[2], out.shape[3], groups)
    assert 2 * macs == counter.get_total_flops()


def test_depthwise_separable_saves_about_eight_times():
    standard = A.conv_params(64, 128, 3, bias=False)
    separable = (A.conv_params(64, 64, 3, groups=64, bias=False)
                 + A.conv_params(64, 128, 1, bias=False))
    assert (standard, separable) == (73728, 8768)
    assert separable / standard == pytest.approx(1 / 128 + 1 / 9)


# ------------------------------------------------------------------ receptive field


def _dense(layers):
    """True when no window has holes: no dilation, and every kernel at least its
    stride (otherwise some input pixels inside the field are never read)."""
    for layer in _leaves(layers):
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = (v if isinstance(v, int) else v[0] for v in (layer.kernel_size,
                                                                 layer.stride))
            d = getattr(layer, "dilation", 1)
            if (d if isinstance(d, int) else d[0]) != 1 or k < s:
                return False
    return True


def test_receptive_field_small_stacks_by_hand():
    conv3 = nn.Conv2d(1, 1, 3)
    assert A.receptive_field([conv3]) == 3
    assert A.receptive_field(nn.Sequential(conv3, nn.ReLU(), conv3)) == 5
    assert A.receptive_field([nn.Conv2d(1, 1, 3, stride=2), conv3]) == 7
    assert A.receptive_field([nn.Conv2d(1, 1, 3, dilation=2)]) == 5
    assert A.receptive_field([nn.MaxPool2d(2), conv3]) == 6
    assert A.receptive_field([]) == 1
    assert A.receptive_field(conv3) == 3


def _random_stack(rng):
    layers, channels = [], 2
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["conv", "conv", "max", "avg", "relu", "bn"])
        if kind == "conv":
            layers.append(nn.Conv2d(channels, 3, rng.choice([1, 2, 3, 5]),
                                    stride=rng.randint(1, 3),
                                    padding=rng.randint(0, 2),
                                    dilation=rng.randint(1, 2)))
            channels = 3
        elif kind in ("max", "avg"):
            k = rng.randint(2, 3)
            pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
            layers.append(pool(k, stride=rng.randint(1, 3), padding=rng.randint(0, 1)))
        else:
            layers.append(nn.ReLU() if kind == "relu" else nn.BatchNorm2d(channels))
    if rng.random() < 0.5:
        return nn.Sequential(nn.Sequential(*layers[:1]), *layers[1:])
    return layers


@pytest.mark.parametrize("seed", range(25))
def test_receptive_field_matches_gradient_on_random_stacks(seed):
    layers = _random_stack(random.Random(seed))
    r = A.receptive_field(layers)
    # The centre unit of a large input: its window lies inside the image, off the
    # padding, so the gradient is non-zero on the whole field.
    gradient = A.centre_unit_gradient(A.geometry_copy(layers), 3 * r + 16)
    _, side, filled = A.non_zero_square(gradient)
    rows, cols = np.nonzero(gradient)
    assert side == r and cols.max() - cols.min() + 1 == r
    if _dense(layers):
        assert filled


@pytest.fixture(scope="module")
def vgg16_features():
    """torchvision's VGG16 layers; only the geometry matters, so the 138M weights are
    left uninitialised (built on the meta device, then given empty CPU storage)."""
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    return model.features.to_empty(device="cpu")


def test_receptive_field_vgg16_numbers(vgg16_features):
    assert A.receptive_field(vgg16_features[:29]) == 196      # conv5_3
    assert A.receptive_field(vgg16_features) == 212           # pool5
    table = A.receptive_field_table(vgg16_features)
    assert [row["r"] for row in table if row["type"] == "Conv2d"] == [
        3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    assert table[-1] == {"index": 30, "name": "30", "type": "MaxPool2d", "r": 212,
                         "jump": 32}
    assert table[0]["jump"] == 1 and table[4]["jump"] == 2


def test_receptive_field_vgg16_matches_gradient(vgg16_features):
    assert A.measured_receptive_field(vgg16_features[:29], 224) == 196   # conv5_3
    assert A.measured_receptive_field(vgg16_features, 224) == 212        # pool5


def test_geometry_copy_keeps_windows_and_drops_the_rest():
    copy_ = A.geometry_copy(nn.Sequential(nn.Conv2d(3, 8, 5, 2, 1, 2), nn.ReLU(),
                                          nn.MaxPool2d(3, 2, 1)))
    conv, identity, pool = copy_
    assert (conv.in_channels, conv.out_channels, conv.bias) == (1, 1, None)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == (
        (5, 5), (2, 2), (1, 1), (2, 2))
    assert conv.weight.dtype == torch.float64
    assert torch.allclose(conv.weight, torch.full_like(conv.weight, 1 / 25))
    assert isinstance(identity, nn.Identity) and isinstance(pool, nn.AvgPool2d)
    with pytest.raises(ValueError, match="cannot copy layer 1 of type Linear"):
        A.geometry_copy([nn.Conv2d(1, 1, 3), nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="zero everywhere"):
        A.non_zero_square(np.zeros((3, 3)))


def test_receptive_field_table_names_nested_layers():
    stack = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)))
    table = A.receptive_field_table(stack)
    assert [(row["name"], row["type"], row["r"], row["jump"]) for row in table] == [
        ("0", "Conv2d", 3, 1), ("1.0", "ReLU", 3, 1), ("1.1", "MaxPool2d", 4, 2)]
    assert [row["index"] for row in table] == [0, 1, 2]


@pytest.mark.parametrize("layer", [nn.Linear(4, 4), nn.AdaptiveAvgPool2d(1),
                                   nn.ConvTranspose2d(1, 1, 3), nn.Flatten()])
def test_receptive_field_rejects_layers_that_change_geometry(layer):
    with pytest.raises(ValueError, match=type(layer).__name__):
        A.receptive_field([nn.Conv2d(1, 1, 3), layer])


def test_receptive_field_rejects_non_square_and_non_modules():
    with pytest.raises(ValueError, match="square kernel_size"):
        A.receptive_field([nn.Conv2d(1, 1, (3, 1))])
    with pytest.raises(ValueError, match="square stride"):
        A.receptive_field([nn.MaxPool2d(2, stride=(1, 2))])
    with pytest.raises(TypeError, match="must be an nn.Module"):
        A.receptive_field([nn.ReLU(), "conv"])
    with pytest.raises(TypeError, match="layers must be"):
        A.receptive_field(3)


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args, error, message", [
    ((0, 3), ValueError, "n must be positive, got 0"),
    ((5, 0), ValueError, "kernel_size must be positive, got 0"),
    ((5, 3, 0), ValueError, "stride must be positive, got 0"),
    ((5, 3, 1, -1), ValueError, "padding must be >= 0, got -1"),
    ((5, 3, 1, 0, 0), ValueError, "dilation must be positive, got 0"),
    ((5, 7), ValueError, r"kernel larger than padded input .* 7 > padded input 5"),
    ((5.0, 3), TypeError, "n must be an int, got float"),
    ((5, True), TypeError, "kernel_size must be an int, got bool"),
])
def test_output_size_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        A.output_size(*args)


def test_transposed_output_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="output_padding must be smaller than stride "
                                         "or dilation"):
        A.transposed_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output would be empty"):
        A.transposed_output_size(1, 1, padding=1)
    with pytest.raises(TypeError, match="n must be an int"):
        A.transposed_output_size("4", 3)


def test_conv_counts_reject_bad_arguments():
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        A.conv_params(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="out_h must be positive"):
        A.conv_macs(4, 6, 3, 0, 5)
    with pytest.raises(TypeError, match="bias must be a bool"):
        A.conv_params(4, 6, 3, bias=1)


def test_public_api_is_documented():
    for name in A.__all__:
        assert "chapters/0" in getattr(A, name).__doc__, name
