"""Every number that the prose of chapters/06_vgg16_feature_maps.ipynb states,
recomputed here independently (torchvision, NumPy, plain PyTorch), not read from the
notebook."""

import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from utils import arithmetic, data, kernels, models
from utils.models import truncate_after
from utils.vis_optim import (
    activation_maximisation,
    high_frequency_fraction,
    imagenet_normalise,
    preprocess_for_vgg,
)

BLOCK_ENDS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
LUMINANCE = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def vgg():
    features = models.vgg16_features(pretrained=True)
    for layer in features:
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
    return features


@pytest.fixture(scope="module")
def photo_batch():
    photo = data.sample_image("chelsea", size=224)
    return imagenet_normalise(photo)[None]


@pytest.fixture(scope="module")
def layer_outputs(vgg, photo_batch):
    """Every layer's output for the cat, by running the layers one by one (no hooks)."""
    outputs = []
    x = photo_batch
    with torch.no_grad():
        for layer in vgg:
            x = layer(x)
            outputs.append(x)
    return outputs


# ------------------------------------------------------------------ architecture


def test_parameter_counts():
    with torch.device("meta"):
        full = torchvision.models.vgg16(weights=None)
    n_features = sum(p.numel() for p in full.features.parameters())
    n_classifier = sum(p.numel() for p in full.classifier.parameters())
    n_total = sum(p.numel() for p in full.parameters())
    assert n_features == 14_714_688
    course_features = models.vgg16_features(pretrained=False)
    assert sum(p.numel() for p in course_features.parameters()) == n_features
    assert n_classifier == 123_642_856
    assert n_total == 138_357_544 and round(n_total / 1e6) == 138
    assert f"{n_features / n_total:.1%}" == "10.6%"
    assert round(n_features * 4 / 2**20) == 56  # MiB of float32 weights
    # "about a tenth"
    assert 0.09 < n_features / n_total < 0.11


def test_output_shapes_for_224_input():
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
        x = torch.empty(1, 3, 224, 224)
        shapes = []
        for layer in features:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    pools = [shapes[i] for i in (4, 9, 16, 23, 30)]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14),
                     (512, 7, 7)]
    block_ends = [shapes[i] for i in BLOCK_ENDS.values()]
    assert [s[1] for s in block_ends] == [224, 112, 56, 28, 14]
    assert sum(isinstance(m, nn.Conv2d) for m in features) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in features) == 5


def test_layer_geometry_and_classifier():
    features = models.vgg16_features(pretrained=False)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            assert (layer.kernel_size, layer.stride, layer.padding) == (
                (3, 3), (1, 1), (1, 1))
        elif isinstance(layer, nn.MaxPool2d):
            assert (layer.kernel_size, layer.stride) == (2, 2)
        else:
            assert isinstance(layer, nn.ReLU) and layer.inplace
    assert features[0].out_channels == 64 and features[0].in_channels == 3
    assert max(m.out_channels for m in features if isinstance(m, nn.Conv2d)) == 512
    with torch.device("meta"):
        classifier = torchvision.models.vgg16(weights=None).classifier
    linears = [m for m in classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]


def test_receptive_fields():
    features = models.vgg16_features(pretrained=False)
    expected = {"conv1_1": 3, "conv1_2": 5, "pool1": 6, "conv2_2": 14, "pool2": 16,
                "conv3_3": 40, "pool3": 44, "conv4_3": 92, "pool4": 100,
                "conv5_3": 196, "pool5": 212}
    names = {name: int(index) for index, name in models.VGG16_LAYERS.items()}
    table = arithmetic.receptive_field_table(features)
    for name, field in expected.items():
        index = names[name]
        assert arithmetic.measured_receptive_field(features[: index + 1]) == field, name
        assert table[index]["r"] == field, name
    assert arithmetic.receptive_field(features[:22]) == 92  # the exercise
    jumps = [table[i]["jump"] for i in BLOCK_ENDS.values()]
    assert jumps == [1, 2, 4, 8, 16]
    assert table[30]["jump"] == 32


# ------------------------------------------------------------------ conv1_1 filters


def pearson(a, b):
    """Pearson r of two flattened kernels; 0 when one is constant (the box kernel)."""
    a, b = a - a.mean(), b - b.mean()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def best_abs_correlations(rgb_filters, bank):
    """Best |Pearson r| of each luminance-summed filter with the bank (NumPy)."""
    grey = np.einsum("nchw,c->nhw", rgb_filters.numpy().astype(np.float64), LUMINANCE)
    references = [ref.numpy().astype(np.float64).ravel() for ref in bank.values()]
    return np.array([max(abs(pearson(k, ref)) for ref in references)
                     for k in grey.reshape(len(grey), -1)])


