"""utils.attribution: each method against Captum (an independent implementation), the
promises of the methods (completeness, exactness on linear models), that every method
leaves the model as it found it, clear errors, and the evaluations (deletion curves,
Spearman against SciPy, cascading randomisation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from utils import attribution


class SmallNet(nn.Module):
    """Two conv blocks with ReLU modules and a linear head: (N, 2, 12, 12) -> 5."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.head = nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        return self.head(self.relu2(self.conv2(x)).flatten(1))


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SmallNet().double().eval()


def inputs(seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 2, 12, 12, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def captum(method: str, model, x, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if method == "saliency":
            return Saliency(model).attribute(x, target=target, abs=True)
        if method == "guided_backprop":
            return GuidedBackprop(model).attribute(x, target=target)
        if method in ("grad_cam", "grad_cam_rectified"):
            layer = model.conv2 if method == "grad_cam" else model.relu2
            return LayerGradCam(model, layer).attribute(
                x, target=target, relu_attributions=True)[:, 0].detach()
        if method == "occlusion":
            return Occlusion(model).attribute(
                x, target=target, sliding_window_shapes=(x.shape[1], 4, 4),
                strides=(1, 3, 3), baselines=kwargs.get("fill", 0.0)).double()
        return IntegratedGradients(model).attribute(
            x, target=target, n_steps=kwargs["steps"], method="riemann_right")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_methods_equal_captum(seed):
    model, x = small_net(seed), inputs(seed)
    target = torch.tensor([0, 3, 4])
    pairs = {
        "saliency": attribution.saliency(model, x, target),
        "guided_backprop": attribution.guided_backprop(model, x, target),
        "grad_cam": attribution.grad_cam(model, "conv2", x, target),
        "grad_cam_rectified": attribution.grad_cam(model, "relu2", x, target),
        "occlusion": attribution.occlusion(model, x, target, window=4, stride=3,
                                           fill=0.25),
        "integrated_gradients": attribution.integrated_gradients(model, x, target,
                                                                 steps=12),
    }
    for method, ours in pairs.items():
        theirs = captum(method, model, x, target, steps=12, fill=0.25)
        # Captum computes the path's alphas in float32 (torch.linspace), hence IG's
        # looser tolerance, and divides occlusion's sums in float32; the other
        # methods agree to the last bits
        tolerance = {"integrated_gradients": (1e-6, 1e-9),
                     "occlusion": (1e-6, 1e-7)}.get(method, (1e-10, 1e-12))
        torch.testing.assert_close(ours, theirs, rtol=tolerance[0], atol=tolerance[1],
                                   msg=method)


def test_smoothgrad_is_the_mean_saliency_of_the_same_noisy_copies():
    model, x = small_net(), inputs()
    ours = attribution.smoothgrad(model, x, 2, samples=5, noise=0.2,
                                  generator=torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    copies = [x + 0.2 * span * torch.randn(x.shape, generator=generator,
                                           dtype=torch.float64) for _ in range(5)]
    reference = sum(captum("saliency", model, c, 2) for c in copies) / 5
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    # no noise: SmoothGrad is saliency; the default generator is seeded (repeatable)
    without_noise = attribution.smoothgrad(model, x, 2, samples=3, noise=0.0)
    torch.testing.assert_close(without_noise, attribution.saliency(model, x, 2))
    assert torch.equal(attribution.smoothgrad(model, x, 2, samples=2),
                       attribution.smoothgrad(model, x, 2, samples=2))


def test_integrated_gradients_is_exact_on_a_linear_model_and_complete():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(2 * 12 * 12, 4)).double()
    x, baseline = inputs(3), inputs(4)
    ig = attribution.integrated_gradients(linear, x, 1, baseline=baseline, steps=3)
    expected = (x - baseline) * linear[1].weight[1].view(1, 2, 12, 12)
    torch.testing.assert_close(ig, expected.detach())
    model = small_net()
    with torch.no_grad():
        gap = (attribution.class_scores(model, x, torch.full((3,), 2))
               - attribution.class_scores(model, baseline, torch.full((3,), 2)))
    errors = []
    for steps in (8, 64, 512):
        ig = attribution.integrated_gradients(model, x, 2, baseline=baseline,
                                              steps=steps, batch_size=50)
        errors.append(float(((ig.flatten(1).sum(1) - gap).abs() / gap.abs()).max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01, errors


def test_grad_cam_formula_on_a_known_layer():
    # With a linear head on the global mean of conv2, the gradient of class c with
    # respect to A^k is w_ck / (h·w) everywhere, so Grad-CAM = ReLU(Σ_k w_ck A^k)/(hw).
    conv = nn.Conv2d(2, 4, 3, padding=1).double()
    head = nn.Linear(4, 3).double()
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = inputs()
    cam = attribution.grad_cam(model, conv, x, 1)
    with torch.no_grad():
        maps = conv(x)
        expected = torch.relu((head.weight[1].view(1, 4, 1, 1) * maps).sum(1)) / 144
    torch.testing.assert_close(cam, expected)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "guided_backprop",
                                    "grad_cam", "integrated_gradients", "occlusion"])
def test_methods_leave_the_model_as_they_found_it(method):
    model = small_net().train()
    model.conv1.weight.requires_grad_(False)
    model.head.bias.grad = torch.ones_like(model.head.bias)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    function = getattr(attribution, method)
    args = (model, inputs(), 1)
    if method == "grad_cam":
        args = (model, "conv2", inputs(), 1)
    function(*args)
    assert model.training
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert torch.equal(model.head.bias.grad, torch.ones_like(model.head.bias))
    assert all(p.grad is None for name, p in model.named_parameters()
               if name != "head.bias")
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_hooks_are_removed_after_an_error():
    model = small_net()
    with pytest.raises(ValueError, match="is not a class"):
        attribution.guided_backprop(model, inputs(), 9)
    with pytest.raises(ValueError, match="is not a class"):
        attribution.grad_cam(model, "conv2", inputs(), 9)
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x: attribution.saliency(m, x[0], 1), ValueError, r"\(N, C, H, W\)"),
    (lambda m, x: attribution.saliency(m, x.float(), 1), TypeError, "dtype"),
    (lambda m, x: attribution.saliency(m, x.long(), 1), TypeError, "floating-point"),
    (lambda m, x: attribution.saliency(m, x, -1), ValueError, ">= 0"),
    (lambda m, x: attribution.saliency(m, x, True), TypeError, "bool"),
    (lambda m, x: attribution.saliency(m, x, torch.tensor([1.0, 2.0, 3.0])), TypeError,
     "integers"),
    (lambda m, x: attribution.saliency(m, x, torch.tensor([1, 2])), ValueError,
     "one per image"),
    (lambda m, x: attribution.saliency("model", x, 1), TypeError, "nn.Module"),
    (lambda m, x: attribution.saliency(m, x * float("nan"), 1), ValueError, "NaN"),
    (lambda m, x: attribution.smoothgrad(m, x, 1, samples=0), ValueError, "samples"),
    (lambda m, x: attribution.smoothgrad(m, x, 1, noise=-1), ValueError, "noise"),
    (lambda m, x: attribution.smoothgrad(m, x, 1, generator=0), TypeError, "Generator"),
    (lambda m, x: attribution.grad_cam(m, "conv9", x, 1), KeyError, "no layer"),
    (lambda m, x: attribution.grad_cam(m, nn.Conv2d(1, 1, 1), x, 1), ValueError,
     "not a module of model"),
    (lambda m, x: attribution.grad_cam(m, "head", x, 1), ValueError, "feature maps"),
    (lambda m, x: attribution.integrated_gradients(m, x, 1, baseline=x[:1]),
     ValueError, "baseline"),
    (lambda m, x: attribution.integrated_gradients(m, x, 1, steps=0), ValueError,
     "steps"),
    (lambda m, x: attribution.occlusion(m, x, 1, window=13), ValueError, "larger than "
     "the image"),
    (lambda m, x: attribution.occlusion(m, x, 1, window=2, stride=3), ValueError,
     "never be occluded"),
    (lambda m, x: attribution.occlusion(m, x, 1, fill=x[:, :, :3]), ValueError,
     "broadcast"),
    (lambda m, x: attribution.occlusion(m, x, 1, fill="grey"), TypeError, "number"),
    (lambda m, x: attribution.deletion_curve(m, x, 1, x[:, 0] * float("nan")),
     ValueError, "NaN"),
    (lambda m, x: attribution.insertion_curve(m, x, 1, x[:2, 0]), ValueError,
     "importance"),
])
def test_bad_arguments_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(small_net(), inputs())


