"""The ``tf2onnx`` port: real ``tf2onnx.convert.from_keras`` conversions of gallery fixtures, run by ONNX Runtime.

Each test converts with the real tool (under a second a fixture) into a private conversion
cache. Refusals are provoked for real: an opset tf2onnx does not know (the converter raises),
and an opset too old for the recurrent loop (the converter leaves ops it could not map and
ONNX Runtime refuses the model).
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance import cache
from conformance.adapters import tf2onnx as port
from conformance.registry import Implementation
from conformance.suite import Case, judge
from conformance.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
# a masked LSTM (a Loop in ONNX), a Bidirectional LSTM with five outputs (three share a Keras output name),
# a stateful GRU with reset_before (built stateless, states carried by hand)
CHOSEN = ["lstm-mask-trailing", "bidirectional-lstm-return-state", "stateful-gru-reset-before"]
VERSION = metadata.version("tf2onnx")



def _judge(fixture_id):
    impl = Implementation("tf2onnx", "conformance.adapters.tf2onnx:run", port.run.version, None,
                          _loader=lambda: port.run)
    return judge(Case(impl, FIXTURES[fixture_id]))


def _entries(folder) -> list:
    tool = folder / "conversions" / port.TOOL
    return [p for p in tool.iterdir() if (p / cache.COMPLETE).is_file()] if tool.is_dir() else []


@pytest.mark.parametrize("fixture_id", CHOSEN)
def test_real_conversion_passes(fixture_id, private_cache):
    verdict = _judge(fixture_id)
    assert verdict.status == Status.PASSED, verdict.message
    note = port.run.notes(fixture_id)
    assert "cache miss" in note and f"opset {port.opset()}" in note, note
    assert ("fused LSTM" in note) or ("loop Loop" in note), note
    assert len(_entries(private_cache)) == 1
    (entry,) = _entries(private_cache)
    assert (entry / port.MODEL).stat().st_size > 0
    key = (entry / "key.json").read_text()
    import keras
    import tensorflow as tf
    from conformance import cache
    for part in (cache.fixture_key(FIXTURES[fixture_id]), VERSION, metadata.version("onnxruntime"), tf.__version__,
                 keras.__version__):
        assert f'"{part}"' in key, (part, key)


def test_a_cache_hit_gives_identical_arrays_and_does_not_convert(monkeypatch, private_cache):
    fixture = FIXTURES["bidirectional-lstm-return-state"].isolated()
    first = port.run(fixture)
    assert "cache miss" in port.run.notes(fixture.id)

    import tf2onnx
    monkeypatch.setattr(port, "convert", lambda *a, **k: pytest.fail("converted again on a cache hit"))
    monkeypatch.setattr(tf2onnx.convert, "from_keras", lambda *a, **k: pytest.fail("from_keras called on a hit"))
    again = FIXTURES["bidirectional-lstm-return-state"].isolated()
    second = port.run(again)
    assert "cache hit" in port.run.notes(fixture.id)
    assert list(first) == list(second) == list(fixture.expected)
    for key in first:
        assert first[key].dtype == second[key].dtype
        assert np.array_equal(first[key], second[key]), key
    assert len(_entries(private_cache)) == 1
    fixture.release()
    again.release()


def test_the_opset_is_part_of_the_key(monkeypatch, private_cache):
    port.run(FIXTURES["lstm-seed-question"].isolated())
    monkeypatch.setenv(port.OPSET_VARIABLE, "13")
    port.run(FIXTURES["lstm-seed-question"].isolated())
    note = port.run.notes("lstm-seed-question")
    assert "cache miss" in note and "opset 13" in note, note
    assert len(_entries(private_cache)) == 2


def test_an_opset_tf2onnx_does_not_know_is_a_conversion_error(monkeypatch, private_cache):
    """The converter itself raises (tf2onnx: "Opset 99 is not supported yet"): crashed, never cached."""
    monkeypatch.setenv(port.OPSET_VARIABLE, "99")
    with pytest.raises(ConversionError) as raised:
        port.run(FIXTURES["lstm-seed-question"].isolated())
    message = str(raised.value)
    assert f"tf2onnx {VERSION}" in message and "opset 99" in message.lower() and "raised" in message
    verdict = _judge("lstm-seed-question")
    assert verdict.status == Status.CRASHED, verdict.message
    assert port.OPSET_VARIABLE + "=99" in verdict.message  # the repro line carries the setting
    assert _entries(private_cache) == []


def test_a_model_the_runtime_refuses_is_a_conversion_error_every_time(monkeypatch, private_cache):
    """At opset 6 tf2onnx cannot map the loop's TensorList ops, leaves them in, and ONNX Runtime refuses the file."""
    monkeypatch.setenv(port.OPSET_VARIABLE, "6")
    for _ in range(2):  # a refusal is reported every time, never remembered in the cache
        with pytest.raises(ConversionError) as raised:
            port.run(FIXTURES["lstm-seed-question"].isolated())
        message = str(raised.value)
        assert "would not load" in message and f"tf2onnx {VERSION}" in message, message
        assert "Unsupported ops" in message, message
        assert _entries(private_cache) == []


def test_outputs_are_named_as_tf2onnx_names_them():
    assert port.unique_names(["rnn", "rnn", "rnn"]) == ["rnn", "rnn_1", "rnn_2"]
    assert port.unique_names(["a", "a_1", "a"]) == ["a", "a_1", "a_2"]

    class Model:
        output_names = ["bidirectional", "bidirectional_final_state", "bidirectional_final_state"]

    keys = ["output", "forward/state_h", "forward/state_c"]
    assert port.output_map(Model, ["bidirectional", "bidirectional_final_state", "bidirectional_final_state_1"],
                           keys) == {"output": "bidirectional", "forward/state_h": "bidirectional_final_state",
                                     "forward/state_c": "bidirectional_final_state_1"}
    with pytest.raises(ConversionError, match="should be"):  # a permuted graph is named, never guessed
        port.output_map(Model, ["bidirectional_final_state", "bidirectional", "bidirectional_final_state_1"], keys)


def test_info_names_the_tools_and_the_opset():
    details = port.run.info()
    assert details["tf2onnx"] == VERSION and details["onnxruntime"] == metadata.version("onnxruntime")
    assert details["opset"] == port.opset() and details["api"] == "tf2onnx.convert.from_keras"
    assert port.run.returns_trace is False
