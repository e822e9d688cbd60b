"""Every number stated in the prose of labs/lab03_tinycnn.ipynb and
labs/lab04_feature_maps.ipynb, recomputed independently of the notebooks.

Lab 3's network, initialisation, shuffling and training loop are rebuilt here from
plain PyTorch layers on NumPy-standardised digits (no ``utils.train``); lab 4's VGG16
is run functionally (``F.conv2d``, ``F.relu``, ``F.max_pool2d``) from the weights'
state dict, on the cat photo normalised with NumPy, and frequencies are measured with
NumPy's FFT.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import data, kernels, models, vis_optim, weights

# --------------------------------------------------------------------------------------
# Lab 3: TinyCNN
# --------------------------------------------------------------------------------------


def tinycnn_layers() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def standardised(train: bool, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    dataset = data.load_mnist(train=train)
    pixels = dataset.data[:count].numpy().astype(np.float64) / 255.0
    images = (pixels - 0.1307) / 0.3081
    return torch.from_numpy(images[:, None]), dataset.targets[:count].clone()


def test_lab03_parameter_counts():
    counts = [sum(p.numel() for p in layer.parameters()) for layer in tinycnn_layers()]
    assert counts[0] == 16 * 9 + 16 == 160
    assert sum(counts) == 20_490
    assert 0.74 < counts[7] / sum(counts) < 0.78  # "three quarters" in the linear layer


def test_lab03_pytorch_default_init_is_uniform_with_fan_in_bound():
    torch.manual_seed(0)
    for layer in (nn.Conv2d(16, 32, 3), nn.Linear(32 * 7 * 7, 10)):
        fan_in = layer.weight[0].numel()
        bound = 1 / math.sqrt(fan_in)
        for parameter in (layer.weight, layer.bias):
            largest = float(parameter.detach().abs().max())
            assert largest <= bound and largest > 0.8 * bound
    assert nn.Conv2d(16, 32, 3).weight[0].numel() == 16 * 3 * 3  # fan_in = C_in·k²


def test_lab03_reference_bank_has_23_kernels():
    bank = kernels.reference_bank(3)
    assert len(bank) == 23
    assert sum(name.startswith("gabor") for name in bank) == 16  # 8 angles, 2 phases


def test_lab03_accuracy_after_one_epoch_is_about_93_percent():
    train_x, train_y = standardised(True, 8000)
    test_x, test_y = standardised(False, 2000)
    net = tinycnn_layers().double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                bound = 1 / math.sqrt(layer.weight[0].numel())
                for parameter in (layer.weight, layer.bias):
                    draw = torch.rand(parameter.shape, generator=generator,
                                      dtype=torch.float64)
                    parameter.copy_((2 * draw - 1) * bound)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.005)
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0))
    losses = []
    for start in range(0, len(order), 128):
        batch = order[start : start + 128]
        loss = F.cross_entropy(net(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item() * len(batch))
    with torch.no_grad():
        predicted = torch.cat([net(chunk).argmax(1) for chunk in test_x.split(500)])
    accuracy = 100 * (predicted == test_y).double().mean().item()
    assert 92.0 < accuracy < 94.5, accuracy  # the lab prints 93.3%
    assert sum(losses) / len(train_y) < math.log(10)


# --------------------------------------------------------------------------------------
# Lab 4: VGG16 feature maps
# --------------------------------------------------------------------------------------

BLOCKS = (2, 2, 3, 3, 3)


@pytest.fixture(scope="module")
def vgg_state():
    return weights.vgg16_state()


@pytest.fixture(scope="module")
def cat_batch():
    photo = data.sample_image("chelsea", size=128).numpy().astype(np.float64)
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    return torch.from_numpy(((photo - mean) / std)[None]).float()


def block_ends(image: torch.Tensor, state: dict, blocks=BLOCKS) -> list[torch.Tensor]:
    """The last ReLU output of each block, computed functionally from the weights."""
    outputs, conv = [], iter(models.VGG16_CONV_INDICES)
    x = image
    for n_convs in blocks:
        for _ in range(n_convs):
            index = next(conv)
            weight = state[f"{index}.weight"].to(x.dtype)
            bias = state[f"{index}.bias"].to(x.dtype)
            x = F.relu(F.conv2d(x, weight, bias, padding=1))
        outputs.append(x)
        x = F.max_pool2d(x, 2)
    return outputs


def conv2_2(image: torch.Tensor, state: dict) -> torch.Tensor:
    """conv2_2 before its ReLU, in the image's dtype."""
    x = image
    for position, index in enumerate(models.VGG16_CONV_INDICES[:4]):
        if position == 2:
            x = F.max_pool2d(x, 2)
        x = F.conv2d(x, state[f"{index}.weight"].to(x.dtype),
                     state[f"{index}.bias"].to(x.dtype), padding=1)
        if position < 3:
            x = F.relu(x)
    return x


