"""utils.fusion: Conv-BN fusion against the unfused layers in eval mode and against
PyTorch's own ``fuse_conv_bn_eval``."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from utils import fusion


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ Conv-BN fusion


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_fuse_conv_bn_matches_eval_mode(bias, groups, affine):
    torch.manual_seed(7)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=groups,
                     bias=bias)
    bn = nn.BatchNorm2d(6, affine=affine, eps=1e-3)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        if affine:
            bn.weight.uniform_(-2, 2)
            bn.bias.uniform_(-1, 1)
    reference = nn.Sequential(conv, bn).eval()
    fused = fusion.fuse_conv_bn(conv, bn)
    assert isinstance(fused, nn.Conv2d) and fused.bias is not None
    for attr in ("stride", "padding", "dilation", "groups", "kernel_size"):
        assert getattr(fused, attr) == getattr(conv, attr)
    x = torch.randn(3, 4, 11, 9)
    with torch.no_grad():
        _close(fused(x), reference(x))
        pytorch = fuse_conv_bn_eval(conv.eval(), bn.eval())
        _close(fused.weight, pytorch.weight)
        _close(fused.bias, pytorch.bias)


def test_fuse_conv_bn_after_training_statistics():
    torch.manual_seed(8)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
    model = nn.Sequential(conv, bn)
    for _ in range(5):
        model(torch.randn(8, 3, 6, 6) * 3 + 1)      # updates running statistics
    model.eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        _close(fusion.fuse_conv_bn(conv, bn)(x), model(x))


def test_fuse_conv_bn_does_not_change_its_inputs():
    conv, bn = nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3)
    before = copy.deepcopy((conv.state_dict(), bn.state_dict()))
    fusion.fuse_conv_bn(conv, bn)
    for old, new in zip(before, (conv.state_dict(), bn.state_dict()), strict=True):
        for key in old:
            assert torch.equal(old[key], new[key])
    assert conv.bias is None


def test_fuse_conv_bn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channel mismatch: conv has 4 output "
                                         "channels but bn normalises 5"):
        fusion.fuse_conv_bn(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(5))
    with pytest.raises(TypeError, match="conv must be an nn.Conv2d, got Linear"):
        fusion.fuse_conv_bn(nn.Linear(2, 4), nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match="bn must be an nn.BatchNorm2d, got "
                                        "BatchNorm1d"):
        fusion.fuse_conv_bn(nn.Conv2d(2, 4, 3), nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="no running statistics"):
        fusion.fuse_conv_bn(nn.Conv2d(2, 4, 3),
                       nn.BatchNorm2d(4, track_running_stats=False))
