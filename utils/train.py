"""Training and evaluation loops on pre-built tensors, and the cached trained TinyCNN.

The loop is derived in ``chapters/05_tinycnn_mnist.ipynb``. Mini-batches are slices of
tensors already in memory (no per-sample PIL transforms), shuffled by a seeded
generator, so a run is fast and repeatable. The course's TinyCNN trains on the first
55,000 MNIST training images and is monitored on the last 5,000 (the validation part,
``split_validation``); the 10,000 test images are left for one final evaluation.
Progress bars (tqdm) show in JupyterLab and Colab; the course's test run sets
``TQDM_DISABLE=1`` so committed outputs stay quiet.
"""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import validate
from .data import MNIST_MEAN, MNIST_STD, data_dir, dataset_tensors, load_mnist, save_atomic
from .models import TinyCNN
from .repro import (
    PORTABLE_ENV,
    PORTABLE_SETTINGS,
    portable_cpu_active,
    seed_everything,
    state_digest,
)

__all__ = ["batches", "train_epoch", "evaluate", "fit", "mnist_tensors",
           "split_validation", "mnist_train_val", "init_tinycnn", "reset_uniform",
           "prepare_for_training", "save_weights", "train_tinycnn",
           "load_or_train_tinycnn", "tinycnn_recipe", "TINYCNN_FILE", "VALIDATION_SIZE"]

TINYCNN_FILE = "tinycnn_mnist.pt"
# The validation part: the last 5,000 images of MNIST's 60,000 training images.
VALIDATION_SIZE = 5_000


def _progress_disabled(progress: bool) -> bool:
    """True when bars should be hidden: ``progress`` is false or ``TQDM_DISABLE`` set.

    tqdm's notebook bar ignores the ``TQDM_DISABLE`` environment variable (it turns a
    missing ``disable`` into ``False``), so the variable is read here.
    """
    flag = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return not progress or flag not in ("", "0", "false", "no")


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")


def mnist_tensors(train: bool = True, normalize: bool = True):
    """MNIST as float32 (N, 1, 28, 28) images, standardised with the training-set mean
    and standard deviation when ``normalize`` is true, and int64 labels."""
    images, labels = dataset_tensors(load_mnist(train))
    if normalize:
        images = (images - MNIST_MEAN) / MNIST_STD
    return images, labels


def split_validation(
    images: torch.Tensor, labels: torch.Tensor, n_val: int = VALIDATION_SIZE,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split a training set into ``(train, val)`` pairs: the last ``n_val`` samples
    are the validation part, the rest the training part.

    A fixed rule rather than a random draw, so every run and every page holds out the
    same images (MNIST's training images are not sorted by class, so the last 5,000
    hold every digit about equally often). The tensors are views, not copies.
    """
    _check_pair(images, labels)
    n_val = validate.integer(n_val, "n_val", 1)
    if n_val >= images.shape[0]:
        raise ValueError(f"n_val must leave training samples: it is {n_val} for "
                         f"{images.shape[0]} samples")
    cut = images.shape[0] - n_val
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def mnist_train_val(normalize: bool = True, n_val: int = VALIDATION_SIZE):
    """MNIST's training set as ``(train, val)`` pairs of (images, labels): the first
    55,000 images to train on and the last 5,000 to monitor training
    (``split_validation``), standardised as in ``mnist_tensors``."""
    return split_validation(*mnist_tensors(True, normalize), n_val)


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int,
    shuffle: bool = False, generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[idx], y[idx])`` mini-batches, in a seeded random order if asked."""
    _check_pair(x, y)
    batch_size = validate.integer(batch_size, "batch_size", 1)
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


def train_epoch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor,
    optimizer: torch.optim.Optimizer, batch_size: int = 128,
    scheduler=None, generator: torch.Generator | None = None,
    device: torch.device | str = "cpu", progress: bool = True, desc: str = "train",
) -> float:
    """One pass over the data: forward, cross-entropy loss, backward, optimiser step
    (and a scheduler step per batch, for one-cycle schedules). Returns the mean loss."""
    model.train()
    total, count = 0.0, 0
    n_batches = -(-x.shape[0] // batch_size)
    bar = tqdm(batches(x, y, batch_size, True, generator), total=n_batches,
               desc=desc, leave=False, disable=_progress_disabled(progress))
    for xb, yb in bar:
        xb, yb = xb.to(device), yb.to(device)
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * xb.shape[0]
        count += xb.shape[0]
    return total / count


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
    device: torch.device | str = "cpu",
) -> dict[str, object]:
    """Mean cross-entropy loss, accuracy and the predicted labels on a data set."""
    model.eval()
    losses, predictions = [], []
    for xb, yb in batches(x, y, batch_size):
        logits = model(xb.to(device))
        losses.append(F.cross_entropy(logits, yb.to(device), reduction="sum").item())
        predictions.append(logits.argmax(1).cpu())
    predicted = torch.cat(predictions)
    return {
        "loss": sum(losses) / x.shape[0],
        "accuracy": (predicted == y).float().mean().item(),
        "predictions": predicted,
    }


