"""The ``tract`` port: tract on the graph tf2onnx writes (real conversions, a private cache)."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("tract")
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.judge import ledger
from conformance.adapters import tract

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}


def test_a_fused_bidirectional_lstm_with_initial_states_matches_keras():
    fixture = FIXTURES["bidirectional-lstm-return-state"]
    result = tract.run(fixture.isolated())
    assert sorted(result) == sorted(fixture.expected)
    for key in result:
        np.testing.assert_allclose(result[key], fixture.expected[key], rtol=1e-5, atol=1e-5)


def test_a_loop_graph_is_a_conversion_error_with_tracts_own_words():
    with pytest.raises(ConversionError, match=r"tract .*Unimplemented\(Loop\)"):
        tract.run(FIXTURES["lstm-mask-trailing"].isolated())


def test_a_fused_lstm_without_initial_state_is_the_ledgered_scan_crash():
    """tf2onnx feeds one zeros tensor as initial_h and initial_c; tract's run stops, as the shipped ledger says."""
    with pytest.raises(ConversionError, match="Clashing resolution for expression") as crash:
        tract.run(FIXTURES["lstm-basic"].isolated())
    explaining = [e for e in ledger.load() if e.matches("tract", "lstm-basic", "3.15.1", "tensorflow")
                  and e.kind == "error" and re.search(e.message, str(crash.value))]
    assert [e.link.split("/blob/")[1] for e in explaining] == ["v0.23.5/core/src/optim/change_axes.rs#L105-L120"]


def bare_lstm(states: str, batch=2, steps=5, features=3, units=4) -> tuple[bytes, list[np.ndarray]]:
    """An ONNX LSTM (opset 15) fed x and its initial states: one input for both (``shared``) or two."""
    onnx = pytest.importorskip("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((1, 4 * units, n)).astype(np.float32), name)
               for name, n in (("W", features), ("R", units))]
    names = ["s0", "s0"] if states == "shared" else ["h0", "c0"]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [steps, batch, features])]
    inputs += [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, batch, units]) for n in dict.fromkeys(names)]
    node = helper.make_node("LSTM", ["x", "W", "R", "", "", *names], ["Y", "Y_h", "Y_c"], hidden_size=units)
    outputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")]
    graph = helper.make_graph([node], "bare_lstm", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    feeds = [rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in inputs]
    return model.SerializeToString(), feeds


def run_tract(data: bytes, feeds: list[np.ndarray], tmp_path) -> list[np.ndarray]:
    """What the adapter does: concrete input facts, then into_model().into_runnable()."""
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    model = tract._tract().onnx().load(str(path))
    for i, array in enumerate(feeds):
        model.set_input_fact(i, ",".join([*map(str, array.shape), "f32"]))
    return [t.to_numpy() for t in model.into_model().into_runnable().run(feeds)]


def test_tract_still_mislays_one_tensor_fed_as_both_lstm_states(tmp_path):
    """The ledgered crash on a bare LSTM: when this fails, tract has fixed it and the ledger entry can go."""
    onnxruntime = pytest.importorskip("onnxruntime")
    data, feeds = bare_lstm("separate")
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), feeds)})
    for got, want in zip(run_tract(data, feeds, tmp_path), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    data, feeds = bare_lstm("shared")
    with pytest.raises(tract._tract().TractError, match=r"Setting body inputs\s+1: Clashing resolution for expression"):
        run_tract(data, feeds, tmp_path)