def high_frequency_share(image: np.ndarray, cutoff: float = 0.25) -> float:
    image = np.asarray(image, dtype=np.float64)
    image = image - image.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(image)) ** 2).sum(axis=0)
    fy = np.fft.fftfreq(image.shape[-2])[:, None]
    fx = np.fft.fftfreq(image.shape[-1])[None, :]
    return float(power[np.hypot(fy, fx) > cutoff].sum() / power.sum())


def test_lab04_zero_fraction_grows_from_half_to_nine_tenths(vgg_state, cat_batch):
    with torch.no_grad():
        outputs = block_ends(cat_batch, vgg_state)
    assert [tuple(o.shape[1:]) for o in outputs] == [
        (64, 128, 128), (128, 64, 64), (256, 32, 32), (512, 16, 16), (512, 8, 8)]
    fractions = [float((o == 0).double().mean()) for o in outputs]
    assert all(a < b for a, b in zip(fractions, fractions[1:], strict=False))
    assert 0.45 < fractions[0] < 0.56  # "about half after block 1"
    assert 0.87 < fractions[-1] < 0.95  # "about nine in ten after block 5"


def test_lab04_max_pool_keeps_peak_average_keeps_mean(vgg_state, cat_batch):
    with torch.no_grad():
        relu2_2 = block_ends(cat_batch, vgg_state, blocks=(2, 2))[1].double()
    channel = int(relu2_2[0].amax(dim=(1, 2)).argmax())
    feature_map = relu2_2[0, channel].numpy()
    windows = feature_map.reshape(32, 2, 32, 2)
    max_pooled, average_pooled = windows.max(axis=(1, 3)), windows.mean(axis=(1, 3))
    assert max_pooled.max() == feature_map.max()
    assert average_pooled.mean() == pytest.approx(feature_map.mean(), rel=1e-12)
    assert average_pooled.max() < feature_map.max()
    assert (max_pooled >= average_pooled).all()


def test_lab04_white_noise_high_frequency_share_is_about_0_8():
    noise = np.random.default_rng(0).random((3, 64, 64))
    assert high_frequency_share(noise) == pytest.approx(1 - math.pi * 0.25**2, abs=0.03)
    assert round(1 - math.pi * 0.25**2, 1) == 0.8


def test_lab04_ascent_raises_activation_and_regularised_is_smoother(vgg_state):
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[:, None, None]
    grey_noise = 0.4 + 0.2 * torch.rand(1, 3, 64, 64, dtype=torch.float64,
                                        generator=torch.Generator().manual_seed(0))
    image = ((grey_noise - mean) / std).requires_grad_(True)
    history = []
    for _ in range(20):
        activation = conv2_2(image, vgg_state)[0, 80].mean()
        history.append(activation.item())
        (gradient,) = torch.autograd.grad(activation, image)
        image = (image + 0.05 * gradient / gradient.abs().mean()).detach()
        image.requires_grad_(True)
    with torch.no_grad():
        history.append(conv2_2(image, vgg_state)[0, 80].mean().item())
    assert history[0] < 0 and history[-1] > history[0] + 10  # "far above"
    plain = (image.detach() * std + mean).clamp(0, 1)[0].numpy()

    features = models.vgg16_features(pretrained=True)
    regularised = vis_optim.activation_maximisation(
        models.truncate_after(features, "conv2_2"), 80, image_size=64, steps=20,
        lr=0.1, jitter=2, blur_sigma=0.5, blur_every=2, l2=0.1, seed=0)
    assert history[0] + 5 < regularised.history[-1] < history[-1]  # lower activation
    assert high_frequency_share(regularised.image.numpy()) \
        < high_frequency_share(plain) < high_frequency_share(grey_noise[0].numpy())
