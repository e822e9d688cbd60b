"""Every number that chapter 3 (convolution types) states in its prose, recomputed.

Counts come from plain ``torch.nn`` modules (``sum(p.numel())``), torchvision's
DeepLab v3 ``ASPP`` and ``torch.utils.flop_counter``, not from ``utils.layers``, so a
change in ``utils`` that breaks a sentence of the text fails here.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

from utils import arithmetic


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(module: nn.Module, shape) -> int:
    """2 per MAC (FlopCounterMode) + 1 per bias add, 2 per BN element, 1 per ReLU."""
    extra = []

    def hook(layer, inputs, output):
        if isinstance(layer, nn.Conv2d) and layer.bias is not None:
            extra.append(output.numel())
        elif isinstance(layer, nn.BatchNorm2d):
            extra.append(2 * output.numel())
        elif isinstance(layer, nn.ReLU):
            extra.append(output.numel())

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.to("meta").eval()(torch.zeros(1, *shape, device="meta"))
    for handle in handles:
        handle.remove()
    return counter.get_total_flops() + sum(extra)


def macs(module: nn.Module, shape) -> int:
    """Multiply-accumulates of the convolutions, counted on the meta device."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.to("meta").eval()(torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops() // 2


def standard(c_in, c_out, k=3, batch_norm=False):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not batch_norm)
    if not batch_norm:
        return conv
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


def separable(c_in, c_out, k=3, batch_norm=False):
    depthwise = nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in,
                          bias=not batch_norm)
    pointwise = nn.Conv2d(c_in, c_out, 1, bias=not batch_norm)
    if not batch_norm:
        return nn.Sequential(depthwise, pointwise)
    return nn.Sequential(depthwise, nn.BatchNorm2d(c_in), nn.ReLU(),
                         pointwise, nn.BatchNorm2d(c_out), nn.ReLU())


SHAPE = (64, 56, 56)

# ------------------------------------------------------------ standard convolution


def test_standard_64_to_128_counts():
    layer = nn.Conv2d(64, 128, 3, padding=1, bias=False)
    assert n_params(layer) == 73_728
    assert macs(layer, SHAPE) == 231_211_008  # "231 million MACs"
    assert round(macs(layer, SHAPE) / 1e6) == 231


# ------------------------------------------------------------ depthwise separable


def test_separable_table_counts():
    assert n_params(standard(64, 128)) == 73_856
    assert n_params(separable(64, 128)) == 8_960
    assert n_params(standard(64, 128, batch_norm=True)) == 73_984
    assert n_params(separable(64, 128, batch_norm=True)) == 9_152
    assert macs(standard(64, 128), SHAPE) == 231_211_008
    assert macs(separable(64, 128), SHAPE) == 27_496_448
    assert flops(standard(64, 128), SHAPE) == 462_823_424
    assert flops(separable(64, 128), SHAPE) == 55_595_008
    assert flops(standard(64, 128, batch_norm=True), SHAPE) == 463_626_240
    assert flops(separable(64, 128, batch_norm=True), SHAPE) == 56_799_232


def test_separable_ratios_stated_in_the_text():
    formula = 1 / 128 + 1 / 9
    assert f"{formula:.4f}" == "0.1189" and f"{1 / formula:.2f}" == "8.41"
    weights = (64 * 9 + 128 * 64) / (128 * 64 * 9)
    assert weights == pytest.approx(formula, rel=1e-12)  # exact for weights
    assert macs(separable(64, 128), SHAPE) / macs(standard(64, 128), SHAPE) == (
        pytest.approx(formula, rel=1e-12))

    def factor(measure, batch_norm):
        return measure(standard(64, 128, batch_norm=batch_norm)) / measure(
            separable(64, 128, batch_norm=batch_norm))

    assert f"{factor(n_params, False):.2f}" == "8.24"
    assert f"{factor(n_params, True):.2f}" == "8.08"
    assert f"{factor(lambda m: flops(m, SHAPE), False):.2f}" == "8.32"
    assert f"{factor(lambda m: flops(m, SHAPE), True):.2f}" == "8.16"


def test_separable_saving_is_bounded_by_k_squared():
    for k in (3, 5):
        ratios = [n_params(separable(64, c, k, True))
                  / n_params(standard(64, c, k, True)) for c in (8, 64, 512, 4096)]
        assert all(r > 1 / k**2 for r in ratios)  # never more than k² times cheaper
        assert ratios == sorted(ratios, reverse=True)
        formula = [1 / c + 1 / k**2 for c in (8, 64, 512, 4096)]
        assert all(r > f for r, f in zip(ratios, formula, strict=True))  # BN sits above formula


