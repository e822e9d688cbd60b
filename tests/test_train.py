"""utils.train: mini-batches, the training and evaluation loops, the cached TinyCNN,
and a smoke test of benchmarks/loader_bench.py."""

import inspect
import math
import os
import subprocess

import pytest
import torch
import torch.nn.functional as F
from course_env import REPO_ROOT
from repo_scripts import load_script
from torch import nn

from utils import models, repro, train


def tiny_data(n=96, seed=0):
    """A learnable toy problem: the class is the quadrant of the brightest pixel."""
    generator = torch.Generator().manual_seed(seed)
    images = 0.1 * torch.randn(n, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 4, (n,), generator=generator)
    for i, label in enumerate(labels.tolist()):
        row, col = 7 + 14 * (label // 2), 7 + 14 * (label % 2)
        images[i, 0, row - 3 : row + 3, col - 3 : col + 3] += 3.0
    return images, labels


# ------------------------------------------------------------------ batches
def test_batches_cover_every_sample_once_in_order():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    got = list(train.batches(x, y, 4))
    assert [len(b[1]) for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in got]), y)
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in got)


def test_shuffled_batches_are_a_seeded_permutation():
    x, y = torch.arange(100).float()[:, None], torch.arange(100)

    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([yb for _, yb in train.batches(x, y, 32, True, gen)])

    first = order(0)
    assert sorted(first.tolist()) == list(range(100))
    assert not torch.equal(first, y)
    assert torch.equal(first, order(0))
    assert not torch.equal(first, order(1))


