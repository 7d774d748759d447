"""Stateful wrappers (SPEC 5.10): ``calls`` on a Bidirectional and on a Stacked, and format_version 2.

The reference's stateful wrapper is checked against the plain (stateless) wrapper run call by call with the
carried states passed as initial states, an independent path through the reference; the gallery fixtures
(Keras's numbers) must tell that carrying apart from the obvious misreadings (the backward copy restarted
every call, a stack carrying only its first layer).
"""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest

from conformance import reference, wrappers
from conformance.errors import Unsupported
from conformance.fixtures import FORMAT_VERSIONS, gallery_dir, list_fixtures, needed_version
from conformance.format.schema import schema_path
from conformance.report.explain import explain_text
from conformance.semantics.problem import Problem

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
WRAPPED_STATEFUL = sorted(i for i, f in FIXTURES.items() if f.meta.get("calls") and f.layer in wrappers.WRAPPERS)


def _chained(fixture, restart=()) -> dict:
    """The fixture's wrapper, stateless, called once per chunk from the previous call's final states (zeros after
    a reset); the states of the parts named in ``restart`` (``backward``, ``layers/1``) are never carried."""
    calls, result, carried = fixture.meta["calls"], {}, {}
    for k, chunk in enumerate(wrappers.split_calls(fixture.inputs, calls)):
        start = {**chunk, **(carried if wrappers.carries(calls, k) else {})}
        out = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                                start)
        carried = {wrappers.initial_state_name(n): v for n, v in out.items()
                   if n != "trace" and wrappers.is_state(n) and not any(wrappers.under(n, p) for p in restart)}
        result.update({wrappers.join(wrappers.call_prefix(k), n): v for n, v in out.items() if n != "trace"})
    return result


def _worst(got: dict, fixture) -> float:
    """The largest error of ``got`` against the fixture's expected arrays, in units of its tolerance."""
    tol = fixture.tolerance
    return max(float(np.max(np.abs(got[n] - want) / (tol["atol"] + tol["rtol"] * np.abs(want))))
               for n, want in fixture.expected.items())


def test_the_gallery_has_stateful_bidirectional_and_stacked_fixtures():
    assert {FIXTURES[i].layer for i in WRAPPED_STATEFUL} == {"Bidirectional", "Stacked"}
    assert any(FIXTURES[i].meta["calls"]["reset_before"] for i in WRAPPED_STATEFUL)


@pytest.mark.parametrize("fixture_id", WRAPPED_STATEFUL)
def test_the_reference_carries_every_part_s_states_like_the_stateless_wrapper_chained(fixture_id):
    fixture = FIXTURES[fixture_id]
    got = reference.outputs(Problem.of(fixture))
    want = _chained(fixture)
    assert sorted(want) == sorted(k for k in got if k != "trace") == sorted(fixture.meta["outputs"])
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-12, err_msg=name)
    assert _worst(got, fixture) <= 0.1   # and Keras agrees, within a tenth of the tolerance (the generator's check)


@pytest.mark.parametrize("fixture_id, restart", [
    ("stateful-bidirectional-lstm-concat", ("backward",)),       # the backward copy restarted every call
    ("stateful-bidirectional-lstm-concat", ("forward",)),
    ("stateful-bidirectional-simple-rnn-mask", ("backward",)),
    ("stateful-bidirectional-gru-reset", ("backward",)),
    ("stateful-stacked-lstm-gru", ("layers/1",)),                 # only the first layer carried
    ("stateful-stacked-lstm-mask", ("layers/0",)),
])
def test_the_fixtures_tell_carrying_every_part_from_restarting_one(fixture_id, restart):
    fixture = FIXTURES[fixture_id]
    assert _worst(_chained(fixture, restart), fixture) > 10


def test_compose_carries_each_half_and_a_reset_restarts_both():
    seen = []

    def run_layer(part):
        seen.append((part.prefix, dict(part.inputs)))
        last = part.inputs["x"][:, -1]
        return {"output": last, "state_h": last * (10 if part.prefix == "forward" else 100)}

    x = np.arange(6, dtype=float).reshape(1, 6, 1)
    config = {"wrapped": "SimpleRNN", "merge_mode": "sum", "units": 1}
    calls = {"steps": [2, 2, 2], "reset_before": [2]}
    result = wrappers.compose(Problem("Bidirectional", config, {}, {}, {}, {"x": x}, calls), run_layer)
    by_call = [dict(seen[2 * k: 2 * k + 2]) for k in range(3)]
    assert all("initial_state_h" not in inputs for inputs in {**by_call[0], **by_call[2]}.values())
    np.testing.assert_array_equal(by_call[1]["forward"]["initial_state_h"], [[10.0]])
    np.testing.assert_array_equal(by_call[1]["backward"]["initial_state_h"], [[100.0]])
    assert sorted(k for k in result if k != "trace") == sorted(
        f"calls/{k}/{n}" for k in range(3) for n in ("output", "forward/state_h", "backward/state_h"))