def test_separable_block_with_bn_per_layer():
    block = separable(64, 128, batch_norm=True)
    assert [n_params(m) for m in block] == [576, 128, 0, 8192, 256, 0]


def test_the_floor_is_the_pointwise_step():
    """"the floor 1/k² is the pointwise 1×1 step": 8,192 of the 8,768 convolution
    weights and 51.4 of the 56.8 million FLOPs for C_out = 128."""
    depthwise = nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
    pointwise = nn.Conv2d(64, 128, 1, bias=False)
    assert (n_params(pointwise), n_params(depthwise) + n_params(pointwise)) == (8_192, 8_768)
    assert round(n_params(pointwise) / 8_768, 3) == 0.934
    assert round(2 * macs(pointwise, SHAPE) / 1e6, 1) == 51.4
    assert round(flops(separable(64, 128, batch_norm=True), SHAPE) / 1e6, 1) == 56.8
    for k in (3, 5):  # depthwise share 1/C_out vanishes, pointwise share stays 1/k²
        for c_out in (64, 512, 4096):
            standard_weights = c_out * 64 * k * k
            assert 64 * k * k / standard_weights == pytest.approx(1 / c_out)
            assert c_out * 64 / standard_weights == pytest.approx(1 / k**2)


# ------------------------------------------------------------------------ grouped


def test_grouped_weight_counts():
    assert [nn.Conv2d(64, 128, 3, groups=g, bias=False).weight.numel()
            for g in (1, 2, 4, 8, 16, 32, 64)] == [73_728 // g for g in
                                                   (1, 2, 4, 8, 16, 32, 64)]
    assert [nn.Conv2d(8, 8, 3, groups=g, bias=False).weight.numel()
            for g in (1, 2, 4, 8)] == [576, 288, 144, 72]


def test_grouped_conv_is_concatenated_slices():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 10, 10, dtype=torch.float64)
    layer = nn.Conv2d(8, 12, 3, padding=1, groups=4, bias=False).double()
    slices = [F.conv2d(x[:, 2 * g:2 * g + 2], layer.weight[3 * g:3 * g + 3], padding=1)
              for g in range(4)]
    assert (layer(x) - torch.cat(slices, 1)).abs().max() < 5e-11


# ------------------------------------------------------------------------ dilated


def _footprint(dilations, size=31):
    """Extent and number of input pixels that reach the centre unit of a stack of
    3×3 convolutions with these dilations (``utils.arithmetic``'s gradient probe)."""
    stack = [nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in dilations]
    gradient = arithmetic.centre_unit_gradient(arithmetic.geometry_copy(stack), size)
    _, side, _ = arithmetic.non_zero_square(gradient)
    return side, int((gradient != 0).sum())


def test_dilated_effective_kernel_and_same_padding():
    for d, k_eff in ((1, 3), (2, 5), (4, 9), (8, 17)):
        layer = nn.Conv2d(1, 1, 3, padding=d, dilation=d)
        assert layer(torch.zeros(1, 1, 33, 33)).shape[-1] == 33
        assert d * 2 + 1 == k_eff
        assert F.conv2d(torch.zeros(1, 1, k_eff, k_eff), torch.zeros(1, 1, 3, 3),
                        dilation=d).shape[-1] == 1


def test_dilated_receptive_fields_and_gridding():
    assert [_footprint((1, 2, 4)[:n])[0] for n in (1, 2, 3)] == [3, 7, 15]
    assert _footprint((1, 2, 4)) == (15, 225)
    assert _footprint((1, 1, 1))[0] == 7
    assert _footprint((2, 2, 2)) == (13, 49)
    assert _footprint((1, 2)) == (7, 49)


def test_path_counts_of_dilations_1_2_4():
    """"from 1 to 9 ... offsets ±1 and ±3 have three such sums, the centre only one"."""
    taps = (-1, 0, 1)
    sums = {}
    for a in taps:
        for b in taps:
            for c in taps:
                sums[a + 2 * b + 4 * c] = sums.get(a + 2 * b + 4 * c, 0) + 1
    assert sums[0] == 1 and sums[1] == sums[-1] == sums[3] == sums[-3] == 3
    assert max(sums.values()) == 3 and len(sums) == 15
    counts = [x * y for x in sums.values() for y in sums.values()]
    assert (min(counts), max(counts)) == (1, 9)
    image = torch.zeros(1, 1, 31, 31, dtype=torch.float64, requires_grad=True)
    out = image
    for d in (1, 2, 4):
        out = F.conv2d(out, torch.ones(1, 1, 3, 3, dtype=torch.float64), padding=d,
                       dilation=d)
    out[0, 0, 15, 15].backward()
    grad = image.grad[0, 0]
    assert int(grad.max()) == 9 and int(grad[15, 15]) == 1
    assert int(grad[grad != 0].min()) == 1


