"""Reproducibility: seeds, deterministic algorithms, a fixed thread count, the device.

Every notebook starts with ``seed_everything(0)`` so that re-running it prints the same
numbers (explained in ``chapters/00_getting_started.ipynb``).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

THREADS_ENV = "COURSE_NUM_THREADS"


def seed_everything(seed: int = 0, threads: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and PyTorch and switch on deterministic algorithms.

    ``threads`` fixes PyTorch's intra-op thread count; when it is ``None`` the
    environment variable ``COURSE_NUM_THREADS`` is used if set (the test suite sets it
    to 2, the reference machine's core count), otherwise PyTorch's default is kept.
    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own
    stream of random numbers.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


def get_device(prefer_gpu: bool = True) -> torch.device:
    """Return ``cuda`` when a GPU is present (and wanted), else ``cpu``.

    The course runs on a CPU; a GPU only makes training and activation maximisation
    faster.
    """
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
