"""The classifier of ``generate_fixtures.py --check`` (``conformance.rounding``, SPEC 4.5), on arrays moved by
exactly n ulps with ``np.nextafter``: identical, platform rounding, or a real change, in every dtype a fixture
stores (SPEC 3.2), with NaN, infinities, shape and dtype changes."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import rounding
from conformance.rounding import CHANGED, IDENTICAL, ROUNDING, ULPS, classify_array, tolerance_change

ATOL = 1e-5


def _values(dtype) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.uniform(-1, 1, (3, 4, 5)).astype(dtype)
    values.flat[0] = dtype(0.75)  # the largest magnitude: the array's ulp is the spacing at 0.75
    return values


def _moved(stored: np.ndarray, n: int, index=(1, 2, 3)) -> np.ndarray:
    """``stored`` with one element moved up by exactly n ulps of the array's largest magnitude."""
    moved = stored.copy()
    step = np.spacing(stored.dtype.type(np.max(np.abs(stored))))
    moved[index] = stored[index] + step * stored.dtype.type(n)
    return moved


def _nextafter(stored: np.ndarray, n: int, index=(1, 2, 3)) -> np.ndarray:
    moved = stored.copy()
    for _ in range(n):
        moved[index] = np.nextafter(moved[index], stored.dtype.type(np.inf))
    return moved


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_identical_and_within_the_bound_in_each_dtype(dtype):
    stored = _values(dtype)
    assert classify_array("output", stored, stored.copy(), ATOL).kind == IDENTICAL
    top = (0, 0, 0)  # the largest element: its own ulps are the array's
    for n in (1, 2, ULPS):
        got = classify_array("output", stored, _nextafter(stored, n, top), ATOL if dtype != np.float16 else 1.0)
        assert (got.kind, got.ulps) == (ROUNDING, n), (dtype, n, got)
        assert got.abs == pytest.approx(n * float(np.spacing(dtype(0.75))))
    beyond = classify_array("output", stored, _nextafter(stored, ULPS + 1, top), 1.0)
    assert beyond.kind == CHANGED and f"{ULPS + 1:.3g} ulps" in beyond.detail and "[0, 0, 0]" in beyond.detail


def test_ulps_are_the_arrays_scale_not_the_elements():
    """An element near zero moved by an ulp of the array's scale is rounding, though thousands of its own ulps."""
    stored = _values(np.float32)
    stored[1, 2, 3] = np.float32(1e-6)
    moved = _moved(stored, 2)
    own_ulps = abs(float(moved[1, 2, 3]) - 1e-6) / float(np.spacing(np.float32(1e-6)))
    got = classify_array("output", stored, moved, ATOL)
    assert own_ulps > 1000 and (got.kind, got.ulps) == (ROUNDING, 2)


def test_a_quarter_of_atol_bounds_rounding_too():
    stored = _values(np.float32)
    moved = _moved(stored, 4)
    difference = float(moved[1, 2, 3]) - float(stored[1, 2, 3])
    assert classify_array("output", stored, moved, atol=4.01 * difference).kind == ROUNDING
    got = classify_array("output", stored, moved, atol=3.99 * difference)
    assert got.kind == CHANGED and "[1, 2, 3]" in got.detail


def test_a_real_change_names_index_stored_regenerated_and_ulps():
    stored = _values(np.float32)
    moved = stored.copy()
    moved[2, 0, 1] += np.float32(0.01)
    got = classify_array("state_h", stored, moved, ATOL)
    assert got.kind == CHANGED
    assert f"changed at [2, 0, 1]: stored {float(stored[2, 0, 1])!r}, regenerated {float(moved[2, 0, 1])!r}" \
        in got.detail, got.detail
    ulps = (float(moved[2, 0, 1]) - float(stored[2, 0, 1])) / float(np.spacing(np.float32(0.75)))
    assert f"({ulps:.3g} ulps of" in got.detail and str(got).startswith("state_h: changed at")


def test_bfloat16_values_count_bfloat16_ulps():
    """A mixed_bfloat16 output is stored as float32 holding bfloat16 numbers: one bfloat16 ulp is 2^16 float32 ulps."""
    stored = _values(np.float32)
    bf16_ulp = float(np.spacing(np.float32(0.75))) * 2 ** 16
    moved = stored.copy()
    moved[0, 1, 1] = stored[0, 1, 1] + np.float32(bf16_ulp)
    assert classify_array("output", stored, moved, 1.0, "bfloat16").kind == ROUNDING
    assert classify_array("output", stored, moved, 1.0).kind == CHANGED
    assert rounding.value_dtypes({"outputs": ["output", "state_h"], "precision": {"outputs": "bfloat16"}}) == \
        {"output": "bfloat16", "state_h": "bfloat16"}
    assert rounding.value_dtypes({"outputs": ["output"], "precision": {"outputs": "float16"}}) == {}


