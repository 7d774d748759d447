"""The family registry, the wrappers module and the package's shape, tested directly on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import Unsupported, reference, wrappers
from conformance.families import FAMILIES, LAYERS, TRACE_ORDER, WRAPPERS, family
from conformance.semantics.problem import Problem

from helpers.repo import REPO
from helpers import loops

PACKAGE = REPO / "conformance"


def test_the_schema_enumerates_exactly_the_registered_families():
    schema = json.loads((PACKAGE / "schema" / "fixture.schema.json").read_text())
    layer = schema["properties"]["layer"]["enum"]
    assert layer == [*LAYERS, *WRAPPERS, "Model"]  # a Model (SPEC 5.15) is no family: its layers are
    wrapped = json.dumps(schema["properties"]["config"])
    for name in LAYERS:
        assert f'"{name}"' in wrapped


@pytest.mark.parametrize("layer", LAYERS)
def test_each_family_is_consistent(layer):
    fam = FAMILIES[layer]
    assert fam.layer == layer
    assert fam.states[0] == "h" and set(fam.states) <= set(fam.trace)  # h is the output; states are traced
    assert all(name in TRACE_ORDER for name in fam.trace)
    slices = fam.gate_slices(units=3, has_bias=True)
    assert list(slices["kernel"]) == list(fam.gates)
    assert slices["kernel"][fam.gates[-1]] == [3 * (len(fam.gates) - 1), 3 * len(fam.gates)]
    assert fam.explain_lines({"reset_after": True})


def test_family_of_an_unknown_layer_is_unsupported_with_the_known_ones():
    with pytest.raises(Unsupported, match="ConvLSTM4D.*LSTM, GRU, SimpleRNN, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D"):
        family("ConvLSTM4D")


def test_gru_explains_only_the_reset_after_formula_it_uses():
    gru = FAMILIES["GRU"]
    after = "\n".join(gru.explain_lines({"reset_after": True}))
    before = "\n".join(gru.explain_lines({"reset_after": False}))
    assert "(reset_after=True)" in after and "(reset_after=False)" not in after
    assert "(reset_after=False)" in before and "(reset_after=True)" not in before


def test_labels_name_the_axes_of_what_the_family_returns():
    lstm = FAMILIES["LSTM"]
    assert lstm.label((1, 2, 3), lambda t: f"timestep {t}") == "[batch 1, timestep 2, unit 3]"
    assert lstm.label((1, 3), lambda t: f"timestep {t}") == "[batch 1, unit 3]"
    assert lstm.label((1, 2, 3, 4), lambda t: f"timestep {t}") == "[1, 2, 3, 4]"


def test_lstm_cell_matches_the_equations_written_out():
    rng = np.random.default_rng(0)
    u, n = 2, 3
    w = {"kernel": rng.normal(size=(n, 4 * u)), "recurrent_kernel": rng.normal(size=(u, 4 * u)),
         "bias": rng.normal(size=4 * u)}
    fam = FAMILIES["LSTM"]
    config = {"units": u}
    sliced = fam.weights(config, w, fam.gate_slices(u, True))
    x, h, c = rng.normal(size=(1, n)), rng.normal(size=(1, u)), rng.normal(size=(1, u))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    values, (h1, c1) = fam.cell(x, (h, c), sliced, np.tanh, sig, config)
    z = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
    i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
    want_c = sig(f) * c + sig(i) * np.tanh(g)
    np.testing.assert_allclose(c1, want_c)
    np.testing.assert_allclose(h1, sig(o) * np.tanh(want_c))
    assert list(values) == list(fam.trace)


def test_use_bias_false_is_a_zero_bias():
    fam = FAMILIES["GRU"]
    w = fam.weights({"units": 2, "use_bias": False}, {"kernel": np.ones((3, 6)), "recurrent_kernel": np.ones((2, 6))},
                    fam.gate_slices(2, False))
    assert not any(np.any(b) for row in w["bias"].values() for b in row.values())


# -- wrappers -------------------------------------------------------------------------------------

def test_prefixes_round_trip():
    result = {"output": 1, "state_h": 2, "trace": {"h": 3}}
    named = wrappers.prefixed(result, "layers/1")
    assert named == {"layers/1/output": 1, "layers/1/state_h": 2, "trace": {"layers/1/h": 3}}
    assert wrappers.sub_mapping({"layers/1/x": 1, "layers/10/x": 2, "x": 3}, "layers/1") == {"x": 1}


def test_split_calls_cuts_x_and_mask_along_time_only():
    inputs = {"x": np.arange(2 * 5 * 1).reshape(2, 5, 1), "mask": np.ones((2, 5), bool), "initial_state_h": 0}
    chunks = wrappers.split_calls(inputs, {"steps": [2, 3]})
    assert [c["x"].shape for c in chunks] == [(2, 2, 1), (2, 3, 1)]
    assert all(set(c) == {"x", "mask"} for c in chunks)


def test_stateful_carries_final_states_except_after_a_reset():
    seen = []

    def run_layer(part):
        seen.append(dict(part.inputs))
        return {"output": part.inputs["x"][:, -1], "state_h": part.inputs["x"][:, -1] * 10}

    x = np.arange(6, dtype=float).reshape(1, 6, 1)
    calls = {"steps": [2, 2, 2], "reset_before": [2]}
    result = wrappers.compose(Problem("LSTM", {"units": 1}, {}, {}, {}, {"x": x}, calls), run_layer)
    assert "initial_state_h" not in seen[0] and "initial_state_h" not in seen[2]
    np.testing.assert_array_equal(seen[1]["initial_state_h"], [[10.0]])
    assert sorted(k for k in result if k != "trace") == [f"calls/{k}/{n}" for k in range(3)
                                                          for n in ("output", "state_h")]


def test_bidirectional_parts_follow_keras_masking_rule_and_merge_flips_the_backward_sequence():
    config = {"wrapped": "LSTM", "merge_mode": "concat", "units": 1, "return_sequences": True}
    parts = wrappers.bidirectional_parts(Problem("Bidirectional", config, {}, {}, {}, {"x": np.zeros((1, 3, 1))}))
    assert [(p.prefix, p.config["go_backwards"], p.config["zero_output_for_mask"]) for p in parts] == \
        [("forward", False, True), ("backward", True, True)]
    halves = {"forward": {"output": np.array([[[1.], [2.], [3.]]])},
              "backward": {"output": np.array([[[4.], [5.], [6.]]])}}
    merged = wrappers.merge_bidirectional(config, halves)
    np.testing.assert_array_equal(merged["output"][0, :, 1], [6., 5., 4.])


def test_compose_refuses_an_unknown_layer():
    with pytest.raises(Unsupported):
        wrappers.compose(Problem("Transformer", {}, {}, {}, {}, {"x": np.zeros((1, 1, 1))}), lambda p: {})


def test_the_reference_chains_a_stacked_layer_as_separate_loops_do(gallery):
    """A stacked LSTM fixture computed by the reference equals two plain LSTM loops (tests/helpers/loops.py,
    written apart from the reference) chained by hand, and both match the fixture's Keras-made outputs."""
    fixture = next(f for f in gallery if f.id == "stacked-lstm-2")
    got = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                            fixture.inputs)
    x = np.asarray(fixture.inputs["x"], np.float64)
    for k, layer in enumerate(fixture.config["layers"]):
        weights = {name: fixture.weights[f"layers/{k}/{name}"] for name in ("kernel", "recurrent_kernel", "bias")}
        x = loops.lstm(fixture, layer["config"], weights, fixture.activations[f"layers/{k}"], x)["output"]
    tol = fixture.tolerance
    np.testing.assert_allclose(got["output"], x, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(x, fixture.expected["output"], atol=tol["atol"], rtol=tol["rtol"])


# -- the package's shape --------------------------------------------------------------------------
