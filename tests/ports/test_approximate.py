"""The approximate-port rule (SPEC 7.8) on real TFLite int8 conversions.

A correct full-integer conversion of a gallery LSTM and GRU fails the float tolerance but is nearest Keras by the
margin; the same conversion of a model whose gate blocks were permuted (what a converter reading the gate order
wrong hands TFLite) is named by the mistake it makes. Each converts with the real tool into a private cache.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import tflite_quantized
from conformance.adapters.convert import reorder
from conformance.judge.approximate import MARGIN
from conformance.judge.contract import Contract, implementation
from conformance.judge.registry import Implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
# fixture, the gate order a wrong port reads, the mistake that names it
WRONG = [("lstm-large-bias", ("f", "i", "c", "o"), "lstm-gate-order-fico"),
         ("gru-reset-after-large-bias", ("r", "z", "h"), "gru-gate-order-rzh")]



def _judge(run, fixture_id):
    return judge(Case(Implementation("tflite-int8", "conformance.adapters.tflite_quantized:run_int8", None, None,
                                     _loader=lambda: run), FIXTURES[fixture_id]))


def permuted(order):
    """tflite-int8 on the fixture's model with every weight's gate blocks rearranged into ``order``."""
    @implementation(numeric_format=Contract.of(tflite_quantized.run_int8).numeric_format)
    def run(fixture):
        twin = fixture.isolated()
        arrays = dict(twin.arrays)
        for name, blocks in fixture.gates.items():
            arrays[name] = reorder(arrays[name], blocks, order)
        twin._arrays = MappingProxyType(arrays)
        return tflite_quantized.run_int8(twin)
    return run


@pytest.mark.parametrize("fixture_id", [w[0] for w in WRONG])
def test_a_correct_int8_conversion_is_nearest_keras(fixture_id):
    verdict = _judge(tflite_quantized.run_int8, fixture_id)
    found = verdict.approximate
    assert verdict.status == Status.PASSED, verdict.message
    assert found.format == "int8" and found.step > 0  # the scale TFLite chose, read from the flatbuffer
    assert found.margin >= MARGIN and found.mistakes_compared > 0
    assert max(o.max_abs_error for o in found.outputs) > FIXTURES[fixture_id].tolerance["atol"]  # not float-exact


@pytest.mark.parametrize("fixture_id, order, mistake", WRONG)
def test_an_int8_conversion_with_the_gate_order_wrong_is_named(fixture_id, order, mistake):
    verdict = _judge(permuted(order), fixture_id)
    assert verdict.status == Status.FAILED
    assert verdict.approximate.nearest_mistake == mistake, verdict.message
    assert verdict.approximate.margin < 1 and f"[mistake {mistake}]" in verdict.message
    assert np.isfinite(verdict.approximate.rms_to_reference)


# the wrong ports, for measuring over the gallery (docs/approximate.md):
#   --impl test_approximate:wrong_lstm_int8 --impl test_approximate:wrong_gru_int8 with tests/ports on PYTHONPATH
wrong_lstm_int8 = permuted(WRONG[0][1])
wrong_gru_int8 = permuted(WRONG[1][1])
