"""Checks for the labs' autograded test cells, with feedback a student can act on.

A failed check raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader scores
the test cell as failed) whose message says what was checked, what was expected, what
was received and, when the author gave one, a hint about the likely mistake::

    check_shape("edges", edges, (1, 3, 26, 26), hint="did you remove the padding?")
    # CheckFailed: edges: expected shape (1, 3, 26, 26), got (1, 3, 28, 28):
    # did you remove the padding?

Every function returns ``True`` when the check passes, so a test cell may also end with
one to show ``True``. Used by the notebooks in ``labs/`` (see the instructor guide).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["CheckFailed", "check_type", "check_shape", "check_close", "check_equal",
           "check_true"]


class CheckFailed(AssertionError):
    """A lab check failed; the message tells the student what to fix."""


def _fail(name: str, message: str, hint: str | None) -> None:
    text = f"{name}: {message}"
    if hint:
        text += f": {hint}"
    raise CheckFailed(text)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str naming the checked value, "
                        f"got {name!r}")
    return name


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if value is None:
        return "None (did the cell return or assign its result?)"
    return f"a {type(value).__name__}"


def _as_array(name: str, value: Any, hint: str | None) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    if isinstance(value, (int, float, bool, np.number)) and not isinstance(value, bool):
        return np.asarray(float(value))
    if isinstance(value, Sequence) and not isinstance(value, str):
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    _fail(name, f"expected numbers (a tensor, array or number), got {_kind(value)}", hint)
    raise AssertionError("unreachable")  # pragma: no cover


def check_type(name: str, value: Any, expected: type | tuple[type, ...],
               hint: str | None = None) -> bool:
    """Check that ``value`` is an instance of ``expected``."""
    name = _check_name(name)
    if not isinstance(value, expected):
        wanted = (" or ".join(t.__name__ for t in expected)
                  if isinstance(expected, tuple) else expected.__name__)
        _fail(name, f"expected a {wanted}, got {_kind(value)}", hint)
    return True


def check_shape(name: str, value: Any, expected: Sequence[int],
                hint: str | None = None) -> bool:
    """Check that a tensor or array has exactly the shape ``expected``."""
    name = _check_name(name)
    expected = tuple(int(size) for size in expected)
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        _fail(name, f"expected a tensor of shape {expected}, got {_kind(value)}", hint)
    got = tuple(value.shape)
    if got != expected:
        _fail(name, f"expected shape {expected}, got {got}", hint)
    return True


def check_close(name: str, value: Any, expected: Any, *, atol: float = 1e-4,
                rtol: float = 1e-4, hint: str | None = None) -> bool:
    """Check that ``value`` equals ``expected`` elementwise within a tolerance.

    Passes when ``|value - expected| <= atol + rtol·|expected|`` everywhere (NumPy's
    ``allclose`` rule). Shapes must match exactly; the message on failure names the
    number of wrong entries and the first one.
    """
    name = _check_name(name)
    if not (atol >= 0 and rtol >= 0):
        raise ValueError(f"atol and rtol must be >= 0, got atol={atol}, rtol={rtol}")
    got = _as_array(name, value, hint)
    want = _as_array(f"{name} (expected value)", expected, None)
    if not np.isfinite(want).all():
        raise ValueError(f"{name}: the expected value must be finite (NaN compares "
                         f"as close to anything here)")
    if got.shape != want.shape:
        _fail(name, f"expected shape {want.shape}, got {got.shape}", hint)
    if not np.isfinite(got).all():
        _fail(name, f"contains {int((~np.isfinite(got)).sum())} NaN or infinite "
                    f"value(s)", hint)
    wrong = np.abs(got - want) > atol + rtol * np.abs(want)
    if wrong.any():
        if got.ndim == 0:
            _fail(name, f"expected {want.item():.6g}, got {got.item():.6g}", hint)
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        _fail(name, f"{int(wrong.sum())} of {wrong.size} values differ from the "
                    f"expected ones; first at index {first}: expected "
                    f"{want[first]:.6g}, got {got[first]:.6g}", hint)
    return True


def check_equal(name: str, value: Any, expected: Any, hint: str | None = None) -> bool:
    """Check exact equality of plain values (ints, strings, tuples, ...).

    A one-element tensor or array counts as its number, so ``torch.tensor(3)`` equals
    ``3``; a longer one counts as its list of values, so ``torch.tensor([1, 2])``
    equals ``(1, 2)``; ``True`` never equals ``1``.
    """
    name = _check_name(name)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if int(np.prod(value.shape)) == 1:
            value = value.item()
        else:  # compare the values as a list (an array's == is elementwise)
            value = value.tolist()
            if isinstance(expected, (tuple, list)):
                expected = list(expected)
    if isinstance(value, bool) != isinstance(expected, bool) or value != expected:
        _fail(name, f"expected {expected!r}, got {value!r}", hint)
    return True


def check_true(name: str, condition: Any, message: str, hint: str | None = None) -> bool:
    """Check a condition; ``message`` says what should hold (e.g. 'all values >= 0')."""
    name = _check_name(name)
    if not isinstance(message, str) or not message:
        raise TypeError("message must be a non-empty str saying what should hold")
    if not bool(condition):
        _fail(name, f"expected {message}", hint)
    return True
