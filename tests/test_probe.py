"""utils.probe: the CIFAR split, the linear probe (against SciPy's optimiser), the
VGG16 classifier's shape and layers, and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from utils import models, probe


def test_split_is_disjoint_complete_and_seeded():
    train_index, held_out = probe.cifar_probe_split(seed=0)
    assert (len(train_index), len(held_out)) == (1000, 398)
    assert len(set(train_index.tolist()) | set(held_out.tolist())) == 1398
    again = probe.cifar_probe_split(seed=0)
    assert torch.equal(again[0], train_index)
    assert not torch.equal(probe.cifar_probe_split(seed=1)[0], train_index)


def test_probe_images_are_normalised_and_resized():
    images, labels = probe.cifar_probe_images(size=48)
    assert images.shape == (1398, 3, 48, 48) and images.dtype == torch.float32
    assert labels.shape == (1398,)
    black = (0 - torch.tensor(models.IMAGENET_MEAN)) / torch.tensor(models.IMAGENET_STD)
    assert torch.all(images.amin((0, 2, 3)) >= black - 1e-5)
    with pytest.raises(ValueError, match="size"):
        probe.cifar_probe_images(size=16)


def softmax_regression_scipy(features, labels, classes, weight_decay):
    """The same objective minimised by SciPy's L-BFGS-B: an independent fit. Returns
    a function from raw features to logits."""
    x = features.double().numpy()
    mean, std = x.mean(0), x.std(0, ddof=1).clip(1e-8)
    z = (x - mean) / std
    n, d = z.shape
    onehot = np.eye(classes)[labels.numpy()]

    def objective(theta):
        w, b = theta[: classes * d].reshape(classes, d), theta[classes * d:]
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        loss = -(onehot * log_p).sum() / n + weight_decay * (w**2).sum()
        p = np.exp(log_p)
        grad_logits = (p - onehot) / n
        grad_w = grad_logits.T @ z + 2 * weight_decay * w
        return loss, np.concatenate([grad_w.ravel(), grad_logits.sum(0)])

    result = scipy.optimize.minimize(objective, np.zeros(classes * (d + 1)), jac=True,
                                     method="L-BFGS-B", options={"maxiter": 500})
    w, b = result.x[: classes * d].reshape(classes, d), result.x[classes * d:]

    def predict(raw: torch.Tensor) -> np.ndarray:
        return ((raw.double().numpy() - mean) / std) @ w.T + b

    return predict


def test_linear_probe_matches_an_independent_fit():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=generator) * 3
    labels = torch.arange(200) % 4
    features = centres[labels] + torch.randn(200, 6, generator=generator)
    head = probe.fit_linear_probe(features, labels, classes=4, weight_decay=0.01)
    assert isinstance(head, nn.Linear) and head.weight.dtype == torch.float32
    with torch.no_grad():
        ours = head(features).double()
    scipy_logits = softmax_regression_scipy(features, labels, 4, 0.01)(features)
    assert np.array_equal(ours.argmax(1).numpy(), scipy_logits.argmax(1))
    np.testing.assert_allclose(ours.numpy(), scipy_logits, atol=2e-3)


def test_weight_decay_shrinks_the_probe_and_bad_input_is_refused():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(60, 5, generator=generator)
    labels = torch.arange(60) % 3
    loose = probe.fit_linear_probe(features, labels, classes=3, weight_decay=1e-4)
    tight = probe.fit_linear_probe(features, labels, classes=3, weight_decay=1.0)
    assert tight.weight.norm() < loose.weight.norm()
    with pytest.raises(ValueError, match="features"):
        probe.fit_linear_probe(features[0], labels)
    with pytest.raises(ValueError, match="labels"):
        probe.fit_linear_probe(features, labels[:10])
    with pytest.raises(ValueError, match="weight_decay"):
        probe.fit_linear_probe(features, labels, weight_decay=-1)


def test_vgg16_classifier_shapes_and_layers():
    torch.manual_seed(0)
    head = nn.Linear(512, 10)
    classifier = probe.VGG16Classifier(models.vgg16_features(pretrained=False), head)
    assert len(classifier.features) == probe.PROBE_LAYER
    assert models.VGG16_LAYERS[str(probe.PROBE_LAYER - 1)] == "relu5_3"
    assert not any(m.inplace for m in classifier.features if isinstance(m, nn.ReLU))
    with torch.no_grad():
        assert classifier(torch.zeros(2, 3, 48, 48)).shape == (2, 10)
        gap = probe.gap_features(classifier.features, torch.zeros(2, 3, 48, 48))
        torch.testing.assert_close(head(gap), classifier(torch.zeros(2, 3, 48, 48)))
    with pytest.raises(TypeError, match="512"):
        probe.VGG16Classifier(models.vgg16_features(pretrained=False), nn.Linear(10, 2))


def test_feature_cache_is_written_reused_and_rebuilt(tmp_path, monkeypatch):
    calls = []

    def fake_features(features, images, batch_size=100):
        calls.append(len(images))
        return torch.arange(len(images) * 512, dtype=torch.float32).view(-1, 512)

    monkeypatch.setattr(probe, "gap_features", fake_features)
    monkeypatch.setattr(probe, "vgg16_features", lambda pretrained: nn.Sequential())
    monkeypatch.setattr(probe, "cifar_probe_images",
                        lambda size: (torch.zeros(1398, 3, 1, 1), None))
    path = tmp_path / "features.pt"
    first, labels = probe.probe_features(True, path=path)
    second, _ = probe.probe_features(True, path=path)
    assert calls == [1398] and torch.equal(first, second) and labels.shape == (1398,)
    path.write_bytes(b"not a tensor file")
    third, _ = probe.probe_features(True, path=path)
    assert calls == [1398, 1398] and torch.equal(third, first)
    with pytest.raises(TypeError, match="pretrained"):
        probe.probe_features("yes", path=path)


def test_random_vgg16_has_torchvisions_variance_and_is_seeded():
    first, again = probe.random_vgg16_features(0), probe.random_vgg16_features(0)
    other = probe.random_vgg16_features(1)
    conv = first[28]
    fan_out = conv.weight.shape[0] * 9
    assert abs(float(conv.weight.detach().double().var()) * fan_out / 2 - 1) < 0.02
    assert float(conv.bias.detach().abs().max()) == 0.0
    assert torch.equal(first[0].weight, again[0].weight)
    assert not torch.equal(first[0].weight, other[0].weight)
