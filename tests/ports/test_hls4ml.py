"""The hls4ml port (SPEC 7.8) on real hls4ml conversions, compiled with g++ and run as its C simulation.

A correct ``ap_fixed<16,6>`` conversion of a gallery GRU fails the float tolerance but is nearest Keras by the
margin (``partial``: the HLS model returns the output only); the same conversion of a model whose gate blocks were
permuted (what a converter reading the gate order wrong hands hls4ml) is named by the mistake it makes.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

pytest.importorskip("hls4ml")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import hls4ml as port
from conformance.adapters.convert import reorder
from conformance.judge.approximate import MARGIN
from conformance.judge.contract import implementation
from conformance.judge.registry import Implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
FIXTURE = "gru-reset-after-basic"


def _judge(run, fixture_id=FIXTURE):
    return judge(Case(Implementation("hls4ml", "conformance.adapters.hls4ml:run", None, None, _loader=lambda: run),
                      FIXTURES[fixture_id]))


@implementation(numeric_format=port.FORMAT, returns=port.returns, supports=port.supports, returns_trace=False)
def gates_swapped(fixture):
    """hls4ml on the fixture's model with the z and r gate blocks exchanged in every weight."""
    twin = fixture.isolated()
    arrays = dict(twin.arrays)
    for name, blocks in fixture.gates.items():
        arrays[name] = reorder(arrays[name], blocks, ("r", "z", "h"))
    twin._arrays = MappingProxyType(arrays)
    return port.run(twin)


def test_a_correct_conversion_is_nearest_keras():
    verdict = _judge(port.run)
    found = verdict.approximate
    assert verdict.status == Status.PARTIAL and found.holds, verdict.message  # the final state is not returned
    assert found.format == "ap_fixed<16,6>" and found.step == 2.0 ** -10
    assert found.margin >= MARGIN and found.mistakes_compared > 0
    assert max(o.max_abs_error for o in found.outputs) > FIXTURES[FIXTURE].tolerance["atol"]  # not float-exact


def test_a_conversion_with_the_gate_order_wrong_is_named():
    verdict = _judge(gates_swapped)
    assert verdict.status == Status.FAILED, verdict.message
    assert verdict.approximate.nearest_mistake == "gru-gate-order-rzh", verdict.message
    assert verdict.approximate.margin < 1 and "[mistake gru-gate-order-rzh]" in verdict.message


def test_what_hls4ml_cannot_take_is_a_skip_before_it_runs():
    verdict = _judge(port.run, "lstm-mask-trailing")
    assert verdict.status == Status.SKIPPED and "feeds x only" in verdict.message, verdict.message