def test_guided_backprop_needs_relu_modules():
    model = nn.Sequential(nn.Flatten(), nn.Linear(288, 2)).double()
    with pytest.raises(ValueError, match="nn.ReLU"):
        attribution.guided_backprop(model, inputs(), 0)


class LeftHalf(nn.Module):
    """score of class 0 = +sum of the left half of the image; class 1 scores 0."""

    def forward(self, x):
        left = x[..., :6].sum((1, 2, 3))
        return torch.stack([left, torch.zeros_like(left)], dim=1)


def test_deletion_curve_deletes_in_order_and_ends_at_the_fill():
    # deleting by the left half's values removes the class fastest, a reversed order
    # slowest; every image of the curve is checked against a direct computation.
    x = inputs().abs()
    importance = torch.zeros(3, 12, 12, dtype=torch.float64)
    importance[..., :6] = x.sum(1)[..., :6]
    model = LeftHalf()
    fast = attribution.deletion_curve(model, x, 0, importance, steps=6)
    slow = attribution.deletion_curve(model, x, 0, -importance, steps=6)
    assert fast.shape == (3, 7)
    order = attribution.pixel_order(importance)
    for step in range(7):
        deleted = x.flatten(2).clone()
        deleted[torch.arange(3)[:, None], :, order[:, :round(step * 144 / 6)]] = 0.0
        with torch.no_grad():
            expected = torch.softmax(model(deleted.view_as(x)), 1)[:, 0]
        torch.testing.assert_close(fast[:, step], expected)
    torch.testing.assert_close(fast[:, -1], torch.full((3,), 0.5, dtype=torch.float64))
    assert (attribution.deletion_auc(fast) < attribution.deletion_auc(slow)).all()
    assert torch.all(fast[:, 1:] <= fast[:, :-1] + 1e-12)
    constant = torch.full((2, 5), 0.3)
    torch.testing.assert_close(attribution.deletion_auc(constant),
                               torch.full((2,), 0.3))
    with pytest.raises(ValueError, match="importance"):
        attribution.deletion_curve(model, x, 0, importance[:, :5])
    # batching does not change the curve
    torch.testing.assert_close(attribution.deletion_curve(model, x, 0, importance,
                                                          steps=6, batch_size=5), fast)


