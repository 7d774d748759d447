"""The ``onnx2tf`` port: onnx2tf's TFLite conversion of the graph tf2onnx writes (real conversions, a private cache)."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

import numpy as np
import pytest

if importlib.util.find_spec("onnx2tf") is None:  # not importorskip: importing onnx2tf sets TF_USE_LEGACY_KERAS=1
    pytest.skip("onnx2tf is not installed", allow_module_level=True)
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.adapters import onnx2tf, ported, tf2onnx

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}


def test_a_fused_lstm_converts_and_matches_keras_with_its_inputs_kept_batch_time_features():
    fixture = FIXTURES["lstm-return-state-sequences"]
    result = onnx2tf.run(fixture.isolated())
    assert sorted(result) == sorted(fixture.expected)
    for key in result:
        np.testing.assert_allclose(result[key], fixture.expected[key], rtol=1e-5, atol=1e-5)
    assert "WHILE" in onnx2tf.notes(fixture.id)  # onnx2tf's LSTM op is a tf_keras RNN: a TFLite WHILE loop


def test_an_output_named_rnn_as_tf2onnx_writes_it_clashes_with_onnx2tfs_own_rnn_layer(tmp_path):
    fixture = FIXTURES["lstm-basic"].isolated()
    graph = ported.keras_graph(fixture)
    tf2onnx.convert(graph, tmp_path, tf2onnx.opset())
    with pytest.raises(ConversionError, match=r'The name "rnn" is used 2 times in the model'):
        onnx2tf.run_onnx2tf(tmp_path / tf2onnx.MODEL, tmp_path / "out")


def test_a_loop_graph_is_a_conversion_error_naming_onnx2tfs_loop_op():
    with pytest.raises(ConversionError, match=r"onnx2tf .*TensorArray.*onnx2tf/ops/Loop\.py:\d+"):
        onnx2tf.run(FIXTURES["lstm-mask-trailing"].isolated())


def test_importing_onnx2tf_leaves_the_process_keras_as_it_was(monkeypatch):
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    for name in [m for m in sys.modules if m == "onnx2tf" or m.startswith("onnx2tf.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, its module code runs again
    monkeypatch.setattr(onnx2tf, "_onnx2tf", functools.lru_cache(onnx2tf._onnx2tf.__wrapped__))
    module = onnx2tf._onnx2tf()  # onnx2tf's import sets TF_USE_LEGACY_KERAS=1 (its onnx2tf.py, line 27)
    assert callable(module.convert)
    assert "TF_USE_LEGACY_KERAS" not in os.environ
