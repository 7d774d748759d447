"""The converted-graph harness (``adapters/ported.py``) with Keras itself standing in for the converted graph.

Every port that converts a model (tf2onnx, OpenVINO) runs through ``keras_graph`` and ``run_calls``;
if the harness fed states wrongly, a correct tool would look wrong. With Keras running the very
graph the harness hands over, every fixture kind must pass: the model file, Bidirectional with its
states, and stateful fixtures whose states the harness carries by hand (and resets).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (extra 'keras' of lstm-conformance)")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import ported
from conformance.compare import compare
from conformance.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}


def _keras_as_the_tool(graph: ported.Graph):
    def feed(inputs: dict) -> dict:
        out = graph.model([np.asarray(inputs[k], bool if k == "mask" else np.float32) for k in graph.input_keys])
        out = out if isinstance(out, (list, tuple)) else [out]
        return ported.outputs_by_position([np.asarray(o) for o in out], graph.output_keys, "keras")
    return feed


@pytest.mark.parametrize("fixture_id", ["lstm-mask-trailing", "bidirectional-gru-reset-before-return-state",
                                        "stateful-lstm-three-calls", "stateful-gru-reset-before",
                                        "stateful-lstm-mask", "stateful-bidirectional-lstm-concat",
                                        "stateful-bidirectional-simple-rnn-mask", "stateful-stacked-lstm-gru",
                                        "conv-lstm3d-mask"])
def test_keras_through_the_harness_reproduces_the_fixture(fixture_id):
    fixture = FIXTURES[fixture_id].isolated()
    try:
        graph = ported.keras_graph(fixture)
        assert graph.source.startswith("built stateless" if fixture.meta.get("calls") else "model file")
        result = ported.run_calls(fixture, graph, _keras_as_the_tool(graph))
    finally:
        fixture.release()
    verdict = compare(fixture, result, "keras-through-the-harness")
    assert verdict.status == Status.PASSED, verdict.message


def test_states_not_carried_would_be_caught():
    """The same graph fed zeros at every call instead of the carried states fails: the carry is what passes."""
    fixture = FIXTURES["stateful-lstm-three-calls"].isolated()
    graph = ported.keras_graph(fixture)
    feed = _keras_as_the_tool(graph)

    def forgetful(inputs: dict) -> dict:
        return feed({k: np.zeros_like(v) if "initial_state" in k else v for k, v in inputs.items()})

    verdict = compare(fixture, ported.run_calls(fixture, graph, forgetful), "forgetful")
    assert verdict.status == Status.FAILED
    assert "calls/1/" in verdict.message


def test_the_state_input_of_each_state_output():
    assert ported.state_input("state_h") == "initial_state_h"
    assert ported.state_input("forward/state_c") == "forward/initial_state_c"
    assert ported.state_outputs(["output", "state_h", "layers/1/state_c", "forward/output"]) == [
        "state_h", "layers/1/state_c"]


def test_a_stateful_wrapper_s_graph_is_stateless_with_every_part_s_states_in_and_out():
    fixture = FIXTURES["stateful-bidirectional-gru-reset"].isolated()
    try:
        graph = ported.keras_graph(fixture)
    finally:
        fixture.release()
    assert graph.input_keys == ["x", "backward/initial_state_h", "forward/initial_state_h"]
    assert graph.output_keys == ["output", "forward/state_h", "backward/state_h"]
    bidirectional = graph.model.get_layer("bidirectional")
    assert not bidirectional.forward_layer.stateful and not bidirectional.backward_layer.stateful
