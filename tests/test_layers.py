"""utils.layers against PyTorch's functional convs, torchvision and FlopCounterMode."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

from utils import arithmetic as A
from utils.layers import ASPP, DepthwiseSeparableConv, layer_costs, total_costs

quick = settings(max_examples=25, deadline=None, derandomize=True)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------ DepthwiseSeparableConv


@quick
@given(c_in=st.integers(1, 12), c_out=st.integers(1, 12), k=st.sampled_from([1, 3, 5]),
       batch_norm=st.booleans())
def test_separable_params_are_the_sum_of_conv_params(c_in, c_out, k, batch_norm):
    block = DepthwiseSeparableConv(c_in, c_out, k, padding=k // 2,
                                   batch_norm=batch_norm)
    bias = not batch_norm
    expected = (A.conv_params(c_in, c_in, k, groups=c_in, bias=bias)
                + A.conv_params(c_in, c_out, 1, bias=bias))
    if batch_norm:
        expected += 2 * c_in + 2 * c_out  # BatchNorm γ and β
    assert _n_params(block) == expected


@quick
@given(c_in=st.integers(1, 8), c_out=st.integers(1, 8), k=st.sampled_from([1, 3, 5]),
       stride=st.integers(1, 3), size=st.integers(5, 12))
def test_separable_equals_grouped_then_pointwise_conv(c_in, c_out, k, stride, size):
    torch.manual_seed(0)
    block = DepthwiseSeparableConv(c_in, c_out, k, stride=stride, padding=k // 2,
                                   batch_norm=False).double()
    x = torch.randn(2, c_in, size, size, dtype=torch.float64)
    dw, pw = block.depthwise[0], block.pointwise[0]
    manual = F.conv2d(x, dw.weight, dw.bias, stride=stride, padding=k // 2,
                      groups=c_in)
    manual = F.conv2d(manual, pw.weight, pw.bias)
    torch.testing.assert_close(block(x), manual)


def test_separable_with_batch_norm_applies_bn_and_relu():
    torch.manual_seed(1)
    block = DepthwiseSeparableConv(4, 6).double().eval()
    for bn in (block.depthwise[1], block.pointwise[1]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)

    def bn_relu(y, bn):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shifted = (y - bn.running_mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        return torch.relu(shifted + bn.bias.view(1, -1, 1, 1))

    hidden = bn_relu(F.conv2d(x, block.depthwise[0].weight, padding=1, groups=4),
                     block.depthwise[1])
    expected = bn_relu(F.conv2d(hidden, block.pointwise[0].weight), block.pointwise[1])
    torch.testing.assert_close(block(x), expected)
    assert block.depthwise[0].bias is None and block.pointwise[0].bias is None


def test_separable_counts_for_the_chapter_setting():
    # 64 -> 128, 3x3: 9 * 64 + 64 * 128 weights against 64 * 128 * 9.
    plain = DepthwiseSeparableConv(64, 128, batch_norm=False)
    assert _n_params(plain) == 64 * 9 + 64 + 64 * 128 + 128 == 8960
    assert _n_params(DepthwiseSeparableConv(64, 128)) == 576 + 128 + 8192 + 256


@pytest.mark.parametrize("kwargs, error, message", [
    ({"in_channels": 0, "out_channels": 4}, ValueError,
     "in_channels must be positive"),
    ({"in_channels": 4, "out_channels": 2.0}, TypeError,
     "out_channels must be an int"),
    ({"in_channels": 4, "out_channels": 4, "kernel_size": 0}, ValueError,
     "kernel_size must be positive"),
    ({"in_channels": 4, "out_channels": 4, "stride": 0}, ValueError,
     "stride must be positive"),
    ({"in_channels": 4, "out_channels": 4, "padding": -1}, ValueError,
     "padding must be >= 0"),
    ({"in_channels": 4, "out_channels": 4, "batch_norm": 1}, TypeError,
     "batch_norm must be a bool"),
    ({"in_channels": True, "out_channels": 4}, TypeError,
     "in_channels must be an int"),
])
def test_separable_validates_its_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        DepthwiseSeparableConv(**kwargs)


# ----------------------------------------------------------------------------- ASPP


@pytest.mark.parametrize("c_in, c_out, rates, size", [
    (256, 256, (6, 12, 18), 33),
    (8, 4, (1, 2), 7),
    (3, 5, (2,), 10),
    (16, 8, (3, 6, 9, 12), (13, 20)),
    (4, 4, (24,), 5),  # rate larger than the image: padding keeps the size
])
def test_aspp_shapes_and_channel_counts(c_in, c_out, rates, size):
    height, width = (size, size) if isinstance(size, int) else size
    torch.manual_seed(0)
    aspp = ASPP(c_in, c_out, rates).eval()
    x = torch.randn(2, c_in, height, width)
    assert len(aspp.branches) == len(rates) + 2
    for branch in aspp.branches:
        assert branch(x).shape == (2, c_out, height, width)
    assert aspp.project[0].in_channels == (len(rates) + 2) * c_out
    assert aspp(x).shape == (2, c_out, height, width)
    dilations = [branch[0].dilation[0] for branch in aspp.branches[1:-1]]
    paddings = [branch[0].padding[0] for branch in aspp.branches[1:-1]]
    assert dilations == paddings == list(rates)


def test_aspp_matches_torchvision_deeplabv3():
    torch.manual_seed(0)
    ours = ASPP(32, 16, (6, 12, 18)).eval()
    reference = TorchvisionASPP(32, [6, 12, 18], out_channels=16).eval()
    assert _n_params(ours) == _n_params(reference)
    # Same layers in the same order: copy our weights into torchvision's ASPP.
    ours_state = list(ours.state_dict().values())
    reference_keys = list(reference.state_dict().keys())
    assert len(ours_state) == len(reference_keys)
    reference.load_state_dict(dict(zip(reference_keys, ours_state, strict=True)))
    x = torch.randn(2, 32, 21, 17)
    torch.testing.assert_close(ours(x), reference(x))


def test_aspp_default_parameter_count():
    # 1x1 branch, three 3x3 branches, pooling branch, projection; BN adds 2 * 256 each.
    expected = (256 * 256 + 3 * 256 * 256 * 9 + 256 * 256 + 5 * 256 * 256
                + 6 * 2 * 256)
    assert _n_params(ASPP(256, 256)) == expected == 2_231_296


def test_aspp_gradients_reach_every_parameter_and_the_input():
    torch.manual_seed(0)
    aspp = ASPP(6, 4, (1, 2, 3)).train()
    x = torch.randn(2, 6, 9, 9, requires_grad=True)
    aspp(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in aspp.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("args, error, message", [
    ((0, 4), ValueError, "in_channels must be positive"),
    ((4, 0), ValueError, "out_channels must be positive"),
    ((4, 4, ()), ValueError, "at least one dilation rate"),
    ((4, 4, (6, 0)), ValueError, "every rate must be positive"),
    ((4, 4, (6, 6)), ValueError, "different from each other"),
    ((4, 4, (6, 1.5)), TypeError, "every rate must be an int"),
    ((4, 4, 6), TypeError, "rates must be a sequence"),
    ((4, 4, "6"), TypeError, "rates must be a sequence"),
    ((4.0, 4), TypeError, "in_channels must be an int"),
])
def test_aspp_validates_its_arguments(args, error, message):
    with pytest.raises(error, match=message):
        ASPP(*args)


def test_aspp_rejects_a_non_image_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ASPP(3, 2).eval()(torch.zeros(3, 8, 8))


# ---------------------------------------------------------------------------- costs


def _flop_counter_flops(model, shape):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops()


@quick
@given(c_in=st.integers(1, 6), c_out=st.integers(1, 6), k=st.integers(1, 4),
       stride=st.integers(1, 2), dilation=st.integers(1, 2), size=st.integers(8, 14))
def test_conv_macs_match_flop_counter(c_in, c_out, k, stride, dilation, size):
    model = nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, dilation=dilation, bias=False),
        nn.ConvTranspose2d(c_out, c_in, k, stride=stride, bias=False))
    costs = total_costs(model, (c_in, size, size))
    assert 2 * costs["macs"] == costs["flops"] == _flop_counter_flops(
        model, (c_in, size, size))


def test_elementwise_and_bias_flops():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Dropout())
    rows = layer_costs(model, (3, 5, 6))
    outputs = 4 * 5 * 6
    assert [row["flops"] for row in rows] == [
        2 * 4 * 27 * 30 + outputs, 2 * outputs, outputs, outputs, 0]
    assert [row["output_shape"] for row in rows][-1] == (4, 1, 1)
    assert [row["params"] for row in rows] == [4 * 27 + 4, 8, 0, 0, 0]
    assert total_costs(model, (3, 5, 6))["params"] == _n_params(model)


def test_costs_of_the_separable_block_and_aspp():
    block = DepthwiseSeparableConv(64, 128, batch_norm=False)
    costs = total_costs(block, (64, 56, 56))
    assert costs["macs"] == (64 * 9 + 64 * 128) * 56 * 56
    aspp = ASPP(16, 8, (2, 4))
    costs = total_costs(aspp, (16, 9, 9))
    assert costs["params"] == _n_params(aspp)
    # Pooling branch: the 1x1 conv runs on a 1x1 map.
    convs = 8 * 16 * 81 + 2 * 8 * 16 * 9 * 81 + 8 * 16 + 8 * 32 * 81
    assert costs["macs"] == convs
    assert aspp.training  # the counter restores the mode it found


def test_costs_validate_their_arguments():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        total_costs(lambda x: x, (1, 4, 4))
    with pytest.raises(ValueError, match=r"input_shape must be 3 positive ints \(C, H, W\)"):
        total_costs(nn.Conv2d(1, 1, 3), (1, 1, 4, 4))
    with pytest.raises(ValueError, match="every size in input_shape must be positive"):
        total_costs(nn.Conv2d(1, 1, 1), (1, 0, 4))
    with pytest.raises(ValueError, match="cannot count layer Upsample"):
        total_costs(nn.Sequential(nn.Upsample(scale_factor=2)), (1, 4, 4))


def test_max_pooling_and_flatten_cost_nothing_like_the_flop_counter():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3))
    rows = layer_costs(model, (1, 6, 6))
    assert [(row["type"], row["macs"], row["flops"]) for row in rows[1:3]] == [
        ("MaxPool2d", 0, 0), ("Flatten", 0, 0)]
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 6, 6))
    assert total_costs(model, (1, 6, 6))["flops"] == counter.get_total_flops() + 2 * 16 + 3
