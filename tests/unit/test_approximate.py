"""The approximate-port rule (SPEC 7.8) on a fixed-point LSTM written here, independently of the reference.

The port rounds its weights, inputs and every intermediate value (pre-activations, gates, states) to the grid of
``ap_fixed<16,6>`` (step 2**-10) and declares that format. Computed correctly it is nearer Keras than every
catalogued mistake by the margin; with the forget and input gate blocks read in the wrong order it is named.
"""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest

from conformance.format.fixtures import load_fixture
from conformance.judge import approximate, registry
from conformance.judge.compare import compare
from conformance.judge.contract import Contract, implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status
from conformance.records import Approximate, Record, schema_path

from conftest import REPO

FORMAT = "ap_fixed<16,6>"
STEP = 2.0 ** -10
SWAPPED = ("f", "i", "c", "o")   # block k read as gate SWAPPED[k]: the i and f blocks exchanged


def fixed(a, step=STEP, integer_bits=6):
    """``a`` on the ap_fixed grid: rounded to a multiple of ``step``, saturated to the signed range."""
    bound = 2.0 ** (integer_bits - 1)
    return np.clip(np.round(np.asarray(a, np.float64) / step) * step, -bound, bound - step)


def fixed_point_lstm(fixture, order=("i", "f", "c", "o")) -> dict:
    """A plain LSTM (no mask, forwards, zero initial state) on the fixed-point grid; block k read as gate order[k]."""
    cfg = fixture.config
    kernel, recurrent, bias = (fixed(fixture.weights[n]) for n in ("kernel", "recurrent_kernel", "bias"))
    blocks = [fixture.gates["kernel"][g] for g in ("i", "f", "c", "o")]
    take = {gate: slice(*blocks[k]) for k, gate in enumerate(order)}
    x = fixed(fixture.inputs["x"])
    batch, steps, _ = x.shape
    units = int(cfg["units"])
    h, c = np.zeros((batch, units)), np.zeros((batch, units))
    sigmoid = lambda v: fixed(1 / (1 + np.exp(-v)))  # noqa: E731
    sequence = []
    for t in range(steps):
        z = fixed(x[:, t] @ kernel + h @ recurrent + bias)
        i, f, o = (sigmoid(z[:, take[g]]) for g in ("i", "f", "o"))
        c = fixed(f * c + i * fixed(np.tanh(z[:, take["c"]])))
        h = fixed(o * fixed(np.tanh(c)))
        sequence.append(h)
    out = {"output": np.stack(sequence, 1) if cfg.get("return_sequences") else h, "state_h": h, "state_c": c}
    return {k: v.astype(np.float32) for k, v in out.items() if k in fixture.expected}


@pytest.fixture(scope="module")
def fixture():
    return load_fixture(REPO / "fixtures" / "lstm-large-bias")


def judged(fixture, result, fmt=FORMAT):
    return compare(fixture, result, "fixed-point", numeric_format=approximate.parse_format(fmt))


def test_the_format_gives_the_step():
    assert approximate.parse_format("ap_fixed<16,6>").step == STEP
    assert approximate.parse_format("ap_fixed<8, 3>").step == 2.0 ** -5
    assert approximate.parse_format({"format": "int8", "step": 0.004}).step == 0.004
    assert approximate.parse_format("int8").step is None
    for bad in ("", {"format": "int8", "step": -1}, 8):
        with pytest.raises(approximate.FormatError):
            approximate.parse_format(bad)


def test_the_correct_fixed_point_port_is_nearest_keras_by_the_margin(fixture):
    result = fixed_point_lstm(fixture)
    assert not all(np.allclose(result[k], fixture.expected[k], atol=1e-5, rtol=1e-4) for k in result), \
        "the grid must be coarse enough to fail the float tolerance, or this tests nothing"
    verdict = judged(fixture, result)
    found = verdict.approximate
    assert verdict.ok, verdict.message
    assert found.holds and found.margin >= approximate.MARGIN and found.mistakes_compared > 0
    worst = max(np.abs(result[k].astype(np.float64) - fixture.expected[k]).max() for k in result)
    # the profile is against the float64 reference; the stored expected values are float32
    assert math.isclose(max(o.max_abs_error for o in found.outputs), worst, rel_tol=1e-3)
    assert all(math.isclose(o.max_steps, o.max_abs_error / STEP) for o in found.outputs)


