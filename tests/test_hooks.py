"""utils.hooks.capture_activations: outputs, detaching, and hook removal."""

import pytest
import torch
from torch import nn

from utils.hooks import capture_activations


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Sequential(nn.Conv2d(4, 2, 3), nn.ReLU()))


def hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_captures_detached_outputs_equal_to_manual_forward():
    net = small_net()
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    with capture_activations(net, ["0", "2", "3.0"]) as acts:
        out = net(x)
    torch.testing.assert_close(acts["0"], net[0](x))
    torch.testing.assert_close(acts["2"], net[2](net[1](net[0](x))))
    torch.testing.assert_close(acts["3.0"].shape, torch.Size([2, 2, 2, 2]))
    assert out.requires_grad
    assert all(not a.requires_grad and a.grad_fn is None for a in acts.values())


def test_hooks_are_removed_on_exit_and_on_exception():
    net = small_net()
    with capture_activations(net, "0"):
        assert hook_count(net) == 1
    assert hook_count(net) == 0
    with pytest.raises(RuntimeError, match="boom"), capture_activations(net, ["0", "1"]):
        assert hook_count(net) == 2
        raise RuntimeError("boom")
    assert hook_count(net) == 0


def test_last_forward_pass_wins():
    net = small_net()
    with capture_activations(net, "0") as acts:
        net(torch.zeros(1, 1, 8, 8))
        second = torch.ones(1, 1, 8, 8)
        net(second)
    torch.testing.assert_close(acts["0"], net[0](second).detach())


def test_unknown_layer_name_fails_before_any_hook():
    net = small_net()
    with pytest.raises(KeyError, match="unknown layer name"), \
            capture_activations(net, ["0", "conv9"]):
        pass
    assert hook_count(net) == 0


@pytest.mark.parametrize(
    "model, names, error",
    [("not a model", ["0"], TypeError), (nn.Linear(2, 2), [], ValueError)],
)
def test_bad_arguments(model, names, error):
    with pytest.raises(error), capture_activations(model, names):
        pass


def test_capture_survives_a_following_inplace_relu():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True))
    x = torch.randn(1, 1, 6, 6)
    with capture_activations(net, "0") as acts:
        net(x)
    expected = net[0](x).detach()
    assert (expected < 0).any()  # the ReLU would have zeroed these in a shared view
    torch.testing.assert_close(acts["0"], expected)