def test_insertion_mirrors_deletion_and_starts_from_the_given_image():
    x = inputs().abs()
    importance = x.sum(1)
    model = LeftHalf()
    start = torch.full_like(x, 0.1)
    inserted = attribution.insertion_curve(model, x, 0, importance, steps=4,
                                           start=start)
    with torch.no_grad():
        first = torch.softmax(model(start), 1)[:, 0]
        last = torch.softmax(model(x), 1)[:, 0]
    torch.testing.assert_close(inserted[:, 0], first)
    torch.testing.assert_close(inserted[:, -1], last)
    # inserting the k most important pixels = deleting the others, with fill = start
    deleted_rest = attribution.deletion_curve(model, x, 0, -importance, steps=4,
                                              fill=start)
    ranks_tied = attribution.is_constant(importance).any()
    assert not ranks_tied
    torch.testing.assert_close(inserted, deleted_rest.flip(1))
    assert (attribution.insertion_auc(inserted)
            > attribution.insertion_auc(attribution.insertion_curve(
                model, x, 0, -importance, steps=4, start=start))).all()


def test_constant_maps_are_reported_not_scored():
    model, x = LeftHalf(), inputs().abs()
    importance = x.sum(1)
    importance[1] = 0.0  # an all-zero Grad-CAM, say
    importance[2] = 7.5  # constant but not zero
    assert attribution.is_constant(importance).tolist() == [False, True, True]
    assert attribution.is_constant(importance[:, None]).tolist() == [False, True, True]
    for curve in (attribution.deletion_curve(model, x, 0, importance, steps=3),
                  attribution.insertion_curve(model, x, 0, importance, steps=3)):
        assert torch.isfinite(curve[0]).all() and torch.isnan(curve[1:]).all()
    assert np.isnan(attribution.spearman(importance[1], importance[0]))
    masks = torch.zeros(3, 12, 12, dtype=torch.bool)
    masks[..., :6] = True
    for rule in ("peak", "mass"):
        hits = attribution.pointing(importance, masks, rule)
        assert not torch.isnan(hits[0]) and torch.isnan(hits[1:]).all()


def test_ties_are_ranked_in_a_seeded_random_order_not_in_raster_order():
    importance = torch.zeros(4, 10, 10, dtype=torch.float64)
    importance[:, 5:, 5:] = 1.0  # 25 tied top pixels, 75 tied others
    order = attribution.pixel_order(importance, seed=0)
    top = set(range(55, 60)) | set(range(65, 70)) | set(range(75, 80)) \
        | set(range(85, 90)) | set(range(95, 100))
    for row in order:
        assert set(row[:25].tolist()) == top  # the important pixels come first
        assert row[:25].tolist() != sorted(row[:25].tolist())  # not raster order
    assert torch.equal(order, attribution.pixel_order(importance, seed=0))
    assert not torch.equal(order, attribution.pixel_order(importance, seed=1))
    assert not torch.equal(order[0], order[1])  # each image its own shuffle
    # values closer than 1/RANK_LEVELS of the range count as tied
    nearly = torch.linspace(0, 1, 100, dtype=torch.float64).view(1, 10, 10)
    nearly = nearly + 1e-9 * torch.rand(1, 10, 10, dtype=torch.float64)
    assert attribution.pixel_order(nearly)[0, 0] == 99


