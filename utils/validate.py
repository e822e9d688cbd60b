"""Argument checks shared by every module of ``utils``.

Each check returns the value in its canonical form (``int``, ``float``, a pair of ints,
...) or raises with a message that names the argument, the accepted range and what it
got: ``TypeError`` when the kind of value is wrong, ``ValueError`` when its value is.
``allocation`` refuses, before PyTorch tries, a tensor larger than this machine's
memory, and says how much it would need. ``tests/test_validate.py`` checks every
message.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "integer", "odd_size", "integer_pair", "shape", "boolean", "real", "tensor",
    "window_fits", "memory_limit", "allocation",
]


def integer(value: Any, name: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """``value`` as an int (NumPy integers accepted, bools refused) in
    [``minimum``, ``maximum``] (either bound may be None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def odd_size(value: Any, name: str = "size") -> int:
    """A kernel side: an odd positive int (1, 3, 5, ...), so the kernel has a centre."""
    value = integer(value, name)
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd positive int (1, 3, 5, ...), got {value}")
    return value


def integer_pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each at least ``minimum``, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be an int or a pair of ints, got {len(value)} values "
                f"{tuple(value)}")
        return (integer(value[0], name, minimum), integer(value[1], name, minimum))
    value = integer(value, name, minimum)
    return (value, value)


def shape(value: Any, name: str, length: int | None = None,
          layout: str = "") -> tuple[int, ...]:
    """A shape: a sequence of positive ints (``length`` of them when given; ``layout``
    such as "(C, H, W)" names the axes in the message)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, torch.Size)) \
            or not value or (length is not None and len(value) != length):
        wanted = f"{length} positive ints {layout}".rstrip() if length else \
            f"a sequence of positive ints {layout}".rstrip()
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return tuple(integer(size, f"every size in {name}", 1) for size in value)


def boolean(value: Any, name: str) -> bool:
    """``value`` if it is True or False (not 0, 1 or None)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def real(value: Any, name: str, *, minimum: float | None = None,
         positive: bool = False) -> float:
    """``value`` as a finite float (ints accepted, bools refused); ``positive`` asks
    for > 0, ``minimum`` for >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def tensor(value: Any, name: str, layout: str | Sequence[str]) -> Tensor:
    """A non-empty floating-point tensor with one dimension per entry of ``layout``
    (e.g. "NCHW", or a tuple of axis names)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != len(layout):
        raise ValueError(
            f"{name} must be a {len(layout)}-D tensor ({', '.join(layout)}), got shape "
            f"{tuple(value.shape)} ({value.dim()}-D)")
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor (convert it with .float()), got "
            f"dtype {value.dtype}")
    return value


def window_fits(n: int, kernel: int, padding_total: int, dilation: int,
                axis: str) -> None:
    """Refuse a window (kernel ``kernel`` at dilation ``dilation``) that is larger than
    the input ``n`` plus its padding along ``axis``: it would give no output."""
    effective = dilation * (kernel - 1) + 1
    if effective > n + padding_total:
        raise ValueError(
            f"kernel larger than padded input along {axis}: effective kernel "
            f"d(k-1)+1 = {effective} > padded input {n} + {padding_total} = "
            f"{n + padding_total}")


def memory_limit() -> int:
    """Bytes one tensor may take: this machine's physical memory, or the value of the
    environment variable ``COURSE_MEMORY_LIMIT`` (bytes) when it is set."""
    configured = os.environ.get("COURSE_MEMORY_LIMIT")
    if configured:
        return int(configured)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: 16 GiB
        return 16 << 30


def _readable(n_bytes: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20),
                       ("KiB", 1 << 10)):
        if n_bytes >= size:
            return f"{n_bytes / size:,.1f} {unit}"
    return f"{n_bytes} bytes"


def allocation(sizes: Sequence[int], dtype: torch.dtype, what: str) -> None:
    """Refuse a tensor of shape ``sizes`` and ``dtype`` that cannot fit in memory.

    PyTorch would fail inside its allocator with a raw ``RuntimeError`` (or start
    swapping); this says which tensor it is and the size it would need.
    """
    n_bytes = math.prod(int(size) for size in sizes) * torch.empty(
        (), dtype=dtype).element_size()
    limit = memory_limit()
    if n_bytes > limit:
        raise MemoryError(
            f"{what} would need {_readable(n_bytes)} ({' × '.join(map(str, sizes))} "
            f"values of {dtype}), more than the {_readable(limit)} of memory here; "
            f"use a smaller input, batch, kernel or padding")