def test_conv1_1_compared_with_classic_kernels(vgg):
    bank = kernels.reference_bank(3)
    assert len(bank) == 23
    trained = best_abs_correlations(vgg[0].weight.detach(), bank)
    torch.manual_seed(0)
    untrained_filters = models.vgg16_features(pretrained=False)[0].weight.detach()
    untrained = best_abs_correlations(untrained_filters, bank)
    assert f"{np.median(trained):.2f}" == "0.82"
    assert f"{np.median(untrained):.2f}" == "0.64"
    assert (trained > 0.8).sum() == 36 and (untrained > 0.8).sum() == 6
    assert (trained > 0.9).sum() == 13 and (untrained > 0.9).sum() == 0


def test_filter_most_like_sobel_x(vgg):
    grey = np.einsum("nchw,c->nhw", vgg[0].weight.detach().double().numpy(), LUMINANCE)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64).ravel()
    rs = np.array([pearson(k.ravel(), sobel) for k in grey])
    best = int(np.abs(rs).argmax())
    assert best == 46
    assert f"{rs[best]:+.2f}" == "-0.97"


# ------------------------------------------------------------------ feature maps


def test_preprocessing_matches_sample_image(photo_batch):
    full = preprocess_for_vgg(data.sample_image("chelsea"), size=224)
    assert torch.equal(full, photo_batch)


def test_inplace_relu_overwrites_a_stored_conv_output(photo_batch):
    features = models.vgg16_features(pretrained=True)  # ReLU(inplace=True)
    stored = {}
    handle = features[0].register_forward_hook(
        lambda m, i, o: stored.__setitem__("conv1_1", o.detach()))
    with torch.no_grad():
        features[:2](photo_batch)
    handle.remove()
    assert float(stored["conv1_1"].min()) == 0.0
    conv1_1 = F.conv2d(photo_batch, features[0].weight, features[0].bias, padding=1)
    negative = float((conv1_1 < 0).float().mean())
    assert f"{negative:.3f}" == "0.511"
    assert 0.45 < negative < 0.55  # "about half of its values are negative"


def test_a_cloning_hook_keeps_the_negative_values(photo_batch):
    """With ReLU(inplace=True) after conv1_1, a hook that stores a clone keeps conv1_1's
    output: negative values (smallest about −7.0) and relu1_1 equal to it clamped."""
    features = models.vgg16_features(pretrained=True)
    assert features[1].inplace
    stored = {}
    handles = [features[0].register_forward_hook(
                   lambda m, i, o: stored.__setitem__("conv1_1", o.detach().clone())),
               features[1].register_forward_hook(
                   lambda m, i, o: stored.__setitem__("relu1_1", o.detach().clone()))]
    with torch.no_grad():
        features[:2](photo_batch)
    for handle in handles:
        handle.remove()
    conv1_1 = F.conv2d(photo_batch, features[0].weight, features[0].bias, padding=1)
    torch.testing.assert_close(stored["conv1_1"], conv1_1, rtol=0, atol=1e-5)
    assert f"{float(stored['conv1_1'].min()):.1f}" == "-7.0"
    assert torch.equal(stored["relu1_1"], stored["conv1_1"].clamp(min=0))


def test_zero_fractions_rise_with_depth(layer_outputs):
    zeros = [float((layer_outputs[i] == 0).float().mean()) for i in BLOCK_ENDS.values()]
    assert all(a < b for a, b in zip(zeros, zeros[1:], strict=False))
    assert 0.45 < zeros[0] < 0.55  # "about one half in block 1"
    assert 0.85 < zeros[-1] < 0.90  # "almost 90 % in block 5"
    assert [f"{z:.3f}" for z in zeros] == ["0.524", "0.686", "0.816", "0.879", "0.891"]


def test_block4_channel8_fires_at_both_eyes(layer_outputs):
    relu4_3 = layer_outputs[22][0]
    strongest = relu4_3.mean(dim=(1, 2)).argsort(descending=True)[:6].tolist()
    assert 8 in strongest
    channel = relu4_3[8]
    # the eyes sit in the upper half of the 224-pixel crop, one left, one right
    for half in (channel[:, :14], channel[:, 14:]):
        row = int(half.max(dim=1).values.argmax())
        assert 7 <= row <= 14
    assert channel[:, :14].max() > 0.5 * channel.max()
    assert channel[:, 14:].max() > 0.5 * channel.max()


