"""utils.models: TinyCNN shapes, VGG16 features layout, weights and their checks."""

import io
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from utils import models, repro, weights


def test_tinycnn_architecture_and_parameter_count():
    net = models.TinyCNN()
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    expected = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 7 * 7 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == expected == 20490
    assert models.TinyCNN(kernel_size=5).conv1.weight.shape == (16, 1, 5, 5)
    assert models.TinyCNN(kernel_size=5)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("kernel_size, error", [(4, ValueError), (0, ValueError),
                                                (3.0, TypeError)])
def test_tinycnn_rejects_bad_kernel_size(kernel_size, error):
    with pytest.raises(error, match="kernel_size"):
        models.TinyCNN(kernel_size=kernel_size)


def test_tinycnn_pooling_before_relu_changes_no_bit():
    # forward pools first; conv -> ReLU -> pool, the textbook order, must give the
    # same outputs and the same gradients, bit for bit, including ties and windows
    # whose values are all negative (where ReLU outputs zeros).
    torch.manual_seed(0)
    net = models.TinyCNN()
    x = torch.randn(16, 1, 28, 28)
    x[:, :, :4] = -1.0  # whole pooling windows below zero
    x[:, :, 10:12, 10:12] = 0.5  # ties inside a window

    def textbook(image):
        h = net.pool1(torch.relu(net.conv1(image)))
        h = net.pool2(torch.relu(net.conv2(h)))
        return net.fc(h.flatten(1))

    outputs, gradients = [], []
    for forward in (net, textbook):
        net.zero_grad()
        image = x.clone().requires_grad_()
        out = forward(image)
        (out * torch.linspace(-1, 1, 10)).sum().backward()
        outputs.append(out.detach())
        gradients.append([image.grad] + [p.grad.clone() for p in net.parameters()])
    assert torch.equal(outputs[0], outputs[1])
    for ours, theirs in zip(*gradients, strict=True):
        assert torch.equal(ours, theirs)


def test_tinycnn_blocks_have_their_own_relu_and_pool_modules():
    # Grad-CAM hooks relu2, the last rectified feature maps; the split adds no
    # parameter, so the state_dict keys (and the cached weights) stay valid.
    net = models.TinyCNN()
    names = [name for name, _ in net.named_children()]
    assert names == ["conv1", "pool1", "relu1", "conv2", "pool2", "relu2", "fc"]
    assert list(net.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight",
                                      "conv2.bias", "fc.weight", "fc.bias"]
    assert net.relu is net.relu1 and net.pool is net.pool1  # names of older code
    captured = {}
    net.relu2.register_forward_hook(lambda m, i, o: captured.setdefault("relu2", o))
    net(torch.randn(3, 1, 28, 28))
    assert captured["relu2"].shape == (3, 32, 7, 7)
    assert bool((captured["relu2"] >= 0).all())


def test_cached_tinycnn_loads_and_computes_what_the_one_module_version_did():
    # The forward of the version with one shared ReLU and one shared pool, written
    # with the functional ops, gives the same logits bit for bit on the cached weights.
    from utils import train

    net = train.load_or_train_tinycnn(progress=False).double()
    state = net.state_dict()
    fresh = models.TinyCNN().double()
    fresh.load_state_dict(state, strict=True)
    images, _ = train.mnist_tensors(train=False)
    x = images[:64].double()

    def before_the_split(image):
        h = F.relu(F.max_pool2d(F.conv2d(image, state["conv1.weight"],
                                         state["conv1.bias"], padding=1), 2))
        h = F.relu(F.max_pool2d(F.conv2d(h, state["conv2.weight"], state["conv2.bias"],
                                         padding=1), 2))
        return F.linear(h.flatten(1), state["fc.weight"], state["fc.bias"])

    with torch.no_grad():
        assert torch.equal(fresh(x), before_the_split(x))
        assert torch.equal(net(x), before_the_split(x))


def test_tinycnn_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(N, C, 28, 28\)"):
        models.TinyCNN()(torch.zeros(1, 1, 32, 32))


def test_vgg16_layer_names_follow_torchvision_layout():
    reference = torchvision.models.vgg16(weights=None).features
    ours = models.vgg16_features(pretrained=False)
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert len(models.VGG16_CONV_INDICES) == 13
    assert models.VGG16_LAYERS["0"] == "conv1_1"
    assert models.VGG16_LAYERS["28"] == "conv5_3"
    assert models.VGG16_LAYERS["30"] == "pool5"
    for index, name in models.VGG16_LAYERS.items():
        kind = type(reference[int(index)]).__name__
        assert {"conv": "Conv2d", "relu": "ReLU", "pool": "MaxPool2d"}[name[:4].rstrip(
            "0123456789_")] == kind


def test_pretrained_vgg16_weights_are_the_imagenet_ones():
    features = models.vgg16_features(pretrained=True)
    state = features.state_dict()
    assert sum(p.numel() for p in features.parameters()) == 14_714_688
    assert repro.state_digest(state) == weights.VGG16_DIGEST
    expected = torch.tensor([[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657],
                             [-0.6902, -0.0480, 0.4841]])
    torch.testing.assert_close(state["0.weight"][0, 0], expected, atol=1e-4, rtol=0)
    assert not features.training


def test_corrupt_cached_weights_are_detected_and_replaced(tmp_path, monkeypatch):
    good = weights.vgg16_state()  # from the real cache, via the pinned digest
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    path = tmp_path / weights.VGG16_FILE
    assert weights._load_cached(path) is None
    damaged = {k: v.clone() for k, v in good.items()}
    damaged["0.bias"][0] += 1.0
    torch.save(damaged, path)
    assert weights._load_cached(path) is None and not path.exists()
    path.write_bytes(b"truncated")
    assert weights._load_cached(path) is None and not path.exists()
    torch.save(good, path)
    assert weights._load_cached(path) is not None


def test_state_digest_changes_with_any_value():
    state = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    changed = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    changed["b"][1, 1] = 1.0000001
    assert repro.state_digest(state) != repro.state_digest(changed)
    assert repro.state_digest(state) == repro.state_digest(dict(reversed(state.items())))


def test_lpips_conversion_layout():
    rng = np.random.default_rng(0)
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    ckpt = {"VGG16_0": {}}
    for i in range(13):
        ckpt["VGG16_0"][f"Conv_{i}"] = {
            "kernel": rng.random((3, 3, channels[i], channels[i + 1]), dtype=np.float32),
            "bias": rng.random(channels[i + 1], dtype=np.float32),
        }
    state = weights._convert_lpips(ckpt)
    kernel = ckpt["VGG16_0"]["Conv_0"]["kernel"]
    np.testing.assert_array_equal(state["0.weight"][5, 2].numpy(), kernel[:, :, 2, 5])
    models.vgg16_features(pretrained=False).load_state_dict(state)


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps({"x": np.arange(3, dtype=np.float32)})
    loaded = weights._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    np.testing.assert_array_equal(loaded["x"], [0, 1, 2])
    evil = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        weights._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


def test_vgg16_features_rejects_bad_argument():
    with pytest.raises(TypeError, match="pretrained must be a bool"):
        models.vgg16_features(pretrained="yes")
    with pytest.raises(ValueError, match="source must be"):
        weights.vgg16_state(source="hub")
