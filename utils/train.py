"""Training and evaluation loops on pre-built tensors, and the cached trained TinyCNN.

The loop is derived in ``chapters/05_tinycnn_mnist.ipynb``. Mini-batches are slices of
tensors already in memory (no per-sample PIL transforms), shuffled by a seeded
generator, so a run is fast and repeatable. Progress bars (tqdm) show in JupyterLab and
Colab; the course's test run sets ``TQDM_DISABLE=1`` so committed outputs stay quiet.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import MNIST_MEAN, MNIST_STD, data_dir, dataset_tensors, load_mnist
from .models import TinyCNN
from .repro import seed_everything

__all__ = ["batches", "train_epoch", "evaluate", "fit", "mnist_tensors",
           "load_or_train_tinycnn", "TINYCNN_FILE"]

TINYCNN_FILE = "tinycnn_mnist.pt"


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


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int,
    shuffle: bool = False, generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[idx], y[idx])`` mini-batches, in a seeded random order if asked."""
    _check_pair(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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
               desc=desc, leave=False, disable=None if progress else True)
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


def fit(
    model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor], epochs: int = 3, batch_size: int = 128,
    max_lr: float = 0.01, seed: int = 0, device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train with Adam under a one-cycle learning-rate schedule; evaluate every epoch.

    Returns one row per epoch: epoch, train_loss, test_loss, test_accuracy, seconds
    (training time of that epoch, excluding evaluation).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    generator = seed_everything(seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=max_lr)
    steps = epochs * -(-train[0].shape[0] // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr, total_steps=steps)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss = train_epoch(model, *train, optimizer, batch_size, scheduler,
                                 generator, device, progress, desc=f"epoch {epoch}")
        seconds = time.perf_counter() - start
        result = evaluate(model, *test, device=device)
        history.append({"epoch": epoch, "train_loss": train_loss,
                        "test_loss": result["loss"],
                        "test_accuracy": result["accuracy"], "seconds": seconds})
    return history


def load_or_train_tinycnn(
    path: str | Path | None = None, progress: bool = True, **fit_kwargs
) -> TinyCNN:
    """The TinyCNN trained on MNIST in chapter 5, loaded from ``data/tinycnn_mnist.pt``.

    The file holds only a ``state_dict`` and is read with ``weights_only=True``. When it
    is missing or cannot be loaded (corrupt, wrong shapes), the network is retrained
    with ``fit`` (same seed, so the same weights) and saved again.
    """
    path = Path(path) if path is not None else data_dir() / TINYCNN_FILE
    model = TinyCNN()
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:
            path.unlink()
    fit(model, mnist_tensors(True), mnist_tensors(False), progress=progress, **fit_kwargs)
    model.cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()