def test_dilation_exercise():
    assert [_footprint((1, 2, 4, 8, 16)[:n], size=71)[0] for n in range(1, 6)] == [
        3, 7, 15, 31, 63]
    assert _footprint((1, 2, 4, 8, 16), size=71) == (63, 63 * 63)
    extent, pixels = _footprint((4, 4, 4, 4), size=41)
    assert extent == 33 and pixels == 9 * 9  # one pixel in every 4x4 block


# --------------------------------------------------------------------------- ASPP


def test_aspp_counts_from_torchvision():
    aspp = TorchvisionASPP(256, [6, 12, 18], out_channels=256)
    assert n_params(aspp) == 2_231_296
    assert aspp.project[0].in_channels == 1280
    assert aspp.project[0].weight.numel() == 1280 * 256 == 327_680
    dilated = sum(n_params(aspp.convs[i]) for i in (1, 2, 3))
    assert round(100 * dilated / n_params(aspp)) == 79
    out = aspp.eval()(torch.zeros(1, 256, 33, 33))
    assert out.shape == (1, 256, 33, 33)
    assert (513 - 1) // 16 + 1 == 33  # output stride 16


def test_aspp_taps_inside_the_map():
    def inside(rate, size=33):
        offsets = [o for o in (-rate, 0, rate)]
        counts = torch.zeros(size, size)
        for i in range(size):
            for j in range(size):
                counts[i, j] = sum(0 <= i + a < size and 0 <= j + b < size
                                   for a in offsets for b in offsets)
        return counts

    assert [int(inside(r)[16, 16]) for r in (6, 12, 18)] == [9, 9, 1]
    assert f"{100 * inside(18).mean().item() / 9:.1f}" == "40.5"


def test_aspp_exercise_channel_counts():
    for rates, channels, weights in (([6, 12, 18], 1280, 327_680),
                                     ([6, 12, 18, 24], 1536, 393_216)):
        aspp = TorchvisionASPP(2048, rates, out_channels=256)
        assert aspp.project[0].in_channels == channels
        assert aspp.project[0].weight.numel() == weights
        assert n_params(aspp.project[1]) == 512


# --------------------------------------------------------------------- transposed


def test_checkerboard_values():
    constant = torch.ones(1, 1, 8, 8)
    k3 = F.conv_transpose2d(constant, torch.ones(1, 1, 3, 3), stride=2, padding=1,
                            output_padding=1)[0, 0]
    k4 = F.conv_transpose2d(constant, torch.ones(1, 1, 4, 4), stride=2,
                            padding=1)[0, 0]
    assert k3.shape == k4.shape == (16, 16)
    assert k3[2:-2, 2:-2].unique().tolist() == [1.0, 2.0, 4.0]
    assert k4[1:-1, 1:-1].unique().tolist() == [4.0]
    assert k4[0].min() < 4  # only the border is lower
    resized = F.interpolate(constant, scale_factor=2, mode="nearest")
    smooth = F.conv2d(F.pad(resized, (1, 1, 1, 1), mode="replicate"),
                      torch.ones(1, 1, 3, 3))
    assert smooth.unique().tolist() == [9.0]


def test_transposed_convolution_by_zero_insertion():
    torch.manual_seed(0)
    for n, k, s, p in ((5, 3, 2, 1), (4, 4, 2, 1), (6, 3, 3, 0), (5, 5, 1, 2)):
        x = torch.randn(2, 4, n, n, dtype=torch.float64)
        w = torch.randn(4, 3, k, k, dtype=torch.float64)  # (C_in, C_out, k, k)
        spread = torch.zeros(2, 4, (n - 1) * s + 1, (n - 1) * s + 1, dtype=torch.float64)
        spread[:, :, ::s, ::s] = x
        ours = F.conv2d(spread, w.flip(2, 3).transpose(0, 1), padding=k - 1 - p)
        reference = F.conv_transpose2d(x, w, stride=s, padding=p)
        assert ours.shape == reference.shape
        assert ours.shape[-1] == ((n - 1) * s + 1) + 2 * (k - 1 - p) - (k - 1)
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


