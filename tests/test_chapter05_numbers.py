"""Every number stated in the prose of chapters/05_tinycnn_mnist.ipynb, recomputed
independently of the notebook (NumPy, plain PyTorch layers, closed-form formulas).

The trained network is the cached one (``utils.train.load_or_train_tinycnn``, the file
chapter 5 saves); it is evaluated here with a separately built ``nn.Sequential`` and
NumPy-normalised test images, not with ``utils.train.evaluate``.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from repo_scripts import load_script
from torch import nn

from utils import arithmetic, data, kernels, models, repro, train
from utils.data import MNIST_MEAN, MNIST_STD


@pytest.fixture(scope="module")
def trained_state():
    return train.load_or_train_tinycnn().state_dict()


@pytest.fixture(scope="module")
def test_set():
    """Test images standardised with NumPy from the raw uint8 data, and labels."""
    dataset = data.load_mnist(train=False)
    pixels = dataset.data.numpy().astype(np.float64) / 255.0
    images = ((pixels - 0.1307) / 0.3081).astype(np.float32)[:, None]
    return torch.from_numpy(images), dataset.targets.clone()


def sequential_tinycnn(state, kernel_size=3):
    """TinyCNN rebuilt as an nn.Sequential from the architecture in the prose."""
    pad = kernel_size // 2
    net = nn.Sequential(
        nn.Conv2d(1, 16, kernel_size, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
    rename = {"conv1": "0", "conv2": "3", "fc": "7"}
    net.load_state_dict({rename[k.split(".")[0]] + "." + k.split(".")[1]: v
                         for k, v in state.items()})
    return net.eval()


def pearson_best(learned, bank, chunk=500):
    """Best |Pearson r| of each kernel against the bank, with NumPy's corrcoef.

    ``np.corrcoef`` of the stacked rows gives every pairwise correlation; it runs on
    chunks of kernels so that the matrix stays small. References with zero variance
    correlate 0 with everything.
    """
    learned = np.asarray(learned, dtype=np.float64).reshape(len(learned), -1)
    reference = np.stack([np.asarray(k, dtype=np.float64).ravel()
                          for k in bank.values()])
    varying = reference.std(axis=1) > 0
    best = []
    for start in range(0, len(learned), chunk):
        rows = learned[start:start + chunk]
        r = np.corrcoef(np.vstack([rows, reference[varying]]))[:len(rows), len(rows):]
        best.append(np.abs(r).max(axis=1))
    return np.concatenate(best)


# ------------------------------------------------------------------ data
def test_mnist_sizes_and_pixel_statistics():
    train_set, test_set = data.load_mnist(True), data.load_mnist(False)
    assert len(train_set) == 60_000 and len(test_set) == 10_000
    pixels = train_set.data.numpy().astype(np.float64) / 255.0
    assert round(pixels.mean(), 4) == 0.1307 == data.MNIST_MEAN
    assert round(pixels.std(), 4) == 0.3081 == data.MNIST_STD


# ------------------------------------------------------------------ architecture
def test_parameter_counts_3x3_and_5x5():
    def conv(c_in, c_out, k):
        return c_out * c_in * k * k + c_out

    fc = 10 * 32 * 7 * 7 + 10
    assert (conv(1, 16, 3), conv(16, 32, 3), fc) == (160, 4_640, 15_690)
    assert conv(1, 16, 3) + conv(16, 32, 3) + fc == 20_490
    assert 0.74 < fc / 20_490 < 0.78  # "about three quarters"
    assert (conv(1, 16, 5), conv(16, 32, 5)) == (416, 12_832)
    assert conv(1, 16, 5) + conv(16, 32, 5) + fc == 28_938
    for k, total in ((3, 20_490), (5, 28_938)):
        net = models.TinyCNN(kernel_size=k)
        assert sum(p.numel() for p in net.parameters()) == total
        assert sum(p.numel() for p in net.fc.parameters()) == 15_690
        assert net.conv1.weight.numel() == 16 * k * k  # 16 first-layer kernels


def test_shapes_28_14_7_and_flat_1568():
    net = sequential_tinycnn(models.TinyCNN().state_dict())
    x = torch.zeros(1, 1, 28, 28)
    sizes = []
    for layer in net:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[0] == (16, 28, 28) and sizes[2] == (16, 14, 14)
    assert sizes[3] == (32, 14, 14) and sizes[5] == (32, 7, 7)
    assert sizes[6] == (1568,) and sizes[7] == (10,)


def test_conv2_units_see_8x8_input_pixels():
    # Formula: r <- r + (k - 1) * j, j <- j * s over conv1 (3, 1), pool (2, 2), conv2.
    r, j = 1, 1
    for k, s in ((3, 1), (2, 2), (3, 1)):
        r, j = r + (k - 1) * j, j * s
    assert r == 8
    # Gradient check on TinyCNN's own layers: one conv2 unit depends on exactly an
    # 8x8 input square.
    net = models.TinyCNN()
    assert arithmetic.measured_receptive_field([net.conv1, net.pool, net.conv2], 28) == 8


# ------------------------------------------------------------------ training
def test_initial_loss_is_about_ln_10():
    images, labels = train.mnist_tensors(train=True)
    with torch.no_grad():
        loss = F.cross_entropy(train.init_tinycnn(0)(images[:128]), labels[:128])
    assert round(math.log(10), 2) == 2.30
    assert abs(loss.item() - math.log(10)) < 0.05


def test_one_cycle_schedule_numbers():
    # 55,000 training digits (the last 5,000 of MNIST's 60,000 are the validation part)
    steps_per_epoch = math.ceil(55_000 / 128)
    total = 3 * steps_per_epoch
    assert (steps_per_epoch, total) == (430, 1_290)
    assert 55_000 - 429 * 128 == 88  # "the last one holds 88 digits"
    # Closed form of the cosine one-cycle schedule (Smith & Topin), PyTorch defaults:
    # initial = max/25, final = initial/1e4, warm-up over 30% of the steps.
    max_lr, initial = 0.01, 0.01 / 25
    final, warm_end = initial / 1e4, 0.3 * total - 1

    def cos_anneal(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    expected = [cos_anneal(initial, max_lr, t / warm_end) if t <= warm_end else
                cos_anneal(max_lr, final, (t - warm_end) / (total - 1 - warm_end))
                for t in range(total)]
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=max_lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, total_steps=total)
    got = []
    for _ in range(total):
        got.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert expected[0] == pytest.approx(0.0004)
    assert max(expected) == pytest.approx(0.01)
    assert int(np.argmax(expected)) / total == pytest.approx(0.3, abs=0.002)
    assert expected[-1] < 1e-7
    # "the rate peaks near the end of the first epoch"
    assert 0.85 < int(np.argmax(expected)) / steps_per_epoch < 1.0


def test_adam_first_step_moves_weights_by_the_learning_rate_along_the_sign():
    # "its first update moves each weight by about the learning rate in the direction
    # of its gradient's sign": m̂ = g, v̂ = g², so the step is lr·g / (|g| + eps).
    weights = torch.zeros(6, requires_grad=True)
    gradient = torch.tensor([3e-2, -2e-3, 5e-5, -1e-6, 4e-7, -2e-7])
    optimizer = torch.optim.Adam([weights], lr=0.01)
    weights.grad = gradient.clone()
    optimizer.step()
    expected = -0.01 * gradient / (gradient.abs() + 1e-8)
    torch.testing.assert_close(weights.detach(), expected, rtol=1e-5, atol=1e-9)
    assert torch.allclose(weights.detach().abs(), torch.full((6,), 0.01), rtol=0.06)
    # opposite signs of a tiny gradient: opposite moves of about the learning rate
    other = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([other], lr=0.01)
    other.grad = torch.tensor([-4e-7])
    optimizer.step()
    assert float(weights.detach()[4]) < -0.009 and float(other.detach()) > 0.009


def test_cached_model_validation_accuracy_agrees_with_the_test_accuracy(
        trained_state, test_set):
    """The validation part (last 5,000 training digits, standardised with NumPy here)
    gives at least 99%, within half a point of the test accuracy."""
    dataset = data.load_mnist(train=True)
    pixels = dataset.data.numpy()[55_000:].astype(np.float64) / 255.0
    val_images = torch.from_numpy(((pixels - 0.1307) / 0.3081).astype(np.float32)[:, None])
    val_labels = dataset.targets[55_000:]
    net = sequential_tinycnn(trained_state)
    with torch.no_grad():
        val_accuracy = (net(val_images).argmax(1) == val_labels).float().mean().item()
        images, labels = test_set
        predicted = torch.cat([net(chunk).argmax(1) for chunk in images.split(2000)])
    test_accuracy = (predicted == labels).float().mean().item()
    assert val_accuracy >= 0.99
    assert abs(val_accuracy - test_accuracy) < 0.005


def test_cached_model_reaches_99_percent(trained_state, test_set):
    images, labels = test_set
    net = sequential_tinycnn(trained_state)
    with torch.no_grad():
        predicted = torch.cat([net(chunk).argmax(1) for chunk in images.split(2000)])
    n_wrong = int((predicted != labels).sum())
    assert 1 - n_wrong / 10_000 >= 0.99
    assert n_wrong < 100  # "fewer than 100 of the 10,000 test digits"
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels.numpy(), predicted.numpy()), 1)
    # "roughly 1,000 correct predictions per class on the diagonal"
    assert confusion.diagonal().min() > 850 and confusion.diagonal().max() < 1_150
    # the first test digit, used for the feature maps, is a 7 and is predicted as 7
    assert int(labels[0]) == 7 == int(predicted[0])


def test_cached_weights_file_is_a_weights_only_state_dict_with_its_recipe(
        trained_state):
    path = data.data_dir() / train.TINYCNN_FILE
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["recipe"] == train.tinycnn_recipe()
    assert "validation 55000-59999" in saved["recipe"]
    state = saved["state_dict"]
    assert list(state) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                           "fc.weight", "fc.bias"]
    assert repro.state_digest(state) == repro.state_digest(trained_state)


# ------------------------------------------------------------------ kernel evidence
def test_reference_bank_sizes_and_dimensions():
    bank3, bank5 = kernels.reference_bank(3), kernels.reference_bank(5)
    assert len(bank3) == 23 and len(bank5) == 17
    assert sum(float(k.std()) > 0 for k in bank3.values()) == 22
    assert sum(float(k.std()) > 0 for k in bank5.values()) == 16
    # zero-mean k×k kernels span k² − 1 dimensions: 8 for 3×3, 24 for 5×5
    for k in (3, 5):
        centred = np.random.default_rng(0).normal(size=(200, k * k))
        centred -= centred.mean(axis=1, keepdims=True)
        assert np.linalg.matrix_rank(centred) == k * k - 1


def test_trained_kernels_match_the_bank_only_a_little_better(trained_state):
    bank = kernels.reference_bank(3)
    trained = trained_state["conv1.weight"][:, 0].numpy()
    initial = train.init_tinycnn(0).conv1.weight.detach()[:, 0].numpy()
    random_kernels = torch.randn(10_000, 3, 3,
                                 generator=torch.Generator().manual_seed(0)).numpy()
    trained_mean = pearson_best(trained, bank).mean()
    initial_mean = pearson_best(initial, bank).mean()
    random_mean = pearson_best(random_kernels, bank).mean()
    assert round(initial_mean, 2) == 0.69
    assert round(random_mean, 2) == 0.66
    # the course's copy is trained in the portable CPU mode (0.73 exactly, as printed)
    assert round(trained_mean, 2) == 0.73
    assert 0 < trained_mean - initial_mean < 0.1  # "only a little"
    assert round(trained_mean - initial_mean, 2) == 0.04  # "about 0.04 (0.69 → 0.73)"
    # the fair chance baseline: means of 16 random kernels reach the trained mean in
    # only about 1% of draws (resampled here with NumPy)
    random_best = pearson_best(random_kernels, bank)
    groups = np.random.default_rng(0).integers(0, len(random_best), (10_000, 16))
    assert 0.005 < (random_best[groups].mean(axis=1) >= trained_mean).mean() < 0.02
    gains = pearson_best(trained, bank) - pearson_best(initial, bank)
    assert (gains > 0).sum() > 8  # "most kernels gained on their own starting point"
    own_start = [np.corrcoef(t.ravel(), i.ravel())[0, 1]
                 for t, i in zip(trained, initial, strict=True)]
    assert 0.85 < np.median(own_start) < 0.95  # "about 0.9 (median)"
    # "mostly Gabor kernels, before and after training alike"
    for weights in (trained, initial):
        names = [name for name, _ in kernels.best_matches(torch.from_numpy(weights),
                                                          bank)]
        assert sum(name.startswith("gabor") for name in names) >= 11


def test_untrained_5x5_kernels_match_the_bank_poorly():
    bank5 = kernels.reference_bank(5)
    initial5 = train.init_tinycnn(0, kernel_size=5).conv1.weight.detach()[:, 0]
    assert round(pearson_best(initial5.numpy(), bank5).mean(), 2) == 0.38


# ------------------------------------------------------------------ feature maps
def test_feature_maps_and_translation_equivariance(trained_state, test_set):
    images, _ = test_set
    net = sequential_tinycnn(trained_state)
    digit = images[:1]
    # MNIST digits have an empty border, so a roll is a shift here
    assert float(digit[..., :, :3].max()) == float(digit.min())
    assert float(digit[..., :, -3:].max()) == float(digit.min())
    conv1, relu_pool = net[0], nn.Sequential(net[1], net[2])
    with torch.no_grad():
        maps = conv1(digit)
        assert maps.shape == (1, 16, 28, 28)
        assert net[3](relu_pool(maps)).shape == (1, 32, 14, 14)
        shifted = torch.roll(digit, 2, dims=-1)
        torch.testing.assert_close(torch.roll(maps, 2, dims=-1)[..., 1:-1, 3:-3],
                                   conv1(shifted)[..., 1:-1, 3:-3], atol=1e-5, rtol=0)
        pooled = relu_pool(maps)
        pooled_2 = relu_pool(conv1(shifted))
        pooled_1 = relu_pool(conv1(torch.roll(digit, 1, dims=-1)))
        torch.testing.assert_close(torch.roll(pooled, 1, dims=-1)[..., 2:-2],
                                   pooled_2[..., 2:-2], atol=1e-5, rtol=0)
        assert (pooled - pooled_1).abs().max() > 0.1
        assert (torch.roll(pooled, 1, dims=-1) - pooled_1).abs().max() > 0.1
        predictions = [int(net(torch.roll(digit, shift, dims=-1)).argmax())
                       for shift in (0, 1, 2)]
    assert predictions == [7, 7, 7]


# ------------------------------------------------------------------ loader equivalence
# The speed of the two loops is measured by benchmarks/loader_bench.py (make bench),
# never in a test; here only that they feed the same kind of batches.
def test_course_and_textbook_loops_feed_equivalent_batches():
    bench = load_script("benchmarks/loader_bench.py")
    course_images, course_labels = next(bench.course_batches(128)())
    text_images, text_labels = next(bench.textbook_batches(128)())
    assert course_images.shape == text_images.shape == (128, 1, 28, 28)
    assert course_images.dtype == text_images.dtype == torch.float32
    assert course_labels.dtype == text_labels.dtype == torch.int64
    # ToTensor gives [0, 1]; the course's tensors are that, normalised with MNIST's
    # mean and standard deviation.
    assert text_images.min() >= 0 and text_images.max() <= 1
    restored = course_images * MNIST_STD + MNIST_MEAN
    assert restored.min() > -1e-5 and restored.max() < 1 + 1e-5