def prepare_for_training(
    model: nn.Module, device: torch.device | str = "cpu"
) -> nn.Module:
    """Move ``model`` to ``device`` and store its 4-D weights channels-last (NHWC).

    On a CPU, oneDNN's convolution and max-pooling kernels are much faster on
    channels-last tensors (a TinyCNN training step took a third to 40% less time in
    our measurements); the arithmetic is the same up to float rounding. ``fit`` calls
    it; the model is changed in place and returned. ``benchmarks/loader_bench.py``
    uses it for the same step.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model.to(device=device, memory_format=torch.channels_last)


def fit(
    model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor], epochs: int = 3, batch_size: int = 128,
    max_lr: float = 0.01, seed: int = 0, device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train with Adam under a one-cycle learning-rate schedule; evaluate the held-out
    ``val`` pair (images, labels) after every epoch.

    ``val`` is the data that monitors training: a validation part of the training set
    (``split_validation``), never the test set, which stays for one final evaluation.
    The model is first moved to ``device`` in the channels-last layout
    (``prepare_for_training``). Everything random (the shuffling order) comes from
    ``seed``, so the same model, data and settings give the same weights on the same
    machine. Returns one row per epoch: epoch, train_loss, val_loss, val_accuracy,
    seconds (training time of that epoch, excluding evaluation).
    """
    epochs = validate.integer(epochs, "epochs", 1)
    generator = seed_everything(seed)
    prepare_for_training(model, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=max_lr)
    steps = epochs * -(-train[0].shape[0] // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr,
                                                    total_steps=steps)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss = train_epoch(model, *train, optimizer, batch_size, scheduler,
                                 generator, device, progress, desc=f"epoch {epoch}")
        seconds = time.perf_counter() - start
        result = evaluate(model, *val, device=device)
        history.append({"epoch": epoch, "train_loss": train_loss,
                        "val_loss": result["loss"],
                        "val_accuracy": result["accuracy"], "seconds": seconds})
    return history


# fit's settings that the cached TinyCNN's recipe records (its defaults)
_FIT_DEFAULTS = {name: parameter.default for name, parameter
                 in inspect.signature(fit).parameters.items()
                 if name in ("epochs", "batch_size", "max_lr", "seed")}