def test_prefixed_final_states_feed_the_same_part_s_initial_states():
    assert wrappers.initial_state_name("state_c") == "initial_state_c"
    assert wrappers.initial_state_name("backward/state_h") == "backward/initial_state_h"
    assert wrappers.initial_state_name("layers/1/state_c") == "layers/1/initial_state_c"
    result = {"output": 1, "forward/output": 2, "layers/0/state_h": 3, "trace": {"state_h": 4}}
    assert wrappers.final_states(result) == {"layers/0/initial_state_h": 3}


def test_calls_on_an_unknown_layer_name_it_and_a_wrapper_is_no_unknown_family():
    problem = Problem("ConvLSTM4D", {}, {}, {}, {}, {"x": np.zeros((1, 2, 1))}, {"steps": [1, 1]})
    with pytest.raises(Unsupported, match="'ConvLSTM4D' is not a known recurrent layer family"):
        reference.outputs(problem)
    fixture = FIXTURES["stateful-bidirectional-gru-reset"]
    assert reference.supports(fixture) is None
    assert "calls/2/backward/state_h" in reference.outputs(Problem.of(fixture))


def test_explain_walks_every_copy_of_every_call_from_its_carried_states():
    fixture = FIXTURES["stateful-bidirectional-lstm-concat"]
    text = explain_text(fixture)
    sections = text.split("-" * 40)
    assert len(sections) == 2 * len(fixture.meta["calls"]["steps"])   # forward and backward, per call
    assert "Stateful, call 1 (4 steps): starts from the states the previous call ended with. Bidirectional, " \
           "backward half" in sections[3]
    assert "initial h0 = zeros" in sections[1] and "initial h0 = zeros" not in sections[3]
    assert "The reference's trace agrees with the fixture's stored trace" in text


# -- format_version ------------------------------------------------------------------------------

def test_every_fixture_is_written_in_the_lowest_format_that_describes_it():
    versions = {}
    for fid, fixture in FIXTURES.items():
        assert fixture.meta["format_version"] == needed_version(fixture.meta)[0], fid
        versions.setdefault(fixture.meta["format_version"], set()).add(fid)
    assert set(versions) == set(FORMAT_VERSIONS)
    assert versions[2] == set(WRAPPED_STATEFUL) | {i for i, f in FIXTURES.items() if f.layer in ("ConvLSTM3D", "Model")}


@pytest.mark.parametrize("meta, feature", [
    ({"layer": "Bidirectional", "calls": {"steps": [1]}}, "calls on a Bidirectional"),
    ({"layer": "Stacked", "calls": {"steps": [1]}}, "calls on a Stacked"),
    ({"layer": "ConvLSTM3D"}, "ConvLSTM3D"),
    ({"layer": "Model", "config": {"layers": [{"layer": "Embedding"}, {"layer": "LSTM"}]}}, "a Model"),
    ({"layer": "Bidirectional", "config": {"wrapped": "ConvLSTM3D"}}, "ConvLSTM3D"),
    ({"layer": "Stacked", "config": {"layers": [{"layer": "LSTM"}, {"layer": "ConvLSTM3D"}]}}, "ConvLSTM3D"),
])
def test_what_needs_format_2(meta, feature):
    version, why = needed_version(meta)
    assert version == 2 and feature in why
    assert needed_version({"layer": "LSTM", "calls": {"steps": [1]}}) == (1, None)
    assert needed_version({"layer": "Bidirectional", "config": {"wrapped": "ConvLSTM2D"}}) == (1, None)


@pytest.mark.parametrize("fixture_id", ["stateful-bidirectional-lstm-concat", "stateful-stacked-lstm-gru",
                                        "conv-lstm3d-basic"])
def test_the_schema_refuses_a_format_1_fixture_with_a_format_2_feature(fixture_id):
    """A consumer in another language that validates with the schema refuses it too, not only this loader."""
    schema = json.loads(schema_path().read_text())
    meta = copy.deepcopy(FIXTURES[fixture_id].meta)
    jsonschema.validate(meta, schema)
    meta["format_version"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(meta, schema)
