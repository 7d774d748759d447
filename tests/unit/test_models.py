"""Model fixtures (``layer: Model``, format 2, SPEC 5.15): the reference, the mask rule, the schema, the version.

The expected values are Keras 3.15.1's (generate_fixtures.py); the reference must reproduce them, and the
mask rule is checked against Keras itself where Keras is installed, layer kind by layer kind.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util

import numpy as np
import pytest

from conformance.errors import FixtureError, Unsupported
from conformance.fixtures import list_fixtures, needed_version
from conformance.schema import validate_meta
from conformance.semantics import models, reference
from conformance.semantics.problem import Problem

from helpers.repo import REPO

MODEL_IDS = ["model-embedding-bilstm-dense", "model-masking-gru", "model-encoder-decoder",
             "model-conv1d-lstm-time-distributed", "model-embedding-lstm-lstm"]
needs_keras = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="Keras is not installed")


@pytest.fixture(scope="module")
def gallery():
    listing = list_fixtures(REPO / "fixtures")
    return {f.id: f for f in listing.fixtures if f.layer == "Model"}


def test_the_five_model_fixtures_are_in_the_gallery(gallery):
    assert sorted(gallery) == sorted(MODEL_IDS)


@pytest.mark.parametrize("fid", MODEL_IDS)
def test_the_reference_reproduces_keras(gallery, fid):
    fixture = gallery[fid]
    got = reference.run(fixture)["output"]
    want = fixture.expected["output"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=fixture.meta["tolerance"]["atol"], rtol=fixture.meta["tolerance"]["rtol"])


@pytest.mark.parametrize("fid", ["model-embedding-bilstm-dense", "model-masking-gru", "model-embedding-lstm-lstm"])
def test_the_mask_made_in_the_graph_changes_the_output(gallery, fid, monkeypatch):
    """Padded rows really are masked: without the mask the reference is far from Keras's values."""
    fixture = gallery[fid]
    monkeypatch.setattr(models, "mask_after", lambda layer, config, x, mask: None)
    unmasked = reference.run(fixture)["output"]
    assert np.abs(unmasked - fixture.expected["output"]).max() > 100 * fixture.meta["tolerance"]["atol"]


def test_a_mask_dropped_after_the_first_lstm_is_caught(gallery, monkeypatch):
    """The change Keras's main branch makes (RNN no longer passing its mask, SPEC 5.15) shows on the padded rows."""
    fixture = gallery["model-embedding-lstm-lstm"]
    rule = models.rule
    monkeypatch.setattr(models, "rule", lambda layer, config: models.DROPS if layer in models.RECURRENT
                        else rule(layer, config))
    dropped = reference.run(fixture)["output"]
    error = np.abs(dropped - fixture.expected["output"]).max(axis=-1)
    padded = ~np.all(fixture.inputs["x"] != 0, axis=1)
    assert np.all(error[padded] > 10 * fixture.meta["tolerance"]["atol"])
    assert np.all(error[~padded] <= fixture.meta["tolerance"]["atol"])


@pytest.mark.parametrize("layer, config, rule", [
    ("Embedding", {"mask_zero": True}, models.MAKES),
    ("Embedding", {"mask_zero": False}, models.DROPS),
    ("Masking", {"mask_value": 0.0}, models.MAKES),
    ("Dense", {"units": 2}, models.PASSES),
    ("TimeDistributed", {"wrapped": "Dense", "units": 2}, models.PASSES),
    ("Conv1D", {"filters": 2, "kernel_size": [2]}, models.DROPS),
    ("LSTM", {"units": 2, "return_sequences": True}, models.PASSES),
    ("LSTM", {"units": 2}, models.DROPS),
    ("GRU", {"units": 2, "return_sequences": True}, models.PASSES),
    ("SimpleRNN", {"units": 2}, models.DROPS),
    ("Bidirectional", {"wrapped": "LSTM", "units": 2, "return_sequences": True}, models.PASSES),
    ("Bidirectional", {"wrapped": "LSTM", "units": 2}, models.DROPS),
])
def test_the_mask_rule_per_layer_kind(layer, config, rule):
    assert models.rule(layer, config) == rule


def _keras_layer(keras, layer, config):
    config = dict(config)
    if layer == "Bidirectional":
        wrapped = config.pop("wrapped")
        return keras.layers.Bidirectional(getattr(keras.layers, wrapped)(**config))
    if layer == "TimeDistributed":
        config.pop("wrapped")
        return keras.layers.TimeDistributed(keras.layers.Dense(**config))
    return getattr(keras.layers, layer)(**config)