def reset_uniform(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw every Conv2d and Linear weight and bias from U(−1/√fan_in, 1/√fan_in).

    This is the distribution of PyTorch's default initialisation (fan_in = C_in·kH·kW
    for a convolution, the input size for a linear layer), but drawn as
    ``(2·torch.rand(...) − 1)·bound`` in float64 from a generator seeded with
    ``seed`` and then stored in the parameter's own dtype. PyTorch's ``uniform_``
    rounds differently in the last bit on CPUs with and without fused multiply-add
    (and with ``ATEN_CPU_CAPABILITY=default``); training grows that bit into visibly
    different networks, whereas this draw is the same everywhere. The model is changed
    in place and returned. Used in lab 3, which trains in float64 so that its
    numbers are the same on every CPU.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seed = validate.integer(seed, "seed", 0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                bound = 1 / math.sqrt(layer.weight[0].numel())
                for parameter in (layer.weight, layer.bias):
                    if parameter is None:
                        continue
                    uniform = torch.rand(parameter.shape, generator=generator,
                                         dtype=torch.float64)
                    parameter.copy_((2 * uniform - 1) * bound)
    return model


def init_tinycnn(seed: int = 0, **model_kwargs) -> TinyCNN:
    """A freshly initialised ``TinyCNN`` whose weights depend only on ``seed``.

    PyTorch's default initialisation draws from the global random generator; here it
    draws from a forked copy seeded with ``seed`` (as ``seed_everything(seed)`` would
    seed it), so the result does not depend on what ran before, and the caller's
    random state is left untouched. ``model_kwargs`` go to ``TinyCNN``.
    """
    seed = validate.integer(seed, "seed", 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyCNN(**model_kwargs)


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` (tensors only, on the CPU) to ``path`` atomically.

    The file is written next to its target and then renamed, so a reader never sees
    a half-written file. Read it back with ``torch.load(path, weights_only=True)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    return save_atomic(state, path)


def tinycnn_recipe(**fit_kwargs) -> str:
    """The recipe of the cached TinyCNN, as the text its file records.

    ``fit_kwargs`` override ``fit``'s defaults as in ``train_tinycnn``. A cached file
    that records another recipe (an older course version, other settings) is not
    reused: ``load_or_train_tinycnn`` retrains it.
    """
    settings = {**_FIT_DEFAULTS, **fit_kwargs}
    return (f"TinyCNN init_tinycnn({settings['seed']}); fit on MNIST training images "
            f"0-{60_000 - VALIDATION_SIZE - 1}, validation "
            f"{60_000 - VALIDATION_SIZE}-59999; "
            + ", ".join(f"{name}={settings[name]}" for name in sorted(settings)))


def _save_course_copy(model: nn.Module, path: str | Path, recipe: str) -> Path:
    """Save the cached TinyCNN: ``{"recipe": recipe, "state_dict": weights}``."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    return save_atomic({"recipe": recipe, "state_dict": state}, path)


def train_tinycnn(path: str | Path, progress: bool = True, **fit_kwargs) -> TinyCNN:
    """Train chapter 5's TinyCNN in this process and save it to ``path``.

    Exactly the chapter's run: ``init_tinycnn(seed)`` then ``fit`` on the first
    55,000 MNIST training images, monitored on the last 5,000 (``mnist_train_val``),
    with ``fit``'s defaults (3 epochs, batch size 128, one-cycle max_lr 0.01, seed 0);
    ``fit_kwargs`` override them (tests use that). The file holds
    ``{"recipe": tinycnn_recipe(**fit_kwargs), "state_dict": weights}``. Returns the
    trained network in eval mode.
    """
    recipe = tinycnn_recipe(**fit_kwargs)
    model = init_tinycnn(fit_kwargs.get("seed", 0))
    train_part, val_part = mnist_train_val()
    fit(model, train_part, val_part, progress=progress, **fit_kwargs)
    model.cpu()
    _save_course_copy(model, path, recipe)
    return model.eval()


def _train_in_portable_process(path: Path, progress: bool) -> None:
    """Run ``python -m utils.train path`` in a fresh interpreter in portable CPU mode.

    The portable mode can only be switched on before a process's first tensor
    operation, so a process that has already computed trains in a new one; that way
    the weights are the same bits whichever notebook asked first.
    """
    env = dict(os.environ, **PORTABLE_SETTINGS)
    env[PORTABLE_ENV] = "1"
    if not progress:
        env["TQDM_DISABLE"] = "1"
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    result = subprocess.run([sys.executable, "-m", "utils.train", str(path)], env=env,
                            stdout=None if progress else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"training TinyCNN in a portable-mode process failed "
                           f"(exit code {result.returncode}):\n{result.stderr[-2000:]}")


def _load_tinycnn(path: Path, recipe: str, seed: int = 0) -> TinyCNN | None:
    """The network saved at ``path``, or ``None`` (and the file deleted) when it is
    missing, cannot be loaded (corrupt, truncated, wrong keys or shapes) or was
    trained by another recipe than ``recipe`` (a stale copy, e.g. the weights of an
    older course version, which trained on all 60,000 images: a bare state dict)."""
    if not path.exists():
        return None
    model = init_tinycnn(seed)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("recipe") != recipe:
            raise ValueError("stale: trained by another recipe")
        model.load_state_dict(saved["state_dict"])
    except Exception:  # unreadable, stale or not this model's weights: rebuild
        path.unlink()
        return None
    return model.eval()


def load_or_train_tinycnn(
    path: str | Path | None = None, progress: bool = True, **fit_kwargs
) -> TinyCNN:
    """The TinyCNN trained on MNIST in chapter 5, loaded from ``data/tinycnn_mnist.pt``.

    The file holds the weights (``state_dict``) and the recipe they were trained by
    (``tinycnn_recipe``), and is read with ``weights_only=True``. When it is missing,
    cannot be loaded (corrupt, truncated, wrong keys or shapes) or records another
    recipe (a stale copy), it is deleted and the network is retrained exactly as the
    chapter trains it (``train_tinycnn``), always in the portable CPU mode of
    ``utils.repro``: in this process when the mode is active here, otherwise in a fresh one
    (``python -m utils.train``). So every page gets the same weights, bit for bit,
    whichever page asked first (on any Intel x86 CPU); ``make data`` builds the file
    in advance. ``fit_kwargs`` override ``fit``'s settings (tests use them) and need
    the portable mode in this process.
    """
    path = Path(path) if path is not None else data_dir() / TINYCNN_FILE
    seed = fit_kwargs.get("seed", 0)
    recipe = tinycnn_recipe(**fit_kwargs)
    model = _load_tinycnn(path, recipe, seed)
    if model is not None:
        return model
    if portable_cpu_active():
        return train_tinycnn(path, progress, **fit_kwargs)
    if fit_kwargs:
        raise ValueError("training with other settings than the chapter's "
                         f"({sorted(fit_kwargs)}) needs the portable CPU mode in this "
                         "process: call repro.seed_everything(0, portable=True) first")
    _train_in_portable_process(path, progress)
    model = _load_tinycnn(path, recipe, seed)
    if model is None:
        raise RuntimeError(f"the portable-mode process did not leave a readable {path}")
    return model


def main(argv: list[str] | None = None) -> None:
    """``python -m utils.train [PATH]``: build the cached TinyCNN in portable CPU mode
    (``make data`` runs it) and print its digest."""
    argv = sys.argv[1:] if argv is None else argv
    seed_everything(0, portable=True)
    path = Path(argv[0]) if argv else data_dir() / TINYCNN_FILE
    model = load_or_train_tinycnn(path, progress=not _progress_disabled(True))
    print(f"ok       {path.name} (TinyCNN, digest "
          f"{state_digest(model.state_dict())[:16]})")


if __name__ == "__main__":
    main()
