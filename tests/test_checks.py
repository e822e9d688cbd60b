"""utils.checks: each check passes what it should, and fails with a message to act on.

``check_close`` is compared with NumPy's ``allclose`` (the rule it documents) over many
random cases; the messages are checked word for word where students will read them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from utils.checks import CheckFailed, check_close, check_equal, check_shape, check_true, check_type


def test_check_failed_is_an_assertion_error():
    # nbgrader scores a test cell as failed on any exception; pytest shows assertions.
    assert issubclass(CheckFailed, AssertionError)


# ------------------------------------------------------------------------ check_shape

def test_check_shape_passes_tensors_and_arrays():
    assert check_shape("x", torch.zeros(1, 3, 26, 26), (1, 3, 26, 26)) is True
    assert check_shape("x", np.zeros((2, 5)), [2, 5]) is True


def test_check_shape_message_names_both_shapes_and_the_hint():
    with pytest.raises(CheckFailed) as failure:
        check_shape("edges", torch.zeros(1, 3, 28, 28), (1, 3, 26, 26),
                    hint="did you remove the padding?")
    assert str(failure.value) == ("edges: expected shape (1, 3, 26, 26), got "
                                  "(1, 3, 28, 28): did you remove the padding?")


@pytest.mark.parametrize("value, kind", [
    (None, "None (did the cell return or assign its result?)"),
    ([1, 2], "a list"),
    (3.0, "a float"),
])
def test_check_shape_rejects_non_arrays(value, kind):
    with pytest.raises(CheckFailed, match=r"expected a tensor of shape \(2,\), got "
                                          + re.escape(kind)):
        check_shape("x", value, (2,))


@pytest.mark.parametrize("name", ["", None, 3])
def test_every_check_needs_a_name(name):
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        check_shape(name, torch.zeros(2), (2,))
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        check_equal(name, 1, 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=0, max_size=4),
       st.lists(st.integers(0, 4), min_size=0, max_size=4))
def test_check_shape_agrees_with_tuple_equality(shape, expected):
    value = torch.zeros(shape)
    if tuple(shape) == tuple(expected):
        assert check_shape("x", value, expected)
    else:
        with pytest.raises(CheckFailed):
            check_shape("x", value, expected)


# ------------------------------------------------------------------------ check_close

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 6), elements=finite),
       st.floats(-1e-3, 1e-3), st.sampled_from([0.0, 1e-6, 1e-4]),
       st.sampled_from([0.0, 1e-6, 1e-4]))
def test_check_close_follows_numpy_allclose(expected, shift, atol, rtol):
    value = expected + shift * np.arange(expected.size)
    if np.allclose(value, expected, atol=atol, rtol=rtol):
        assert check_close("x", torch.from_numpy(value), expected, atol=atol, rtol=rtol)
    else:
        with pytest.raises(CheckFailed, match="values differ from the expected ones"):
            check_close("x", torch.from_numpy(value), expected, atol=atol, rtol=rtol)


def test_check_close_accepts_tensors_arrays_lists_and_numbers():
    assert check_close("x", torch.tensor([1.0, 2.0], requires_grad=True), [1, 2])
    assert check_close("x", np.array([[1.0]]), torch.ones(1, 1))
    assert check_close("x", 0.30000001, 0.3)
    assert check_close("x", [0.5, 0.25], np.array([0.5, 0.25]))


def test_check_close_names_the_first_wrong_entry():
    value = torch.zeros(2, 3)
    value[1, 2] = 5.0
    with pytest.raises(CheckFailed) as failure:
        check_close("bank_maps", value, np.zeros((2, 3)), hint="check the order")
    assert str(failure.value) == (
        "bank_maps: 1 of 6 values differ from the expected ones; first at index "
        "(1, 2): expected 0, got 5: check the order")


def test_check_close_scalar_message():
    with pytest.raises(CheckFailed, match=r"^r: expected 26, got 25$"):
        check_close("r", 25, 26)


def test_check_close_shape_mismatch_and_non_finite_values():
    with pytest.raises(CheckFailed, match=r"expected shape \(3,\), got \(2,\)"):
        check_close("x", torch.zeros(2), np.zeros(3))
    with pytest.raises(CheckFailed, match="contains 1 NaN or infinite value"):
        check_close("x", torch.tensor([0.0, float("nan")]), [0.0, 0.0])


def test_check_close_rejects_what_is_not_numbers():
    with pytest.raises(CheckFailed, match="expected numbers .* got None"):
        check_close("x", None, 1.0)
    with pytest.raises(CheckFailed, match="got a str"):
        check_close("x", "1.0", 1.0)
    with pytest.raises(CheckFailed, match="got a bool"):
        check_close("x", True, 1.0)


def test_check_close_author_errors_raise_value_error():
    with pytest.raises(ValueError, match="atol and rtol must be >= 0"):
        check_close("x", 1.0, 1.0, atol=-1)
    with pytest.raises(ValueError, match="expected value must be finite"):
        check_close("x", 1.0, float("nan"))


# ------------------------------------------------------------------------ check_equal

def test_check_equal_plain_values_and_one_element_tensors():
    assert check_equal("n", 26, 26)
    assert check_equal("n", torch.tensor(26), 26)
    assert check_equal("n", np.array([26]), 26)
    assert check_equal("name", "sobel", "sobel")
    assert check_equal("pair", (93248, 10321920), (93248, 10321920))


def test_check_equal_longer_tensors_compare_as_lists():
    assert check_equal("sizes", torch.tensor([16, 32]), (16, 32))
    with pytest.raises(CheckFailed, match=r"expected \[16, 33\], got \[16, 32\]"):
        check_equal("sizes", np.array([16, 32]), (16, 33))


def test_check_equal_message_and_bool_is_not_int():
    with pytest.raises(CheckFailed) as failure:
        check_equal("standard_macs", 10321920.5, 10321920, hint="count MACs per image")
    assert str(failure.value) == ("standard_macs: expected 10321920, got 10321920.5: "
                                  "count MACs per image")
    with pytest.raises(CheckFailed, match="expected 1, got True"):
        check_equal("flag", True, 1)


# ------------------------------------------------------------------- check_type, _true

def test_check_type():
    assert check_type("n", 3, int)
    assert check_type("x", [1], (list, tuple))
    with pytest.raises(CheckFailed, match=r"^layer: expected a Conv2d, got a Linear$"):
        check_type("layer", torch.nn.Linear(1, 1), torch.nn.Conv2d)
    with pytest.raises(CheckFailed, match=r"expected a list or tuple, got a tensor of "
                                          r"shape \(3,\)"):
        check_type("x", torch.zeros(3), (list, tuple))


def test_check_true():
    assert check_true("bias", True, "no bias")
    with pytest.raises(CheckFailed, match=r"^bias: expected no bias \(bias=False\): "
                                          r"set bias=False$"):
        check_true("bias", False, "no bias (bias=False)", hint="set bias=False")
    with pytest.raises(TypeError, match="message must be a non-empty str"):
        check_true("bias", True, "")