def test_nan_and_infinities():
    stored = _values(np.float32)
    for special in (np.nan, np.inf, -np.inf):
        moved = stored.copy()
        moved[0, 2, 2] = special
        got = classify_array("output", stored, moved, ATOL)
        assert got.kind == CHANGED and "[0, 2, 2]" in got.detail and "inf ulps" in got.detail, got
        assert classify_array("output", moved, stored, ATOL).kind == CHANGED
    both = stored.copy()
    both[0, 2, 2] = np.inf
    assert classify_array("output", both, both.copy(), ATOL).kind == IDENTICAL
    nan = stored.copy()
    nan[0, 2, 2] = np.nan
    moved = _moved(stored, 1)
    moved[0, 2, 2] = np.nan
    assert classify_array("output", nan, moved, ATOL).kind == ROUNDING  # NaN where NaN was
    flipped = both.copy()
    flipped[0, 2, 2] = -np.inf
    assert classify_array("output", both, flipped, ATOL).kind == CHANGED


def test_shape_dtype_and_masks():
    stored = _values(np.float32)
    assert "float32[3, 4, 5] on disk, float32[3, 4, 6] now" in \
        classify_array("x", stored, np.zeros((3, 4, 6), np.float32), ATOL).detail
    assert classify_array("x", stored, stored.astype(np.float64), ATOL).kind == CHANGED
    mask = np.ones((2, 3), bool)
    flipped = mask.copy()
    flipped[1, 2] = False
    assert classify_array("mask", mask, mask.copy(), ATOL).kind == IDENTICAL
    got = classify_array("mask", mask, flipped, ATOL)
    assert got.kind == CHANGED and "[1, 2]" in got.detail


def test_an_all_zero_array_has_no_room_for_rounding():
    """Its ulp is the smallest subnormal: anything but the next few numbers after zero is a real change."""
    zeros = np.zeros(4, np.float32)
    assert classify_array("output", zeros, _nextafter(zeros, ULPS, (2,)), ATOL).kind == ROUNDING
    moved = zeros.copy()
    moved[2] = np.float32(1e-9)
    assert classify_array("output", zeros, moved, ATOL).kind == CHANGED


def test_a_fixture_is_as_bad_as_its_worst_difference():
    fixture = rounding.FixtureDifference([rounding.ArrayDifference("a", IDENTICAL),
                                          rounding.ArrayDifference("b", ROUNDING, 2.0, 1e-7)])
    assert fixture.kind == ROUNDING and fixture.largest() == (2.0, 1e-7)
    fixture.changes.append("field 'config' differs")
    assert fixture.kind == CHANGED and str(fixture) == "field 'config' differs"
    assert rounding.FixtureDifference([rounding.ArrayDifference("a", IDENTICAL)]).kind == IDENTICAL


def _tolerance(reference: float, others=None) -> dict:
    sources = {"tf221/keras": 1.79e-07, **(others or {}), rounding.REFERENCE_SOURCE: reference}
    return {"atol": 2e-06, "rtol": 0.0, "basis": {"rule": "r", "compute_dtype": "float32",
                                                    "largest_measured": max(sources.values()), "sources": sources}}


def test_the_reference_measurement_follows_the_arrays():
    """scale-gru-256u-100t regenerated with oneDNN limited to AVX2: reference-float64 1.74e-07 -> 1.35e-07 while
    its arrays moved 2.09e-07; the atol (what the fixture asserts) is the same."""
    assert tolerance_change(_tolerance(1.74e-07), _tolerance(1.35e-07), arrays_moved=2.09e-07) is None
    assert tolerance_change(_tolerance(1.74e-07), _tolerance(1.99e-07), arrays_moved=2.09e-07) is None
    assert "more than the arrays moved" in tolerance_change(_tolerance(1.74e-07), _tolerance(1.35e-07), 1e-08)
    other = _tolerance(1.35e-07)
    other["atol"] = 3e-06
    assert tolerance_change(_tolerance(1.74e-07), other, 2.09e-07) == "field 'tolerance' differs"
    env = _tolerance(1.74e-07, {"jax/keras": 1e-7})
    assert tolerance_change(_tolerance(1.74e-07), env, 2.09e-07) == "field 'tolerance' differs"
    wrong = _tolerance(1.35e-07)
    wrong["basis"]["largest_measured"] = 1e-6
    assert "largest_measured" in tolerance_change(_tolerance(1.74e-07), wrong, 2.09e-07)
    fixed = {"atol": 1e-5, "rtol": 1e-4}
    assert tolerance_change(fixed, dict(fixed), 0.0) is None
    assert tolerance_change(fixed, {"atol": 2e-5, "rtol": 1e-4}, 0.0) == "field 'tolerance' differs"
