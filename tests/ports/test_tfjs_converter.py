"""The ``tfjs-converter`` port: tensorflowjs 4.22.0's converter for real, its files loaded by tf.loadLayersModel in a
real Node.js process (the tfjs port's runner and node modules), into a private conversion cache.

Needs tensorflowjs (with its TensorFlow 2.19 and tf-keras), ``TF_USE_LEGACY_KERAS=1`` for the model built in
Keras 2, ``node`` and the node modules (``tox -e ports-tfjs-converter`` has them all); elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("tensorflowjs")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import tfjs, tfjs_converter
from conformance.adapters.tfjs.translate import encode_array

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
NOT_RUN = Path(tfjs_converter.__file__).resolve().parents[1] / "report" / "not_run.yaml"

needs_node = pytest.mark.skipif(tfjs.readiness() is not None, reason=f"node modules missing: {tfjs.readiness()}")
needs_keras2 = pytest.mark.skipif(os.environ.get("TF_USE_LEGACY_KERAS") != "1",
                                  reason="the port builds the model in tf-keras: set TF_USE_LEGACY_KERAS=1")


def _tensors() -> int:
    return tfjs.ask({"op": "hello"}, "a greeting")["hello"]["tensors"]


@needs_node
@needs_keras2
@pytest.mark.parametrize("fixture_id", ["lstm-seed-question", "bidirectional-lstm-return-state"])
def test_converted_model_loads_in_node_and_matches_keras(fixture_id, private_cache):
    fixture = FIXTURES[fixture_id]
    ours = tfjs_converter.run(fixture.isolated())
    assert tfjs_converter.notes(fixture_id) == "converted"
    folder = next((private_cache / "conversions" / "tfjs-converter").iterdir())
    topology = json.loads((folder / "model.json").read_text())
    assert topology["format"] == "layers-model"
    assert topology["convertedBy"] == "TensorFlow.js Converter v4.22.0"
    assert sorted(ours) == sorted(fixture.expected)
    for key in ours:
        np.testing.assert_allclose(ours[key], fixture.expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    before = _tensors()
    again = tfjs_converter.run(fixture.isolated())
    assert tfjs_converter.notes(fixture_id) == "cached conversion"
    assert _tensors() == before  # the loaded model and its tensors are released after each fixture
    for key in ours:
        np.testing.assert_array_equal(again[key], ours[key])


@needs_node
@needs_keras2
def test_a_layer_tfjs_lacks_is_refused_by_load_layers_model_itself(private_cache):
    """ConvLSTM3D converts; tf.loadLayersModel's "Unknown layer" is what makes it a skip (not a guess beforehand)."""
    from conformance import Unsupported
    with pytest.raises(Unsupported, match=r'"Unknown layer: ConvLSTM3D"'):
        tfjs_converter.run(FIXTURES["conv-lstm3d-basic"].isolated())
    assert any((private_cache / "conversions" / "tfjs-converter").iterdir()), "the converter never ran"


@needs_node
@needs_keras2
def test_a_stateful_bidirectional_is_not_applicable_before_converting():
    fixture = FIXTURES["stateful-bidirectional-lstm-concat"]
    assert fixture.meta["calls"] and fixture.layer == "Bidirectional"
    assert "a stateful Bidirectional: the model built for it outputs no states" in tfjs_converter.supports(fixture)
    assert tfjs_converter.supports(FIXTURES["stateful-lstm-three-calls"]) is None


@needs_node
def test_keras3_model_file_converts_but_tfjs_cannot_load_it_as_not_run_says(tmp_path):
    """The Keras 3 path (the fixture's own model.keras, --input_format=keras_keras) fails where not_run.yaml says."""
    [entry] = [e for e in yaml.safe_load(NOT_RUN.read_text()) if e["tool"].startswith("tfjs-converter")]
    fixture = FIXTURES["lstm-basic"]
    source = tmp_path / "model.keras"
    shutil.copyfile(Path(fixture.path) / "model.keras", source)
    tfjs_converter._converter().convert(["--input_format=keras_keras", "--output_format=tfjs_layers_model",
                                         str(source), str(tmp_path / "js")])
    assert (tmp_path / "js" / "model.json").is_file()
    response = tfjs.ask({"op": "layers-model", "fixture": fixture.id, "model": str(tmp_path / "js" / "model.json"),
                         "inputs": [[encode_array(fixture.inputs["x"])]], "reset_before": []}, "the Keras 3 conversion")
    assert response["error"]["phase"] == "load"
    assert response["error"]["message"] == entry["error"]
    assert entry["version"] == tfjs_converter.run.version