# ------------------------------------------------------------------ hook hygiene


def test_forgotten_hooks_keep_firing(photo_batch):
    layer = nn.Conv2d(3, 4, 3, padding=1)
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        for _ in range(3):
            layer(photo_batch)
    assert len(seen) == 3
    second = layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        layer(photo_batch)
    assert len(seen) == 5
    handle.remove()
    second.remove()
    with torch.no_grad():
        layer(photo_batch)
    assert len(seen) == 5


def test_non_detached_output_keeps_input_alive(photo_batch):
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = photo_batch.clone()
    alive = weakref.ref(x)
    raw = layer(x)
    assert raw.requires_grad and raw.grad_fn.name() == "ConvolutionBackward0"
    del x
    assert alive() is not None
    del raw
    assert alive() is None
    y = photo_batch.clone()
    alive = weakref.ref(y)
    detached = layer(y).detach()
    del y
    assert alive() is None and detached.grad_fn is None


@pytest.mark.parametrize("inplace", [True, False])
def test_memory_saved_for_backward(photo_batch, inplace):
    """70 MiB with the notebook's in-place ReLUs, and the same without them."""
    vgg = models.vgg16_features(pretrained=True)
    for layer in vgg:
        if isinstance(layer, nn.ReLU):
            layer.inplace = inplace
    weights = {p.data_ptr() for p in vgg.parameters()}
    saved = {}

    def pack(tensor):
        if tensor.data_ptr() not in weights:
            saved[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = vgg(photo_batch)
    mib = sum(saved.values()) / 2**20
    assert round(mib) == 70 and mib > 56  # more than the weights
    assert out.grad_fn is not None


# ------------------------------------------------------------------ pooling


def test_pooling_keeps_peak_or_mean(layer_outputs):
    relu1_2 = layer_outputs[3][0]
    channel = int(relu1_2.amax(dim=(1, 2)).argmax())
    fmap = relu1_2[channel][None, None]
    maximum, average = fmap, fmap
    for _ in range(3):
        maximum, average = F.max_pool2d(maximum, 2), F.avg_pool2d(average, 2)
    assert maximum.shape == average.shape == (1, 1, 28, 28)
    assert float(maximum.max()) == float(fmap.max())
    assert float(average.mean()) == pytest.approx(float(fmap.mean()), rel=1e-5)
    assert float(average.max()) < float(fmap.max()) / 4
    # average pooling of non-negative maps dilutes a response by at most 4x per pool
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert bool((F.avg_pool2d(x, 2) >= F.max_pool2d(x, 2) / 4).all())


def test_stride_two_conv_versus_pooling():
    x = torch.zeros(1, 64, 224, 224)
    strided = nn.Conv2d(64, 64, 3, stride=2, padding=1)
    assert strided(x).shape == nn.MaxPool2d(2)(x).shape == (1, 64, 112, 112)
    assert sum(p.numel() for p in strided.parameters()) == 36_928
    assert arithmetic.output_size(224, 3, stride=2, padding=1) == 112


# ------------------------------------------------------------------ activation max.


def test_truncated_networks_for_64_pixel_inputs(vgg):
    expected = {"conv1_2": (3, (64, 64, 64)), "conv2_2": (8, (128, 32, 32)),
                "conv3_3": (15, (256, 16, 16)), "conv4_3": (22, (512, 8, 8)),
                "conv5_3": (29, (512, 4, 4))}
    with torch.device("meta"):
        features = torchvision.models.vgg16(weights=None).features
        for name, (length, shape) in expected.items():
            head = truncate_after(features, name)
            assert len(head) == length
            assert tuple(head(torch.empty(1, 3, 64, 64)).shape[1:]) == shape


def test_activation_maximisation_channels_follow_the_stated_rule(layer_outputs):
    """"The channel with the largest mean activation on the cat photo (after its
    ReLU)", for the last convolution of each block, and the first panel of each row
    of the block-by-block figure (its six strongest channels)."""
    chosen = {}
    for name, index in BLOCK_ENDS.items():
        means = layer_outputs[index][0].double().mean(dim=(1, 2)).numpy()
        chosen[name.replace("relu", "conv")] = int(np.argmax(means))
        assert chosen[name.replace("relu", "conv")] == int(
            layer_outputs[index][0].mean(dim=(1, 2)).argsort(descending=True)[0])
    assert chosen == {"conv1_2": 56, "conv2_2": 24, "conv3_3": 206, "conv4_3": 313,
                      "conv5_3": 328}


@pytest.mark.parametrize("index, field, jump", [(14, 40, 4), (21, 92, 8)])
def test_the_patch_around_a_unit_is_its_receptive_field(index, field, jump):
    """A unit in row i, column j of conv3_3 (conv4_3) sees the field x field square
    centred on (i·J + (J − 1)/2, j·J + (J − 1)/2): checked by gradients on a copy of
    the geometry with averaging layers (as chapter 1's measured receptive field)."""
    layers = []
    for layer in models.vgg16_features(pretrained=False)[:index + 1]:
        if isinstance(layer, nn.Conv2d):
            conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
            nn.init.constant_(conv.weight, 1 / 9)
            layers.append(conv)
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(nn.AvgPool2d(2))
    net = nn.Sequential(*layers)
    image = torch.zeros(1, 1, 224, 224, requires_grad=True)
    output = net(image)
    row, col = 10, 12
    output[0, 0, row, col].backward()
    rows, cols = torch.nonzero(image.grad[0, 0]).unbind(1)
    assert int(rows.max() - rows.min() + 1) == field == int(cols.max() - cols.min() + 1)
    assert float(rows.min() + rows.max()) / 2 == row * jump + (jump - 1) / 2
    assert float(cols.min() + cols.max()) / 2 == col * jump + (jump - 1) / 2


CIFAR_ANIMALS = {"bird", "cat", "deer", "dog", "frog", "horse"}


def top_cifar_classes(vgg, index, channel, count=8):
    """Classes of the first 500 CIFAR sample images with the largest activation of
    ``channel`` at layer ``index`` (conv output, max over positions), normalised with
    NumPy and run through the layers one by one (no hooks)."""
    images, labels = data.cifar10_sample()
    pixels = images[:500].numpy().astype(np.float64) / 255.0
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    x = torch.from_numpy(((pixels - mean) / std).astype(np.float32))
    with torch.no_grad():
        for layer in vgg[:index + 1]:
            x = layer(x)
    scores = x[:, channel].amax(dim=(1, 2))
    top = torch.argsort(scores, descending=True)[:count].tolist()
    return [data.CIFAR10_CLASSES[int(labels[i])] for i in top]


def test_dataset_examples_of_the_chosen_channels(vgg):
    conv3_3 = top_cifar_classes(vgg, 14, 206)
    conv4_3 = top_cifar_classes(vgg, 21, 313)
    conv5_3 = top_cifar_classes(vgg, 28, 328)
    assert len(set(conv3_3)) >= 5  # "a texture found in many classes"
    assert sum(name in CIFAR_ANIMALS for name in conv4_3) >= 6  # "mostly animals"
    # exercise ch6-conv5-examples: all eight are animals, the top two are cats
    assert all(name in CIFAR_ANIMALS for name in conv5_3)
    assert conv5_3[:2] == ["cat", "cat"]


def test_plain_ascent_climbs_higher_but_noisier(vgg):
    """The notebook's settings on its cheapest target (conv1_2, channel 56, the
    rule's choice)."""
    layer_name, channel = "conv1_2", 56
    plain_settings = {"image_size": 64, "steps": 40, "lr": 0.1, "seed": 0}
    regularised_settings = {**plain_settings, "jitter": 3, "blur_sigma": 0.5,
                            "blur_every": 2, "l2": 0.1}
    head = truncate_after(vgg, layer_name)
    plain = activation_maximisation(head, channel, **plain_settings)
    regularised = activation_maximisation(head, channel, **regularised_settings)
    # a colour channel: "both runs turn the whole image red ... reach the same activation"
    assert regularised.history[-1] > regularised.history[0] + 5
    assert abs(plain.history[-1] - regularised.history[-1]) < 0.02 * plain.history[-1]
    red, green, blue = regularised.image.mean(dim=(1, 2)).tolist()
    assert red > 0.99 and green < 0.01 and blue < 0.01  # pure red
    red, green, blue = plain.image.mean(dim=(1, 2)).tolist()
    assert red > 0.95 and red > 5 * max(green, blue)  # red with a few bright specks
    assert high_frequency_fraction(plain.image) > high_frequency_fraction(
        regularised.image)
