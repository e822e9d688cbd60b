"""utils.vis_optim: ImageNet normalisation, photo preprocessing, truncation, blur,
frequency measures and activation maximisation, checked against torchvision, SciPy
and NumPy."""

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
import torchvision.transforms.functional as TF
from torch import nn

from utils import models, vis_optim
from utils.kernels import gaussian_blur
from utils.models import truncate_after
from utils.vis_optim import (
    activation_maximisation,
    high_frequency_fraction,
    imagenet_denormalise,
    imagenet_normalise,
    preprocess_for_vgg,
    total_variation,
)


@pytest.fixture(scope="module")
def vgg():
    return models.vgg16_features(pretrained=True)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 3, 3, padding=1)).eval()


# ----------------------------------------------------------------- normalisation


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 8, 8)])
def test_normalise_matches_torchvision_and_round_trips(shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    mean, std = list(models.IMAGENET_MEAN), list(models.IMAGENET_STD)
    expected = TF.normalize(image, mean, std)
    torch.testing.assert_close(imagenet_normalise(image), expected)
    torch.testing.assert_close(imagenet_denormalise(imagenet_normalise(image)), image)
    torch.testing.assert_close(imagenet_normalise(imagenet_denormalise(image)), image)


def test_normalise_per_channel_values():
    grey = torch.full((3, 2, 2), 0.5)
    normalised = imagenet_normalise(grey)
    for c in range(3):
        expected = (0.5 - models.IMAGENET_MEAN[c]) / models.IMAGENET_STD[c]
        assert normalised[c].allclose(torch.full((2, 2), expected))
    assert imagenet_normalise(grey.double()).dtype == torch.float64


@pytest.mark.parametrize("function", [imagenet_normalise, imagenet_denormalise])
def test_normalise_rejects_bad_input(function):
    with pytest.raises(ValueError, match="shape"):
        function(torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        function(torch.rand(5, 5))
    with pytest.raises(TypeError, match="float"):
        function(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        function(np.zeros((3, 4, 4)))


# ----------------------------------------------------------------- preprocessing


def test_preprocess_numpy_matches_torchvision_pipeline():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    tensor = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    expected = TF.center_crop(tensor, [40, 40])
    expected = TF.resize(expected, [24, 24], antialias=True)
    expected = TF.normalize(expected.clamp(0, 1), list(models.IMAGENET_MEAN),
                            list(models.IMAGENET_STD))
    result = preprocess_for_vgg(photo, size=24)
    assert result.shape == (1, 3, 24, 24)
    torch.testing.assert_close(result[0], expected, atol=1e-5, rtol=1e-5)


def test_preprocess_tensor_and_array_agree_and_keep_a_square_image():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    tensor = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(preprocess_for_vgg(photo, size=30),
                               preprocess_for_vgg(tensor, size=30))
    torch.testing.assert_close(preprocess_for_vgg(tensor, size=30)[0],
                               imagenet_normalise(tensor), atol=1e-6, rtol=1e-6)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="divide a 0-255 image by 255"):
        preprocess_for_vgg(torch.full((3, 8, 8), 200.0))
    with pytest.raises(TypeError, match="float"):
        preprocess_for_vgg(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        preprocess_for_vgg(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_for_vgg(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_for_vgg(np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="size"):
        preprocess_for_vgg(torch.rand(3, 8, 8), size=0)
    with pytest.raises(TypeError, match="tensor or a NumPy array"):
        preprocess_for_vgg([[0.0]])


# ----------------------------------------------------------------- truncation


def test_truncate_after_by_name_and_index(vgg):
    assert len(truncate_after(vgg, "conv1_1")) == 1
    assert len(truncate_after(vgg, "conv3_3")) == 15
    assert len(truncate_after(vgg, "pool5")) == 31
    assert len(truncate_after(vgg, 21)) == len(truncate_after(vgg, "21")) == 22
    head = truncate_after(vgg, "conv2_2")
    assert head[0] is vgg[0]  # shares modules and weights
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = x
        for layer in list(vgg)[:8]:
            expected = layer(expected)
        torch.testing.assert_close(head(x), expected)


def test_truncate_after_rejects_bad_layers(vgg):
    with pytest.raises(ValueError, match="unknown layer"):
        truncate_after(vgg, "conv6_1")
    with pytest.raises(ValueError, match=r"\[0, 30\]"):
        truncate_after(vgg, 31)
    with pytest.raises(ValueError, match=r"\[0, 30\]"):
        truncate_after(vgg, -1)
    with pytest.raises(TypeError, match="bool"):
        truncate_after(vgg, True)
    with pytest.raises(TypeError, match="nn.Sequential"):
        truncate_after(nn.Conv2d(3, 3, 3), 0)


# ----------------------------------------------------------------- blur and penalties


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = torch.rand(2, 3, 17, 20, generator=torch.Generator().manual_seed(2),
                   dtype=torch.float64)
    result = gaussian_blur(x, sigma)
    expected = np.stack([
        np.stack([scipy.ndimage.gaussian_filter(x[n, c].numpy(), sigma, mode="mirror",
                                                truncate=3.0)
                  for c in range(3)])
        for n in range(2)
    ])
    assert result.shape == x.shape
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-6)


def test_gaussian_blur_keeps_constants_and_rejects_bad_input():
    constant = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(constant, 1.0), constant)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(constant, 0.0)
    with pytest.raises(TypeError, match="sigma must be a number"):
        gaussian_blur(constant, True)
    with pytest.raises(ValueError, match="too large"):
        gaussian_blur(constant, 5.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gaussian_blur(constant[0], 1.0)


def test_total_variation_matches_numpy():
    x = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(3),
                   dtype=torch.float64)
    a = x.numpy()
    expected = (np.diff(a, axis=2) ** 2).mean() + (np.diff(a, axis=3) ** 2).mean()
    assert float(total_variation(x)) == pytest.approx(expected, rel=1e-12)
    assert float(total_variation(torch.ones(1, 3, 5, 5))) == 0.0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        total_variation(torch.ones(3, 5, 5))


def test_high_frequency_fraction_on_known_signals():
    generator = torch.Generator().manual_seed(4)
    noise = torch.rand(3, 128, 128, generator=generator)
    # white noise spreads its power evenly: the share outside a disc of radius 0.25
    assert high_frequency_fraction(noise) == pytest.approx(1 - math.pi / 16, abs=0.02)
    columns = torch.arange(64, dtype=torch.float64)
    slow = torch.cos(2 * math.pi * 0.0625 * columns).expand(64, 64)
    fast = torch.cos(2 * math.pi * 0.4375 * columns).expand(64, 64)
    assert high_frequency_fraction(slow) == pytest.approx(0.0, abs=1e-9)
    assert high_frequency_fraction(fast[None, None]) == pytest.approx(1.0, abs=1e-9)
    assert high_frequency_fraction(torch.full((3, 8, 8), 0.7)) == 0.0
    blurred = gaussian_blur(noise[None], 1.0)[0]
    assert high_frequency_fraction(blurred) < 0.1 < high_frequency_fraction(noise)


def test_high_frequency_fraction_rejects_bad_input():
    with pytest.raises(TypeError, match="torch.Tensor"):
        high_frequency_fraction(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        high_frequency_fraction(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="cutoff"):
        high_frequency_fraction(torch.zeros(4, 4), cutoff=0.0)


# ----------------------------------------------------------------- activation max.


def test_ascent_increases_the_target_activation(vgg):
    model = truncate_after(vgg, "conv1_2")
    result = activation_maximisation(model, 5, image_size=32, steps=10, lr=0.1)
    assert len(result.history) == 11
    assert result.history[-1] > result.history[0] + 0.2
    with torch.no_grad():
        recomputed = model(result.normalised)[0, 5].mean()
    assert float(recomputed) == pytest.approx(result.history[-1], rel=1e-5, abs=1e-6)
    assert result.image.shape == (3, 32, 32)
    assert float(result.image.min()) >= 0.0 and float(result.image.max()) <= 1.0
    torch.testing.assert_close(imagenet_denormalise(result.normalised)[0].clamp(0, 1),
                               result.image)


def test_ascent_is_deterministic_and_seeded():
    net = small_net()
    settings = dict(image_size=16, steps=6, lr=0.05, jitter=2, blur_sigma=0.5,
                    blur_every=2, l2=0.1, tv=0.1)
    first = activation_maximisation(net, 1, seed=3, **settings)
    second = activation_maximisation(net, 1, seed=3, **settings)
    other = activation_maximisation(net, 1, seed=4, **settings)
    assert torch.equal(first.normalised, second.normalised)
    assert first.history == second.history
    assert not torch.equal(first.normalised, other.normalised)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ascent_leaves_the_model_untouched(dtype):
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = activation_maximisation(net, 0, image_size=16, steps=3, dtype=dtype)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key])
        assert value.dtype == torch.float32
    assert all(p.grad is None for p in net.parameters())
    assert result.image.dtype == result.normalised.dtype == torch.float32


def test_float32_and_float64_ascents_agree_at_first():
    net = small_net()
    double = activation_maximisation(net, 1, image_size=16, steps=2)
    single = activation_maximisation(net, 1, image_size=16, steps=2,
                                     dtype=torch.float32)
    assert single.history == pytest.approx(double.history, rel=1e-4, abs=1e-5)


def test_initial_noise_has_the_requested_spread():
    net = nn.Sequential(nn.Identity())  # no parameters: the output is the input
    result = activation_maximisation(net, 0, image_size=64, steps=1, lr=1e-9,
                                     init_std=0.1)
    pixels = imagenet_denormalise(result.normalised)
    assert float(pixels.std()) == pytest.approx(0.1, rel=0.05)
    assert float(pixels.mean()) == pytest.approx(0.5, abs=0.01)


def test_regularisers_lower_high_frequency_power():
    net = small_net()
    plain = activation_maximisation(net, 2, image_size=32, steps=20, lr=0.1)
    smooth = activation_maximisation(net, 2, image_size=32, steps=20, lr=0.1,
                                     blur_sigma=1.0, blur_every=1, tv=5.0)
    assert high_frequency_fraction(smooth.image) < high_frequency_fraction(plain.image)


def test_ascent_rejects_bad_arguments():
    net = small_net()
    with pytest.raises(TypeError, match="nn.Module"):
        activation_maximisation(lambda x: x, 0)
    with pytest.raises(ValueError, match="channel 7 does not exist"):
        activation_maximisation(net, 7, image_size=16, steps=1)
    with pytest.raises(ValueError, match="channel"):
        activation_maximisation(net, -1)
    with pytest.raises(TypeError, match="steps"):
        activation_maximisation(net, 0, steps=True)
    with pytest.raises(ValueError, match="steps"):
        activation_maximisation(net, 0, steps=0)
    with pytest.raises(ValueError, match="lr"):
        activation_maximisation(net, 0, lr=0.0)
    with pytest.raises(ValueError, match="l2"):
        activation_maximisation(net, 0, l2=-1.0)
    with pytest.raises(ValueError, match="jitter"):
        activation_maximisation(net, 0, image_size=16, jitter=8)
    with pytest.raises(ValueError, match="image_size"):
        activation_maximisation(net, 0, image_size=4)
    with pytest.raises(TypeError, match="blur_sigma"):
        activation_maximisation(net, 0, blur_sigma="1")
    with pytest.raises(TypeError, match="dtype"):
        activation_maximisation(net, 0, dtype=torch.int64)


def test_fourier_feature_visualisation_is_deterministic_and_climbs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 2, 3, padding=1))
    first = vis_optim.fourier_feature_visualisation(net, 1, image_size=16, steps=12,
                                                    jitter=2, seed=3)
    again = vis_optim.fourier_feature_visualisation(net, 1, image_size=16, steps=12,
                                                    jitter=2, seed=3)
    assert first.image.shape == (3, 16, 16)
    assert float(first.image.min()) > 0 and float(first.image.max()) < 1
    assert torch.equal(first.image, again.image)
    assert len(first.history) == 13 and first.history[-1] > first.history[0]
    torch.testing.assert_close(vis_optim.imagenet_denormalise(first.normalised)[0],
                               first.image, atol=1e-5, rtol=0)
    assert next(net.parameters()).dtype == torch.float32  # the model is not converted


@pytest.mark.parametrize("kwargs, message", [
    ({"jitter": 8}, "jitter"), ({"lr": 0.0}, "lr"), ({"scales": ()}, "scales"),
    ({"degrees": -1.0}, "degrees"), ({"dtype": torch.int64}, "dtype"),
])
def test_fourier_feature_visualisation_rejects_bad_arguments(kwargs, message):
    net = torch.nn.Conv2d(3, 2, 3)
    with pytest.raises((TypeError, ValueError), match=message):
        vis_optim.fourier_feature_visualisation(net, 0, image_size=16, **kwargs)