@pytest.mark.parametrize("batch_size, error", [
    (0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_batches_reject_bad_batch_size(batch_size, error):
    with pytest.raises(error, match="batch_size must be"):
        next(train.batches(torch.zeros(4, 1), torch.zeros(4), batch_size))


def test_batches_reject_mismatched_or_non_tensor_inputs():
    with pytest.raises(ValueError, match="samples"):
        next(train.batches(torch.zeros(4, 1), torch.zeros(3), 2))
    with pytest.raises(TypeError, match="tensors"):
        next(train.batches([1, 2], torch.zeros(2), 2))


# ------------------------------------------------------------------ data
def test_mnist_tensors_are_standardised_float_images():
    images, labels = train.mnist_tensors(train=True)
    assert images.shape == (60_000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (60_000,) and labels.dtype == torch.int64
    assert abs(images.mean().item()) < 1e-3
    assert images.std().item() == pytest.approx(1.0, abs=1e-3)
    raw, _ = train.mnist_tensors(train=False, normalize=False)
    assert raw.shape == (10_000, 1, 28, 28)
    assert raw.min() == 0.0 and raw.max() == 1.0


def test_split_validation_holds_out_the_last_samples():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    (train_x, train_y), (val_x, val_y) = train.split_validation(x, y, 3)
    assert train_y.tolist() == list(range(7)) and val_y.tolist() == [7, 8, 9]
    assert torch.equal(train_x[:, 0].long(), train_y)
    assert torch.equal(val_x[:, 0].long(), val_y)
    assert val_x.data_ptr() == x[7:].data_ptr()  # views, not copies
    with pytest.raises(ValueError, match="n_val must leave training samples"):
        train.split_validation(x, y, 10)
    with pytest.raises(ValueError, match="n_val must be"):
        train.split_validation(x, y, 0)
    with pytest.raises(ValueError, match="samples"):
        train.split_validation(x, y[:9], 3)


def test_mnist_train_val_is_55000_plus_5000_with_every_digit_held_out():
    (train_x, train_y), (val_x, val_y) = train.mnist_train_val()
    images, labels = train.mnist_tensors(train=True)
    assert train.VALIDATION_SIZE == 5_000
    assert train_x.shape == (55_000, 1, 28, 28) and val_x.shape == (5_000, 1, 28, 28)
    assert torch.equal(val_x, images[55_000:]) and torch.equal(train_y, labels[:55_000])
    counts = torch.bincount(val_y, minlength=10)
    # about 500 of each digit (MNIST's training set is not sorted by class)
    assert counts.min() >= 450 and counts.max() <= 570


# ------------------------------------------------------------------ loops
def test_train_epoch_lowers_the_loss_and_returns_the_mean():
    x, y = tiny_data()
    model = train.init_tinycnn(0, n_classes=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [train.train_epoch(model, x, y, optimizer, batch_size=32,
                                generator=torch.Generator().manual_seed(0),
                                progress=False) for _ in range(4)]
    assert all(isinstance(v, float) for v in losses)
    assert losses[0] == pytest.approx(math.log(4), abs=0.5)
    assert losses[-1] < 0.5 * losses[0]
    assert model.training


def test_evaluate_matches_a_direct_computation():
    x, y = tiny_data(50)
    model = train.init_tinycnn(1, n_classes=4)
    result = train.evaluate(model, x, y, batch_size=16)
    with torch.no_grad():
        logits = model(x)
    assert torch.equal(result["predictions"], logits.argmax(1))
    accuracy = (logits.argmax(1) == y).float().mean().item()
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert not model.training


def test_fit_rows_and_determinism():
    x, y = tiny_data()

    def run():
        model = train.init_tinycnn(0, n_classes=4)
        history = train.fit(model, (x, y), (x, y), epochs=2, batch_size=32,
                            max_lr=0.01, progress=False)
        return history, repro.state_digest(model.state_dict())

    (history, digest), (history2, digest2) = run(), run()
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy",
                               "seconds"}
    assert digest == digest2
    assert [r["val_loss"] for r in history] == [r["val_loss"] for r in history2]
    assert history[-1]["val_accuracy"] > 0.9


def test_fit_evaluates_the_val_pair_it_is_given():
    x, y = tiny_data()
    model = train.init_tinycnn(0, n_classes=4)
    history = train.fit(model, (x[:64], y[:64]), (x[64:], y[64:]), epochs=1,
                        batch_size=32, progress=False)
    result = train.evaluate(model, x[64:], y[64:])
    assert history[0]["val_loss"] == pytest.approx(result["loss"])
    assert history[0]["val_accuracy"] == pytest.approx(result["accuracy"])


@pytest.mark.parametrize("epochs, error", [
    (0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_fit_rejects_bad_epochs(epochs, error):
    x, y = tiny_data(8)
    with pytest.raises(error, match="epochs must be"):
        train.fit(train.init_tinycnn(0, n_classes=4), (x, y), (x, y), epochs=epochs)


@pytest.mark.parametrize("progress, env, disabled", [
    (True, None, False), (True, "1", True), (True, "0", False), (True, "", False),
    (True, "true", True), (False, None, True), (False, "0", True),
])
def test_progress_bars_respect_tqdm_disable(monkeypatch, progress, env, disabled):
    # tqdm's notebook bar ignores TQDM_DISABLE, so utils.train passes it explicitly.
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    seen = {}

    def fake_tqdm(iterable, **kwargs):
        seen.update(kwargs)
        return iterable

    monkeypatch.setattr(train, "tqdm", fake_tqdm)
    x, y = tiny_data(8)
    model = train.init_tinycnn(0, n_classes=4)
    train.train_epoch(model, x, y, torch.optim.SGD(model.parameters(), lr=0.0),
                      batch_size=4, progress=progress)
    assert seen["disable"] is disabled


# ------------------------------------------------------------------ init and saving
def test_init_tinycnn_depends_only_on_the_seed_and_keeps_global_rng():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = repro.state_digest(train.init_tinycnn(0).state_dict())
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.rand(5)
    assert repro.state_digest(train.init_tinycnn(0).state_dict()) == first
    assert repro.state_digest(train.init_tinycnn(1).state_dict()) != first
    repro.seed_everything(0)
    assert repro.state_digest(models.TinyCNN().state_dict()) == first
    assert train.init_tinycnn(0, kernel_size=5).conv1.weight.shape == (16, 1, 5, 5)
    with pytest.raises(TypeError, match="seed"):
        train.init_tinycnn("0")


def test_save_weights_writes_a_weights_only_file(tmp_path):
    model = train.init_tinycnn(3)
    path = train.save_weights(model, tmp_path / "sub" / "w.pt")
    assert path == tmp_path / "sub" / "w.pt" and path.exists()
    assert not list(path.parent.glob("*.tmp"))
    state = torch.load(path, weights_only=True)
    assert repro.state_digest(state) == repro.state_digest(model.state_dict())
    with pytest.raises(TypeError, match="Module"):
        train.save_weights({"a": torch.zeros(1)}, tmp_path / "x.pt")


# ------------------------------------------------------------------ cached TinyCNN
@pytest.fixture
def fake_training(monkeypatch):
    """Replace the MNIST tensors by toy data and ``fit`` by a recorder that trains
    briefly, so retraining takes a fraction of a second. The process counts as being
    in the portable CPU mode, so the training happens here (in-process)."""
    calls = []
    monkeypatch.setattr(train, "portable_cpu_active", lambda: True)
    x, y = tiny_data(32)
    monkeypatch.setattr(train, "mnist_train_val",
                        lambda: ((x[:24], y[:24]), (x[24:], y[24:])))
    real_fit = train.fit

    def recording_fit(model, train_data, val_data, **kwargs):
        calls.append({"initial": repro.state_digest(model.state_dict()),
                      "n_train": len(train_data[1]), "n_val": len(val_data[1]),
                      **kwargs})
        return real_fit(model, train_data, val_data, epochs=1, batch_size=16,
                        progress=False)

    monkeypatch.setattr(train, "fit", recording_fit)
    return calls


def test_missing_file_is_trained_with_the_chapter_settings_and_saved(
        tmp_path, fake_training):
    path = tmp_path / "tinycnn.pt"
    model = train.load_or_train_tinycnn(path, progress=False)
    assert len(fake_training) == 1
    call = fake_training[0]
    # The chapter's run: init_tinycnn(seed=0), then fit's defaults on the training
    # part, monitored on the validation part (mnist_train_val).
    assert call["initial"] == repro.state_digest(train.init_tinycnn(0).state_dict())
    assert (call.pop("n_train"), call.pop("n_val")) == (24, 8)
    assert {k: v for k, v in call.items() if k != "initial"} == {"progress": False}
    saved = torch.load(path, weights_only=True)
    assert saved["recipe"] == train.tinycnn_recipe()
    assert repro.state_digest(saved["state_dict"]) == repro.state_digest(
        model.state_dict())
    assert not model.training


def test_the_recipe_records_the_split_and_fits_settings():
    recipe = train.tinycnn_recipe()
    assert "training images 0-54999, validation 55000-59999" in recipe
    assert "batch_size=128, epochs=3, max_lr=0.01, seed=0" in recipe
    assert train.tinycnn_recipe(epochs=1) != recipe
    assert "epochs=1" in train.tinycnn_recipe(epochs=1)


def test_fit_defaults_are_the_chapter_settings():
    params = inspect.signature(train.fit).parameters
    names = ("epochs", "batch_size", "max_lr", "seed")
    settings = {name: params[name].default for name in names}
    assert settings == {"epochs": 3, "batch_size": 128, "max_lr": 0.01, "seed": 0}
    notebook = (REPO_ROOT / "chapters" / "05_tinycnn_mnist.ipynb").read_text()
    assert "epochs=3, batch_size=128, max_lr=0.01, seed=0" in notebook
    assert "train.init_tinycnn(seed=0)" in notebook


def test_existing_file_is_loaded_without_training(tmp_path, fake_training):
    path = tmp_path / "tinycnn.pt"
    saved = train.init_tinycnn(7)
    train._save_course_copy(saved, path, train.tinycnn_recipe())
    model = train.load_or_train_tinycnn(path)
    assert fake_training == []
    assert repro.state_digest(model.state_dict()) == repro.state_digest(
        saved.state_dict())


@pytest.mark.parametrize("content", [
    b"this is not a torch file",
    b"",
    "truncated",
    "wrong shapes",
    "not a state dict",
    "stale: a bare state dict",
    "stale: another recipe",
])
def test_corrupt_file_is_replaced_by_a_retrained_network(tmp_path, fake_training,
                                                         content):
    path = tmp_path / "tinycnn.pt"
    if content == "truncated":
        train.save_weights(train.init_tinycnn(0), path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "wrong shapes":
        train._save_course_copy(train.init_tinycnn(0, kernel_size=5), path,
                                train.tinycnn_recipe())
    elif content == "not a state dict":
        torch.save(torch.zeros(3), path)
    elif content == "stale: a bare state dict":
        # how the course stored the network before the validation split: right keys
        # and shapes, but trained on all 60,000 images, so it must not be reused
        train.save_weights(train.init_tinycnn(7), path)
    elif content == "stale: another recipe":
        train._save_course_copy(train.init_tinycnn(7), path,
                                train.tinycnn_recipe(epochs=1))
    else:
        path.write_bytes(content)
    model = train.load_or_train_tinycnn(path, progress=False)
    assert len(fake_training) == 1
    assert fake_training[0]["initial"] == repro.state_digest(
        train.init_tinycnn(0).state_dict())
    saved = torch.load(path, weights_only=True)
    assert saved["recipe"] == train.tinycnn_recipe()
    assert repro.state_digest(saved["state_dict"]) == repro.state_digest(
        model.state_dict())
    # and the next call loads the repaired file without training again
    train.load_or_train_tinycnn(path)
    assert len(fake_training) == 1


def test_default_path_is_in_the_data_folder(tmp_path, monkeypatch, fake_training):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    train.load_or_train_tinycnn(progress=False)
    assert (tmp_path / train.TINYCNN_FILE).exists()


def test_outside_the_portable_mode_training_runs_in_a_portable_process(
        tmp_path, monkeypatch):
    """A process that is not in the portable mode (it cannot switch it on any more)
    trains in a fresh one, so the weights do not depend on which page asked first."""
    monkeypatch.setattr(train, "portable_cpu_active", lambda: False)
    started = []

    def fake_process(path, progress):
        started.append(path)
        train._save_course_copy(train.init_tinycnn(5), path, train.tinycnn_recipe())

    monkeypatch.setattr(train, "_train_in_portable_process", fake_process)
    path = tmp_path / "tinycnn.pt"
    model = train.load_or_train_tinycnn(path, progress=False)
    assert started == [path]
    assert repro.state_digest(model.state_dict()) == repro.state_digest(
        train.init_tinycnn(5).state_dict())
    with pytest.raises(ValueError, match="needs the portable CPU mode"):
        train.load_or_train_tinycnn(tmp_path / "other.pt", epochs=1)


def test_the_portable_process_sets_the_portable_environment(tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, env, **kwargs):
        seen.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setattr(train.subprocess, "run", fake_run)
    train._train_in_portable_process(tmp_path / "w.pt", progress=False)
    assert seen["command"][1:] == ["-m", "utils.train", str(tmp_path / "w.pt")]
    for key, value in {**repro.PORTABLE_SETTINGS, repro.PORTABLE_ENV: "1"}.items():
        assert seen["env"][key] == value
    assert str(REPO_ROOT) in seen["env"]["PYTHONPATH"].split(os.pathsep)


# ------------------------------------------------------------------ benchmark
def load_benchmark():
    return load_script("benchmarks/loader_bench.py")


def test_loader_benchmark_runs_and_reports_a_ratio():
    bench = load_benchmark()
    threads = torch.get_num_threads()
    try:
        result = bench.compare_loops(n_batches=2, batch_size=16, repeats=1)
    finally:
        torch.set_num_threads(threads)
    assert [row["loop"] for row in result["rows"]] == list(bench.LOOPS.values())
    for row in result["rows"]:
        assert row["loader_only"] > 0 and row["train_step"] > 0
    course, textbook = result["rows"]
    assert result["speedup"]["train_step"] == pytest.approx(
        course["train_step"] / textbook["train_step"])
    table = bench.format_table(result)
    assert "speed-up" in table and "samples/s" in table
    with pytest.raises(ValueError, match="n_batches"):
        bench.compare_loops(n_batches=0)


def test_textbook_and_course_batches_hold_the_same_images():
    bench = load_benchmark()
    textbook_images, _ = next(iter(torch.utils.data.DataLoader(
        bench.load_mnist(True, transform=bench.ToTensor()), batch_size=8)))
    course_images, _ = train.mnist_tensors(train=True, normalize=False)
    torch.testing.assert_close(textbook_images, course_images[:8])


# ------------------------------------------------------------------ initialisation
def test_reset_uniform_draws_pytorchs_default_distribution_reproducibly():
    layer = nn.Conv2d(16, 32, 3)
    train.reset_uniform(layer, seed=3)
    bound = 1 / math.sqrt(16 * 9)
    weights = layer.weight.detach()
    assert weights.abs().max() <= bound and layer.bias.abs().max() <= bound
    # a uniform distribution on [-b, b] has standard deviation b / sqrt(3)
    assert abs(weights.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    again = train.reset_uniform(nn.Conv2d(16, 32, 3), seed=3)
    assert torch.equal(again.weight, layer.weight)
    other = train.reset_uniform(nn.Conv2d(16, 32, 3), seed=4)
    assert not torch.equal(other.weight, layer.weight)


def test_reset_uniform_is_float64_rounded_into_the_parameter_dtype():
    single = train.reset_uniform(nn.Linear(5, 3), seed=0)
    double = train.reset_uniform(nn.Linear(5, 3).double(), seed=0)
    assert double.weight.dtype == torch.float64
    torch.testing.assert_close(single.weight.double(), double.weight, rtol=0,
                               atol=1e-7)
    assert torch.equal(single.weight, double.weight.float())


def test_reset_uniform_rejects_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        train.reset_uniform("model")
    with pytest.raises(TypeError, match="seed must be an int"):
        train.reset_uniform(nn.Linear(2, 2), seed=1.5)
