"""The ``keras-onnx`` port: Keras 3's own ``model.export(format="onnx")``, run by ONNX Runtime (real exports)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tensorflow")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import keras_onnx

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}



@pytest.mark.parametrize("fixture_id", ["bidirectional-lstm-return-state", "stateful-gru-reset-before"])
def test_an_export_matches_keras_and_is_cached(fixture_id):
    fixture = FIXTURES[fixture_id]
    first = keras_onnx.run(fixture.isolated())
    assert "cache miss" in keras_onnx.notes(fixture_id)
    second = keras_onnx.run(fixture.isolated())
    assert "cache hit" in keras_onnx.notes(fixture_id)
    assert sorted(first) == sorted(fixture.expected)
    for key in first:
        assert np.array_equal(first[key], second[key]), key
        np.testing.assert_allclose(first[key], fixture.expected[key], rtol=1e-5, atol=1e-5)