def test_gridding_ways_table_and_the_two_parities():
    """The printed table 1 1 2 1 3 2 3 1 3 2 3 1 2 1 1 for offsets −7…7; odd offsets
    have 1 to 3 ways, even ones 1 or 2; dilations 2, 2, 2 never reach odd offsets."""
    ways = {u: 0 for u in range(-7, 8)}
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            for c in (-1, 0, 1):
                ways[a + 2 * b + 4 * c] += 1
    assert [ways[u] for u in range(-7, 8)] == [1, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 1, 2, 1, 1]
    assert {ways[u] for u in range(-7, 8) if u % 2} == {1, 2, 3}
    assert {ways[u] for u in range(-7, 8) if u % 2 == 0} == {1, 2}
    assert ways[1] * ways[3] == 9 and ways[0] ** 2 == 1
    reachable = {2 * (a + b + c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)}
    assert all(u % 2 == 0 for u in reachable) and len(reachable) == 7  # 7 × 7 = 49 pixels


def test_zero_insertion_figure_and_stride_3_exercise():
    """The figure: 1…9 spread with one zero, padded by 1, all-ones 3×3: first output 1,
    5×5 output; the exercise: 4×4 map, k = 4, s = 3, p = 1 gives 11 = 14 − 3."""
    x = torch.arange(1.0, 10.0, dtype=torch.float64).view(1, 1, 3, 3)
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    out = F.conv_transpose2d(x, ones, stride=2, padding=1)[0, 0]
    assert out.shape == (5, 5) and out[0, 0] == 1 and out[0, 1] == 1 + 2
    assert (3 - 1) * 2 - 2 + 3 == 5 and 2 * 2 + 1 + 2 * (3 - 1 - 1) == 7
    assert (4 - 1) * 3 - 2 * 1 + 4 == 11
    assert 3 * 3 + 1 == 10 and 10 + 2 * (4 - 1 - 1) == 14 and 14 - 3 == 11
    y = F.conv_transpose2d(torch.zeros(1, 2, 4, 4), torch.zeros(2, 3, 4, 4), stride=3,
                           padding=1)
    assert tuple(y.shape) == (1, 3, 11, 11)


def test_transposed_exercise_sizes():
    x = torch.zeros(1, 1, 14, 14)
    down = nn.Conv2d(1, 1, 3, stride=2, padding=1)
    assert down(x).shape[-1] == down(torch.zeros(1, 1, 13, 13)).shape[-1] == 7
    y = torch.zeros(1, 1, 7, 7)
    assert nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1)(y).shape[-1] == 13
    up = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1)
    assert up(y).shape[-1] == 14


def test_transposed_summary_costs_16_over_9():
    up = nn.ConvTranspose2d(64, 128, 4, stride=2, padding=1)
    assert up(torch.zeros(1, 64, 56, 56)).shape[-2:] == (112, 112)
    ratio = macs(up, SHAPE) / macs(standard(64, 128), SHAPE)
    assert ratio == pytest.approx(16 / 9)


def test_summary_table_ordering():
    dilated = nn.Conv2d(64, 128, 3, padding=2, dilation=2)
    assert n_params(dilated) == n_params(standard(64, 128))
    assert macs(dilated, SHAPE) == macs(standard(64, 128), SHAPE)
    aspp = TorchvisionASPP(64, [6, 12, 18], out_channels=128)
    others = [standard(64, 128), nn.ConvTranspose2d(64, 128, 4, stride=2, padding=1),
              separable(64, 128), nn.Conv2d(64, 128, 3, padding=1, groups=32)]
    assert macs(aspp, SHAPE) > max(macs(m, SHAPE) for m in others)


# ---------------------------------------------------------------------- exercises


def test_predict_separable_exercise():
    sep = separable(128, 256, batch_norm=True)
    std = standard(128, 256, batch_norm=True)
    assert n_params(sep) == 34_688 and n_params(std) == 295_424
    assert 128 * 9 == 1152 and 256 * 128 == 32_768 and 256 * 128 * 9 == 294_912
    assert f"{n_params(sep) / n_params(std):.4f}" == "0.1174"
    assert f"{1 / 256 + 1 / 9:.4f}" == "0.1150"


def test_luma_coefficients_sum_to_one():
    assert math.isclose(0.299 + 0.587 + 0.114, 1.0)


def test_red_exceeds_blue_on_most_of_the_photo():
    from utils import data

    photo = data.sample_image("chelsea", size=160).double()
    assert float((photo[0] > photo[2]).double().mean()) > 0.5
