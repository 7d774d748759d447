"""The ``openvino`` / ``openvino-f32`` ports: real ``openvino.convert_model`` conversions of gallery fixtures.

Each test converts with the real tool (a few seconds a fixture) into a private conversion cache.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("tensorflow")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import openvino as ov_port
from conformance.registry import Implementation
from conformance.suite import Case, judge
from conformance.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
# a plain masked LSTM (model file), a Bidirectional with five outputs, a stateful fixture (built stateless)
CHOSEN = ["lstm-mask-trailing", "bidirectional-lstm-return-state", "stateful-gru-reset-before"]



def _judge(run, name, fixture_id):
    return judge(Case(Implementation(name, f"conformance.adapters.openvino:{run.__name__}", run.version, None,
                                     _loader=lambda: run), FIXTURES[fixture_id]))


@pytest.mark.parametrize("fixture_id", CHOSEN)
def test_f32_passes(fixture_id):
    verdict = _judge(ov_port.run_f32, "openvino-f32", fixture_id)
    assert verdict.status == Status.PASSED, verdict.message
    note = ov_port.run_f32.notes(fixture_id)
    assert note.startswith("inference precision f32 on CPU; cache miss"), note


def test_reported_precision_is_what_the_compiled_model_says():
    """info() and notes() report the compiled model's own INFERENCE_PRECISION_HINT, for both implementations."""
    import openvino as ov
    fixture = FIXTURES["lstm-mask-trailing"].isolated()
    for run, config in ((ov_port.run, {}), (ov_port.run_f32, {"INFERENCE_PRECISION_HINT": "f32"})):
        run(fixture)
        folder, hit = ov_port.cache.entry(ov_port.TOOL, ov_port.cache_parts(fixture), pytest.fail)
        assert hit
        compiled = ov.Core().compile_model(str(folder / ov_port.IR_NAME), "CPU", config)
        said = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        assert run.info()["inference_precision"] == said
        assert run.notes(fixture.id).startswith(f"inference precision {said} on CPU;")
    assert ov_port.run_f32.info()["inference_precision"] == "f32"
    device_default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    assert ov_port.run.info()["inference_precision"] == device_default
    assert ov_port.run.info()["default_inference_precision"] == device_default
    # where OpenVINO defaults to bf16, the CPU says it computes bf16 natively
    if device_default == "bf16":
        assert "BF16" in ov_port.run.info()["optimization_capabilities"]


def test_cache_hit_gives_identical_arrays_without_reconverting(monkeypatch):
    fixture = FIXTURES["stateful-gru-reset-before"]
    first = ov_port.run_f32(fixture.isolated())
    assert "cache miss" in ov_port.run_f32.notes(fixture.id)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again on a cache hit")
    monkeypatch.setattr(ov_port, "build_ir", no_conversion)
    monkeypatch.setattr(ov_port.ported, "keras_graph", no_conversion)  # a hit needs no Keras model either
    second = ov_port.run_f32(fixture.isolated())
    assert "cache hit" in ov_port.run_f32.notes(fixture.id)
    assert sorted(first) == sorted(second) == sorted(fixture.meta["outputs"])
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_outputs_are_mapped_by_signature_position_not_by_name_as_text():
    """Output ``output_<k>`` is the model's k-th output, whatever order the names sort in."""
    fixture = FIXTURES["bidirectional-lstm-return-state"].isolated()
    ov_port.run_f32(fixture)
    folder, _ = ov_port.cache.entry(ov_port.TOOL, ov_port.cache_parts(fixture), pytest.fail)
    loaded = ov_port.Loaded(folder, "openvino-f32")
    mapping = {next(iter(port.get_names())): key for port, key in loaded.outputs}
    assert mapping == {f"output_{k}": key for k, key in enumerate(fixture.meta["model_file"]["outputs"])}


def test_a_convert_model_failure_is_crashed_and_names_the_tool(monkeypatch):
    """OpenVINO's own failure is ``crashed`` (ConversionError) with its version and error, and nothing is cached."""
    import openvino as ov

    def refusing(*args, **kwargs):
        raise RuntimeError("Check 'is_conversion_successful' failed: unsupported op Foo")
    real = ov.convert_model
    monkeypatch.setattr(ov, "convert_model", refusing)
    verdict = _judge(ov_port.run_f32, "openvino-f32", "lstm-seed-question")
    assert verdict.status == Status.CRASHED, verdict.message
    assert f"OpenVINO {ov_port.run_f32.version} convert_model failed: RuntimeError: Check" in verdict.message
    fixture = FIXTURES["lstm-seed-question"]
    monkeypatch.setattr(ov, "convert_model", real)  # not undo(): that would also drop the private cache folder
    assert ov_port.cache.entry(ov_port.TOOL, ov_port.cache_parts(fixture),
                               lambda where: ov_port.build_ir(fixture, where))[1] is False  # not remembered
