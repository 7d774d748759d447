"""Measured tolerances (SPEC 6.1), dtype policies and the gallery's size budget.

The rule is computed here from the data the fixture records and from catalog/tolerances.yaml, never
restated as numbers: a fixture whose tolerance the rule does not give, a provisional one, one whose
recorded measurements are not the matrix's, or a gallery over its budget fails.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conformance import reference, tolerance
from conformance.compare import compare, matches

from helpers.repo import REPO

GALLERY_BUDGET = 6 * 2 ** 20   # bytes; README states it (the wheel ships the gallery)


def _measured_ids() -> set[str]:
    ids = set()
    for path in (REPO / "catalog").glob("*.yaml"):
        if path.name == "tolerances.yaml":  # the measurements, not a catalog file
            continue
        data = yaml.safe_load(path.read_text())
        defaults = data.get("defaults", {})
        ids |= {e["id"] for e in data["fixtures"] if e.get("tolerance", defaults.get("tolerance")) == "measured"}
    return ids


MEASURED = _measured_ids()


@pytest.fixture(scope="module")
def measured(gallery):
    found = [f for f in gallery if f.id in MEASURED]
    assert {f.id for f in found} == MEASURED, "a measured catalog entry has no fixture"
    return found


def test_round_up_to_one_significant_digit():
    assert tolerance.round_up(3.2e-4) == 4e-4
    assert tolerance.round_up(4e-4) == 4e-4
    assert tolerance.round_up(9.5e-3) == 1e-2
    assert tolerance.round_up(1e-15) == 1e-15
    with pytest.raises(tolerance.ToleranceError):
        tolerance.round_up(0.0)


def test_the_rule_takes_the_largest_source_or_the_unit_roundoff():
    got = tolerance.from_measurements({"a/keras": 1.2e-3, "b/keras": 3.1e-3}, "float16")
    assert got["atol"] == 0.04 and got["rtol"] == 0.0 and got["basis"]["largest_measured"] == 3.1e-3
    small = tolerance.from_measurements({"a/keras": 1e-4}, "float16")  # below float16's unit roundoff, 2**-11
    assert small["atol"] == tolerance.round_up(tolerance.MARGIN * 2.0 ** -11) == 0.005
    floor = tolerance.from_measurements({"a/keras": 0.0}, "float64")
    assert floor["atol"] == tolerance.round_up(tolerance.MARGIN * tolerance.UNIT_ROUNDOFF["float64"])
    assert floor["basis"]["sources"] == {"a/keras": 0.0}


def test_matrix_differences_count_keras_cases_compared_and_leave_out_ledger_and_skips(tmp_path):
    cases = [{"impl": "keras", "fixture": "f", "status": "passed", "max_abs_error": 1e-4},
             {"impl": "keras-load", "fixture": "f", "status": "failed", "max_abs_error": 3e-4},
             {"impl": "keras", "fixture": "f", "status": "xfailed", "max_abs_error": 0.5},     # a ledger entry
             {"impl": "keras", "fixture": "f", "status": "skipped", "max_abs_error": None},
             {"impl": "tflite", "fixture": "f", "status": "failed", "max_abs_error": 0.9},     # not Keras
             {"impl": "keras", "fixture": "other", "status": "passed", "max_abs_error": 0.7}]  # not measured
    (tmp_path / "tf221").mkdir()
    (tmp_path / "tf221" / "summary.json").write_text(json.dumps({"cases": cases}))
    (tmp_path / "jax").mkdir()  # no summary: an env that did not run
    found = tolerance.matrix_differences([tmp_path / "tf221", tmp_path / "jax"], {"f"})
    assert found == {"f": {"tf221/keras": 1e-4, "tf221/keras-load": 3e-4}}


def test_precision_of_each_policy():
    assert tolerance.precision({"dtype": "mixed_bfloat16"}) == {
        "policy": "mixed_bfloat16", "variables": "float32", "compute": "bfloat16", "outputs": "bfloat16"}
    assert tolerance.precision({})["compute"] == "float32"
    with pytest.raises(tolerance.ToleranceError, match="mixed_int8"):
        tolerance.precision({"dtype": "mixed_int8"})


def test_every_measured_fixture_has_the_tolerance_the_rule_gives_from_its_measurements(measured):
    recorded = tolerance.read_measurements(REPO / "catalog" / "tolerances.yaml")
    for fixture in measured:
        tol = fixture.tolerance
        basis = tol["basis"]
        assert not basis.get("provisional"), f"{fixture.id}: provisional tolerance shipped (SPEC 6.1)"
        matrix = {k: v for k, v in basis["sources"].items() if k != "reference-float64"}
        assert matrix == recorded.get(fixture.id), f"{fixture.id}: measurements differ from catalog/tolerances.yaml"
        assert len(matrix) >= 3, f"{fixture.id}: measured in fewer than three envs"
        compute = tolerance.precision(fixture.config)["compute"]
        assert basis["compute_dtype"] == compute
        again = tolerance.from_measurements(basis["sources"], compute)
        assert (tol["atol"], tol["rtol"]) == (again["atol"], again["rtol"]), fixture.id


def test_the_recorded_reference_difference_is_the_float64_reference_s(measured):
    for fixture in measured:
        ref = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                                fixture.activations, fixture.inputs, calls=fixture.meta.get("calls"))
        own = max(float(np.max(np.abs(ref[k] - v.astype(np.float64)))) for k, v in fixture.expected.items())
        assert fixture.tolerance["basis"]["sources"]["reference-float64"] == pytest.approx(own, rel=1e-2), fixture.id


def test_expected_arrays_are_stored_in_the_dtype_keras_returns(gallery):
    for fixture in gallery:
        policy = fixture.meta.get("precision")
        if "dtype" in fixture.config:
            assert policy == tolerance.precision(fixture.config), fixture.id
        stored = tolerance.stored_dtype((policy or {"outputs": "float32"})["outputs"])
        assert {v.dtype for v in fixture.expected.values()} == {stored}, fixture.id
        if policy and policy["outputs"] == "bfloat16":  # float32 values that are exactly bfloat16 numbers
            for v in fixture.expected.values():
                assert np.all((v.view(np.uint32) & np.uint32(0xFFFF)) == 0), fixture.id


def test_a_float32_port_passes_mixed_precision_and_fails_float64_with_the_reason(gallery):
    """The decision of SPEC 6.1: float32 computation is within a mixed precision fixture's tolerance (the numpy
    reference cast to float32 is that port) and outside a float64 fixture's, with a message that says why."""
    for fixture in gallery:
        compute = (fixture.meta.get("precision") or {}).get("compute")
        if compute not in ("float16", "bfloat16", "float64"):
            continue
        ref = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                                fixture.activations, fixture.inputs, calls=fixture.meta.get("calls"))
        as_float32 = {k: v.astype(np.float32) for k, v in ref.items() if k != "trace"}
        if compute != "float64":
            assert matches(fixture, as_float32), fixture.id
            continue
        assert not matches(fixture, as_float32), fixture.id
        verdict = compare(fixture, as_float32, "float32-port")
        assert "the size of float32 rounding; this layer computes in float64" in verdict.message, verdict.message


def test_the_gallery_fits_its_size_budget():
    size = sum(p.stat().st_size for p in (REPO / "fixtures").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size <= GALLERY_BUDGET, f"fixtures/ holds {size} bytes, over the {GALLERY_BUDGET}-byte budget (README)"