@needs_keras
@pytest.mark.parametrize("layer, config", [
    ("Dense", {"units": 2}), ("TimeDistributed", {"wrapped": "Dense", "units": 2}),
    ("Conv1D", {"filters": 2, "kernel_size": 2, "padding": "same"}), ("Masking", {"mask_value": 0.0}),
    ("LSTM", {"units": 2, "return_sequences": True}), ("LSTM", {"units": 2}),
    ("GRU", {"units": 2, "return_sequences": True}), ("SimpleRNN", {"units": 2}),
    ("Bidirectional", {"wrapped": "LSTM", "units": 2, "return_sequences": True}),
    ("Bidirectional", {"wrapped": "GRU", "units": 2}),
])
def test_the_mask_rule_is_what_this_keras_does(layer, config):
    """After an Embedding(mask_zero=True), the layer's output carries a mask exactly when the rule says it passes
    it on (Keras's own symbolic mask propagation, as a model's next layer would see it)."""
    import warnings

    from conformance.adapters.keras import keras_module
    keras = keras_module()
    if not hasattr(keras.layers, "Masking"):
        pytest.skip("no Keras layers")
    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Conv1D warns that it drops the mask
        out = _keras_layer(keras, layer, config)(embedded)
    carries = getattr(out, "_keras_mask", None) is not None
    rule = models.rule(layer, {**config, "kernel_size": [2]} if layer == "Conv1D" else config)
    if layer == "Masking":  # it makes its own mask, from its input
        assert carries and rule == models.MAKES
    else:
        assert carries == (rule == models.PASSES), (layer, config, rule)


@pytest.mark.parametrize("padding, strides, steps", [("valid", 1, 7), ("same", 1, 7), ("same", 2, 7),
                                                     ("valid", 2, 8), ("same", 3, 8)])
def test_conv1d_output_length_is_tensorflows(padding, strides, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, steps, 3))
    y = models.conv1d({"padding": padding, "strides": [strides], "use_bias": False},
                      {"kernel": rng.normal(size=(3, 3, 4))}, x)
    want = -(-steps // strides) if padding == "same" else (steps - 3) // strides + 1
    assert y.shape == (2, want, 4)


def test_conv1d_same_padding_puts_the_odd_zero_after():
    """kernel 2, same: TensorFlow pads 0 before and 1 after, so the last window reads one zero step."""
    x = np.arange(1.0, 5.0).reshape(1, 4, 1)
    y = models.conv1d({"padding": "same", "use_bias": False}, {"kernel": np.ones((2, 1, 1))}, x)
    assert y[0, :, 0].tolist() == [3.0, 5.0, 7.0, 4.0]


def test_needed_version_is_2_for_a_model(gallery):
    for fixture in gallery.values():
        assert needed_version(fixture.meta) == (2, "a Model")
        assert fixture.meta["format_version"] == 2


def test_a_format_1_model_is_refused(gallery):
    meta = copy.deepcopy(gallery["model-masking-gru"].meta)
    meta["format_version"] = 1
    with pytest.raises(FixtureError, match="format_version"):
        validate_meta(meta, "fixture.yaml")


def test_the_schema_accepts_the_model_fixtures(gallery):
    for fixture in gallery.values():
        validate_meta(fixture.meta, fixture.path / "fixture.yaml")


@pytest.mark.parametrize("layer", ["Lambda", "Attention", "Dropout"])
def test_the_schema_refuses_a_model_with_an_unknown_layer(gallery, layer):
    meta = copy.deepcopy(gallery["model-masking-gru"].meta)
    meta["config"]["layers"].insert(1, {"layer": layer, "config": {}})
    with pytest.raises(FixtureError, match=layer):
        validate_meta(meta, "fixture.yaml")


def test_the_schema_keeps_a_stack_recurrent(gallery):
    """Dense is a Model's layer, not a Stacked fixture's."""
    meta = copy.deepcopy(gallery["model-masking-gru"].meta)
    meta["layer"] = "Stacked"
    meta["format_version"] = 1
    meta["config"]["layers"] = [{"layer": "Dense", "config": {"units": 2}}]
    with pytest.raises(FixtureError, match="Dense"):
        validate_meta(meta, "fixture.yaml")


def test_the_reference_refuses_an_unknown_model_layer(gallery):
    fixture = gallery["model-masking-gru"]
    problem = Problem.of(fixture)
    config = {"layers": [{"layer": "Lambda", "config": {}}, *problem.config["layers"]]}
    with pytest.raises(Unsupported, match="Lambda"):
        reference.outputs(problem.replace(config=config))
    assert "Lambda" in models.supports(config)


def test_explain_walks_a_model_layer_by_layer(gallery):
    from conformance.report.explain import explain_text
    text = explain_text(gallery["model-embedding-lstm-lstm"], batch=0)
    assert "layers/0: Embedding" in text and "mask: makes" in text and "mask: drops" in text
    padded = "".join(map(str, (gallery["model-embedding-lstm-lstm"].inputs["x"][0] != 0).astype(int)))
    assert f"mask passed = [ {'  '.join(padded)}]" in text, text
    assert "max abs diff" in text


@pytest.mark.parametrize("adapter", ["torch", "onnx", "tfjs"])
def test_an_adapter_that_builds_one_layer_says_a_model_is_a_model(gallery, adapter):
    """Not "not a known recurrent layer family": a reader of the skip learns what a Model fixture is and who runs it.
    (tfjs: what it would send to Node.js, so the test needs no Node.)"""
    if adapter == "tfjs":
        from conformance.adapters.tfjs.translate import request_for

        def reason_for(fixture):
            with pytest.raises(Unsupported) as caught:
                request_for(fixture)
            return str(caught.value)
    else:
        reason_for = importlib.import_module(f"conformance.adapters.{adapter}").supports
    for fixture in gallery.values():
        reason = reason_for(fixture)
        assert reason is not None and "not one recurrent layer" in reason and "SPEC 5.15" in reason, (fixture.id, reason)
