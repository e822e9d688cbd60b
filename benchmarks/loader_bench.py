"""How fast can TinyCNN be fed? Pre-built tensors against the textbook DataLoader.

Chapter 5 (``chapters/05_tinycnn_mnist.ipynb``) trains from MNIST held in memory as
one normalised float tensor, sliced into mini-batches by ``utils.train.batches``. The
textbook loop instead builds every sample on the fly::

    DataLoader(MNIST(root, transform=ToTensor()), batch_size=128, shuffle=True)

which turns each 28×28 uint8 array into a PIL image, back into a tensor, and collates
128 of them per batch. This script measures both loops, with the same model
(``utils.train.init_tinycnn(0)``, channels-last as ``utils.train.fit`` trains it),
batch size and optimiser (Adam), in samples per
second, twice: the loader alone, and the loader plus a training step
(forward, cross-entropy, backward, Adam step). Each measurement runs ``--batches``
batches after a short warm-up, ``--repeats`` times; the best repeat is reported,
because on a shared machine the fastest run is the least disturbed one.

    python benchmarks/loader_bench.py                 # defaults: 2 threads
    python benchmarks/loader_bench.py --batches 100 --repeats 5

``compare_loops`` returns the same numbers as a dict, for use from Python.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

from utils.data import load_mnist
from utils.train import batches, init_tinycnn, mnist_tensors, prepare_for_training

WARMUP_BATCHES = 5
LOOPS = {
    "course": "course: utils.train.batches on pre-built tensors",
    "textbook": "textbook: DataLoader(MNIST(transform=ToTensor()))",
}


def course_batches(batch_size: int, seed: int = 0) -> Callable[[], Iterator]:
    """A factory of shuffled epochs over MNIST pre-built as normalised tensors.

    The tensors are built once, outside the timed region (as in chapter 5).
    """
    images, labels = mnist_tensors(train=True)
    generator = torch.Generator().manual_seed(seed)

    def epoch() -> Iterator:
        return batches(images, labels, batch_size, shuffle=True, generator=generator)

    return epoch


def textbook_batches(batch_size: int, seed: int = 0) -> Callable[[], Iterator]:
    """A factory of shuffled epochs from the textbook per-sample PIL pipeline."""
    dataset = load_mnist(train=True, transform=ToTensor())
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=generator)
    return lambda: iter(loader)


def _samples_per_second(
    make_epoch: Callable[[], Iterator], n_batches: int, step: Callable | None
) -> float:
    """Time ``n_batches`` batches (after a warm-up) and return samples per second."""
    batch_iter: Iterable = itertools.chain.from_iterable(
        make_epoch() for _ in itertools.count())
    for images, labels in itertools.islice(batch_iter, WARMUP_BATCHES):
        if step is not None:
            step(images, labels)
    samples = 0
    start = time.perf_counter()
    for images, labels in itertools.islice(batch_iter, n_batches):
        if step is not None:
            step(images, labels)
        samples += images.shape[0]
    return samples / (time.perf_counter() - start)


def _training_step(seed: int = 0) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """Forward, cross-entropy, backward and Adam step of a fresh seeded TinyCNN, in
    the channels-last layout that ``utils.train.fit`` trains in."""
    model = prepare_for_training(init_tinycnn(seed)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def compare_loops(
    n_batches: int = 100, batch_size: int = 128, repeats: int = 3,
    threads: int | None = 2, seed: int = 0,
) -> dict[str, object]:
    """Samples per second of the course's loop and the textbook loop.

    Returns ``{"rows": [{"loop", "loader_only", "train_step"}, ...], "speedup":
    {"loader_only": ratio, "train_step": ratio}, "settings": {...}}``; each rate is
    the best of ``repeats`` runs of ``n_batches`` batches. ``threads`` sets PyTorch's
    intra-op threads (2, the reference machine's cores; ``None`` keeps the current).
    """
    for name, value in (("n_batches", n_batches), ("batch_size", batch_size),
                        ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    factories = {"course": course_batches(batch_size, seed),
                 "textbook": textbook_batches(batch_size, seed)}
    rates: dict[str, dict[str, float]] = {name: {} for name in factories}
    for _ in range(repeats):  # interleave the loops so machine noise hits both
        for name, make_epoch in factories.items():
            for kind in ("loader_only", "train_step"):
                step = _training_step(seed) if kind == "train_step" else None
                rate = _samples_per_second(make_epoch, n_batches, step)
                rates[name][kind] = max(rate, rates[name].get(kind, 0.0))
    rows = [{"loop": LOOPS[name], **rates[name]} for name in factories]
    speedup = {kind: rates["course"][kind] / rates["textbook"][kind]
               for kind in ("loader_only", "train_step")}
    settings = {"n_batches": n_batches, "batch_size": batch_size, "repeats": repeats,
                "threads": torch.get_num_threads()}
    return {"rows": rows, "speedup": speedup, "settings": settings}


def format_table(result: dict[str, object]) -> str:
    """The result of ``compare_loops`` as a plain-text table with the ratios."""
    width = max(len(row["loop"]) for row in result["rows"])
    lines = [f"{'loop':{width}}  {'loader only':>13}  {'train step':>12}  (samples/s)"]
    for row in result["rows"]:
        lines.append(f"{row['loop']:{width}}  {row['loader_only']:13,.0f}  "
                     f"{row['train_step']:12,.0f}")
    speedup = result["speedup"]
    lines.append(f"{'speed-up (course / textbook)':{width}}  "
                 f"{speedup['loader_only']:12.1f}×  {speedup['train_step']:11.2f}×")
    s = result["settings"]
    lines.append(f"best of {s['repeats']} runs of {s['n_batches']} batches of "
                 f"{s['batch_size']}, {s['threads']} threads")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100,
                        help="timed batches per run (default 100)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per loop; the best is reported (default 3)")
    parser.add_argument("--threads", type=int, default=2,
                        help="PyTorch threads (default 2, the reference machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = compare_loops(args.batches, args.batch_size, args.repeats, args.threads,
                           args.seed)
    print(format_table(result))
    return result


if __name__ == "__main__":
    main()