def test_the_gate_order_swapped_port_is_named(fixture):
    verdict = judged(fixture, fixed_point_lstm(fixture, SWAPPED))
    assert not verdict.ok
    assert verdict.approximate.nearest_mistake == "lstm-gate-order-" + "".join(SWAPPED), verdict.message
    assert verdict.approximate.margin < 1 and "nearer a catalogued mistake than Keras" in verdict.message


def test_a_mistake_below_the_format_resolution_is_not_compared(fixture):
    """On a grid of 2**-2 the gate-order mistake moves the outputs by less than RESOLVABLE steps: not compared."""
    coarse = {k: fixed(v, 2.0 ** -2).astype(np.float32) for k, v in fixed_point_lstm(fixture, SWAPPED).items()}
    found = judged(fixture, coarse, "ap_fixed<8,6>").approximate
    effect = approximate._rms(approximate.mistakes._reference(fixture),
                              approximate.mistakes.BY_KEY["lstm-gate-order-fico"].outputs(fixture), list(coarse))
    assert ("lstm-gate-order-fico" in found.unresolved) == (effect < approximate.RESOLVABLE * 2.0 ** -2)


def test_the_record_carries_the_profile_and_validates(fixture):
    verdict = judged(fixture, fixed_point_lstm(fixture, SWAPPED))
    record = Record(fixture=fixture.id, impl="fixed-point", status=verdict.status.value,
                    approximate=verdict.approximate)
    data = json.loads(json.dumps({k: v for k, v in record.to_json().items() if k != "impl_info"}))  # as the summary
    schema = json.loads(schema_path().read_text())
    jsonschema.validate(data, {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/record"})
    assert data["approximate"]["nearest_mistake"] == "lstm-gate-order-fico"
    assert Record.from_json(data).approximate == verdict.approximate
    assert isinstance(Record.from_json(data).approximate, Approximate)


# -- the format as a field of the implementation contract (judge.contract), read through the registry ---------------

@implementation(numeric_format=FORMAT)
def fixed_point_port(fixture):
    """An approximate port declared with the decorator."""
    return fixed_point_lstm(fixture)


def bare_fixed_point_port(fixture):
    """The same port as a bare callable with the attribute set by hand (a third-party entry point)."""
    return fixed_point_lstm(fixture)


bare_fixed_point_port.numeric_format = FORMAT


@implementation(numeric_format=lambda fixture: {"format": "int8", "step": None, "broken": 1 / 0})
def broken_format_port(fixture):
    return fixed_point_lstm(fixture)


def _suite(spec: str, isolated: bool = False):
    impl = registry.from_spec(spec, {})
    return registry.isolated(impl) if isolated else impl


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("port", ["fixed_point_port", "bare_fixed_point_port"])
def test_the_suite_judges_a_declared_format_by_its_semantics(fixture, port, isolated):
    impl = _suite(f"test_approximate:{port}", isolated)
    assert Contract.of(impl.load()).numeric_format is not None
    verdict = judge(Case(impl, fixture))
    assert verdict.status == Status.PASSED and "approximate port (ap_fixed<16,6>)" in verdict.message, verdict.message
    assert verdict.approximate.format == FORMAT and verdict.approximate.step == STEP
    assert verdict.approximate.margin >= approximate.MARGIN


def test_the_same_output_without_a_format_fails_the_tolerance(fixture):
    verdict = judge(Case(registry.Implementation("float", "x", None, None, _loader=lambda: fixed_point_lstm),
                         fixture))
    assert verdict.status == Status.FAILED and verdict.approximate is None


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_numeric_format_that_raises_is_the_ports_error(fixture, isolated):
    verdict = judge(Case(_suite("test_approximate:broken_format_port", isolated), fixture))
    assert verdict.status == Status.ERROR and "numeric_format raised ZeroDivisionError" in verdict.message, \
        verdict.message
