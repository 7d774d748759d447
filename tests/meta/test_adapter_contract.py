"""One contract for every installed implementation, on one fixture per family.

Each registered built-in implementation, through the suite's own ``judge``: it passes the
fixtures it supports (``supports(fixture)`` returns None, or it declares nothing), skips the
rest with the reason; and fed a fixture whose weight columns are stored in another gate
order (expected outputs unchanged), it fails and the diagnosis names a gate-order mistake.
A missing library is a skip with an install hint (tests/test_adapters.py checks the wording).
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from conformance import registry
from conformance.mistakes import diagnose
from conformance.suite import Case, judge


BUILT_IN = ("numpy-reference", "keras", "keras-load", "tflite", "torch", "onnxruntime")
ONE_PER_FAMILY = ("lstm-basic", "gru-reset-after-basic", "gru-reset-before-basic", "simple-rnn-basic",
                  "conv-lstm1d-basic", "conv-lstm2d-basic", "conv-lstm3d-basic",
                  "bidirectional-lstm-concat-sequences", "stacked-lstm-gru", "stateful-lstm-three-calls",
                  "stateful-bidirectional-lstm-concat", "stateful-stacked-lstm-gru",
                  # built from cells (one RNN stepping a stack of cells), and Keras 2's time-major layout
                  "rnn-lstm-cell", "rnn-stacked-cells-mask", "lstm-time-major")


def _family_fixtures(gallery):
    by_id = {f.id: f for f in gallery}
    missing = [fid for fid in ONE_PER_FAMILY if fid not in by_id]
    assert not missing, f"the contract's fixtures are gone from the gallery: {missing}"
    return [by_id[fid] for fid in ONE_PER_FAMILY]


def _impl(name):
    known = registry.registered()
    assert name in known, f"{name} is not registered (registered: {sorted(known)})"
    return known[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT_IN)
def test_passes_what_it_supports_and_skips_the_rest_with_the_reason(name, gallery):
    impl = _impl(name)
    verdicts = {f.id: judge(Case(impl, f), 120, diagnose) for f in _family_fixtures(gallery)}
    if all(v.status == "skipped" and "which is not installed" in v.message for v in verdicts.values()):
        pytest.skip(f"{name}: its library is not installed here")
    supports = getattr(impl.load(), "supports", None)
    for fixture in _family_fixtures(gallery):
        verdict = verdicts[fixture.id]
        reason = supports(fixture) if supports else None
        if reason is None:
            assert verdict.status in ("passed", "skipped"), verdict.message
            if verdict.status == "skipped":  # an undeclared limit must still say why
                assert len(verdict.message) > len(name) + 20, verdict.message
        else:
            assert verdict.status == "skipped" and verdict.message == f"{name}: {reason}", verdict.message
    assert sum(v.status == "passed" for v in verdicts.values()) >= 3, {k: v.message for k, v in verdicts.items()}


def _in_gate_order(fixture, order):
    """A copy of the fixture whose LSTM weights hold their gate blocks in ``order``: what a port sees when
    it loads Keras's weights into another gate layout (the expected outputs are still Keras's)."""
    twin = fixture.isolated()
    arrays = dict(twin.arrays)
    for name, blocks in fixture.gates.items():
        if tuple(blocks) == ("i", "f", "c", "o"):
            arrays[name] = np.concatenate([arrays[name][..., slice(*blocks[g])] for g in order], axis=-1)
    twin._arrays = MappingProxyType(arrays)
    return twin


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in BUILT_IN if n != "keras-load"])  # keras-load reads its model file
def test_weights_in_another_gate_order_are_diagnosed(name, gallery):
    impl = _impl(name)
    run = impl.load()
    fixture = next(f for f in gallery if f.id == "lstm-large-bias")  # the gate-order mistakes' tagged fixture
    misread = registry.Implementation(f"{name}-misread", name, _loader=lambda: (
        lambda f: run(_in_gate_order(f, ("i", "o", "f", "c")))))
    verdict = judge(Case(misread, fixture), 120, diagnose)
    if verdict.status == "skipped":
        assert "not installed" in verdict.message, verdict.message
        pytest.skip(verdict.message)
    assert verdict.status == "failed", verdict.message
    assert "[mistake lstm-gate-order-" in verdict.message, verdict.message
    assert judge(Case(impl, fixture), 120).status == "passed"  # the same implementation, weights as stored


def test_the_contract_fixtures_cover_every_family(gallery):
    from conformance.families import LAYERS, WRAPPERS
    fixtures = _family_fixtures(gallery)
    assert {f.layer for f in fixtures} >= {*LAYERS, *WRAPPERS}
    assert any(f.meta.get("calls") for f in fixtures)