def test_pointing_peak_and_mass_rules():
    maps = torch.zeros(2, 4, 6, dtype=torch.float64)
    maps[0, 1, 1] = 3.0  # peak on the left
    maps[0, :, 3:] = 0.5  # but more mass on the right (0.5·12 = 6 > 3)
    maps[1, 2, 4] = -9.0  # mass counts |values|
    maps[1, 0, 0] = 1.0
    left = torch.zeros(2, 4, 6, dtype=torch.bool)
    left[..., :3] = True
    assert attribution.pointing(maps, left, "peak").tolist() == [1.0, 1.0]
    assert attribution.pointing(maps, left, "mass").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="rule"):
        attribution.pointing(maps, left, "centre")
    with pytest.raises(ValueError, match="bool"):
        attribution.pointing(maps, left.double(), "peak")


def test_bootstrap_interval_matches_scipy():
    values = torch.randn(40, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64) + 2.0
    mean, low, high = attribution.bootstrap_interval(values, resamples=20000)
    reference = scipy.stats.bootstrap((values.numpy(),), np.mean, n_resamples=20000,
                                      method="percentile", random_state=0)
    assert mean == pytest.approx(float(values.mean()))
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.02)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.02)
    assert low < mean < high
    with pytest.raises(ValueError, match="NaN"):
        attribution.bootstrap_interval([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        attribution.bootstrap_interval([1.0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=3, max_size=30),
       st.integers(0, 2**16))
def test_spearman_equals_scipy_with_ties(values, seed):
    a = torch.tensor(values, dtype=torch.float64)
    b = torch.randn(len(values), generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    ours = attribution.spearman(a, b)
    if float(a.std()) == 0:
        assert np.isnan(ours)  # a constant map is reported, not scored
    else:
        assert ours == pytest.approx(scipy.stats.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_rejects_mismatched_maps():
    with pytest.raises(ValueError, match="same shape"):
        attribution.spearman(torch.zeros(3), torch.zeros(4))
    with pytest.raises(TypeError):
        attribution.spearman([1, 2], [2, 1])


def test_cascading_randomisation_is_cumulative_and_seeded():
    model = small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = ["head", "conv2", "conv1"]
    copies = list(attribution.cascading_randomisation(model, layers))
    assert [name for name, _ in copies] == ["head", "conv2", "conv1"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    for k, (_, network) in enumerate(copies):
        for j, name in enumerate(["head", "conv2", "conv1"]):
            changed = not torch.equal(getattr(network, name).weight,
                                      before[f"{name}.weight"])
            assert changed == (j <= k), (k, name)
    head = copies[-1][1].head
    assert torch.equal(head.bias, torch.zeros_like(head.bias))
    ratio = float(head.weight.detach().std() / before["head.weight"].std())
    assert 0.9 < ratio < 1.1
    again = list(attribution.cascading_randomisation(model, ["head"], seed=0))
    assert torch.equal(again[0][1].head.weight, copies[0][1].head.weight)
    other = list(attribution.cascading_randomisation(model, ["head"], seed=1))
    assert not torch.equal(other[0][1].head.weight, copies[0][1].head.weight)
    with pytest.raises(KeyError, match="unknown"):
        list(attribution.cascading_randomisation(model, ["fc"]))
    with pytest.raises(ValueError, match="empty"):
        list(attribution.cascading_randomisation(model, []))
    with pytest.raises(ValueError, match="no weight"):
        list(attribution.cascading_randomisation(model, ["relu1"]))


def test_upsample_map_shape():
    assert attribution.upsample_map(torch.rand(2, 3, 3), (12, 12)).shape == (2, 12, 12)
    with pytest.raises(ValueError):
        attribution.upsample_map(torch.rand(3, 3), (12, 12))


def test_randomised_maps_keep_their_sanity_check_order():
    """The sanity check's finding on a small trained-like network: after the head is
    randomised, Guided Backprop's map stays more correlated with the original than
    the saliency map (it hardly depends on the top layer)."""
    model, x = small_net(3), inputs(5, n=4)
    target = torch.zeros(4, dtype=torch.long)
    (_, randomised), = list(attribution.cascading_randomisation(model, ["head"]))

    def mean_rho(function):
        a, b = function(model, x, target), function(randomised, x, target)
        return np.mean([attribution.spearman(a[i].abs(), b[i].abs()) for i in range(4)])

    assert mean_rho(attribution.guided_backprop) > mean_rho(attribution.saliency)
