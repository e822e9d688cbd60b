"""Every number that the prose of chapters/08_shift_invariance.ipynb states, recomputed
here independently (NumPy, SciPy, utils.arithmetic), not read from the notebook."""

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from utils import antialias, arithmetic, kernels, models, probe

# ------------------------------------------------------------------ 1-D aliasing


def test_stride_and_max_pool_flip_under_a_one_sample_shift():
    alternating = np.array([0, 1] * 8)
    assert set(alternating[::2]) == {0} and set(np.roll(alternating, 1)[::2]) == {1}
    stripes = np.array([0, 0, 1, 1] * 4)
    pooled = [np.roll(stripes, s).reshape(-1, 2).max(1) for s in (0, 1)]
    assert pooled[0].tolist() == [0, 1] * 4 and pooled[1].tolist() == [1] * 8


@pytest.mark.parametrize("frequency,alias,size,amplitude", [
    (0.375, 0.25, 3, 0.146), (0.375, 0.25, 5, 0.021), (0.3125, 0.375, 3, 0.31)])
def test_alias_frequency_and_binomial_amplitude(frequency, alias, size, amplitude):
    n = np.arange(64)
    wave = np.cos(2 * np.pi * frequency * n)
    taps = np.array([1.0])
    for _ in range(size - 1):
        taps = np.convolve(taps, [0.5, 0.5])
    blurred = scipy.ndimage.correlate1d(wave, taps, mode="wrap")
    for signal, expected in ((wave, 1.0), (blurred, np.cos(np.pi * frequency) ** (size - 1))):
        kept = signal[::2]
        spectrum = np.abs(np.fft.rfft(kept)) * 2 / len(kept)
        assert np.argmax(spectrum) == round(alias * len(kept))
        assert spectrum[round(alias * len(kept))] == pytest.approx(expected, abs=1e-9)
    assert np.cos(np.pi * frequency) ** (size - 1) == pytest.approx(amplitude, abs=0.005)


def test_box_and_binomial_response_at_a_quarter():
    assert np.cos(np.pi / 4) == pytest.approx(0.71, abs=0.005)
    assert np.cos(np.pi / 4) ** 2 == pytest.approx(0.5)


# ------------------------------------------------------------------ 2-D stripes


def _stripes(shift):
    return np.roll(np.tile([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0], (8, 1)), shift, axis=1)


def test_stripes_max_pool_flips_by_one_blurpool_by_a_quarter_average_by_a_half():
    def max_pool(x):
        return x.reshape(4, 2, 4, 2).max(axis=(1, 3))

    def average_pool(x):
        return x.reshape(4, 2, 4, 2).mean(axis=(1, 3))

    def blur_pool(x):
        dense = scipy.ndimage.maximum_filter(x, size=2, origin=(-1, -1), mode="wrap")
        blurred = scipy.ndimage.correlate(dense, np.outer([1, 2, 1], [1, 2, 1]) / 16,
                                          mode="wrap")
        return blurred[::2, ::2]

    for pool, change in ((max_pool, 1.0), (blur_pool, 0.25), (average_pool, 0.5)):
        assert np.abs(pool(_stripes(0)) - pool(_stripes(1))).max() == change
    assert blur_pool(_stripes(0))[0].tolist() == [0.5, 1, 0.5, 1]
    assert blur_pool(_stripes(1))[0].tolist() == [0.75] * 4
    # the same with the course's module
    ours = antialias.max_blur_pool(antialias.binomial_kernel(3), 2, "circular")
    for shift in (0, 1):
        x = torch.tensor(_stripes(shift))[None, None]
        np.testing.assert_allclose(ours(x)[0, 0].numpy(), blur_pool(_stripes(shift)))


# ------------------------------------------------------------------ VGG16 geometry


@pytest.fixture(scope="module")
def vgg():
    return models.vgg16_features(pretrained=True)


def test_relu5_3_is_behind_four_pools_of_stride_two(vgg):
    trunk = vgg[:probe.PROBE_LAYER]
    pools = [layer for layer in trunk if isinstance(layer, nn.MaxPool2d)]
    assert len(pools) == 4 and all(pool.stride == 2 for pool in pools)
    assert arithmetic.receptive_field(trunk) == 196
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, 48, 48)).shape[-2:] == (3, 3)


def _conv_macs(features, size):
    total = 0
    for layer in features[:probe.PROBE_LAYER]:
        if isinstance(layer, nn.MaxPool2d):
            size //= 2
        elif isinstance(layer, nn.Conv2d):
            total += arithmetic.conv_macs(layer.in_channels, layer.out_channels, 3,
                                          size, size)
    return total


def _blur_macs(features, size):
    total, channels = 0, 3
    for layer in features[:probe.PROBE_LAYER]:
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            size //= 2
            total += channels * 9 * size * size
    return total


def test_blur_share_of_the_arithmetic(vgg):
    share = {size: _blur_macs(vgg, size) / _conv_macs(vgg, size) for size in (48, 224)}
    assert share[48] < 0.01
    assert share[48] == pytest.approx(share[224], rel=1e-12)
    # the notebook counts with the network's own layers: the same numbers
    blurred = antialias.antialias_vgg16(vgg, antialias.binomial_kernel(3), "circular")
    blur_layers = [layer for layer in blurred[:probe.PROBE_LAYER]
                   if isinstance(layer, nn.Sequential)]
    assert len(blur_layers) == 4


def test_gaussian_sigma_one_is_close_to_binomial_five():
    variance = float((antialias.binomial_1d(5) * (torch.arange(5.0).double() - 2) ** 2).sum())
    assert variance == pytest.approx(1.0)
    difference = (kernels.gaussian(5, 1.0) - antialias.binomial_kernel(5)).abs().max()
    assert difference < 0.025


# ------------------------------------------------------------------ VGG16 shifts


@pytest.fixture(scope="module")
def shifted():
    images, _ = probe.cifar_probe_images(probe.PROBE_SIZE)
    _, held_out = probe.cifar_probe_split(seed=0)
    return antialias.circular_shifts(images[held_out[:20]], [0, 1, 16])


def test_sixteen_pixel_shift_changes_nothing_and_one_pixel_does(vgg, shifted):
    circular = antialias.circular_padding(vgg)
    blurred = antialias.antialias_vgg16(circular, antialias.binomial_kernel(3), "circular")
    cosine = {}
    for name, network in (("max", circular), ("blur", blurred)):
        pooled = [probe.gap_features(network, batch) for batch in shifted]
        assert F.cosine_similarity(pooled[0], pooled[2], dim=-1).min() > 0.9999
        cosine[name] = F.cosine_similarity(pooled[0], pooled[1], dim=-1)
        assert cosine[name].mean() < 0.99
    assert (cosine["blur"] > cosine["max"]).double().mean() > 0.7
    # with zero padding a 16-pixel shift is no longer invariant
    zero = [probe.gap_features(vgg, batch) for batch in shifted[[0, 2]]]
    assert F.cosine_similarity(zero[0], zero[1], dim=-1).mean() < 0.99
