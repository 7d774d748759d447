"""``tflite-dynamic-range`` and ``tflite-int8``: TFLite's post-training quantization of the fixture's model.

Both convert the model the ``tflite`` adapter converts (``tflite.Converted``) with
``converter.optimizations = [tf.lite.Optimize.DEFAULT]`` and run it in the same interpreter;
they are approximate ports (SPEC 7.8), judged by ``conformance.judge.approximate``:

- ``tflite-dynamic-range``: weights stored in int8, activations computed in float
  (no representative dataset). TFLite quantizes only weight tensors of at least 1024
  elements, so most gallery layers keep float weights: the note says how many were quantized.
- ``tflite-int8``: full integer quantization, ``TFLITE_BUILTINS_INT8`` only (float inputs and
  outputs, quantized at the boundary), calibrated on a representative dataset of one sample:
  the fixture's own inputs. The recurrent layers are converted with ``unroll=True`` (Keras
  computes the same): calibrating the ``WHILE`` loop a rolled Keras 3 layer converts to
  crashes TensorFlow 2.21's calibrator with a segmentation fault in ``FeedTensor``
  (measured on lstm-basic, every representative-dataset form). A stateful model has an open
  time axis, which unrolling cannot take: stateful fixtures are unsupported.

The step reported for ``int8`` is the coarsest quantization scale of the int8 tensors the
model dequantizes into its outputs (the tool's own scale, read from the flatbuffer); for
dynamic range, the coarsest scale of the weights it quantized.
"""

from __future__ import annotations

import contextlib
import io
import threading

import numpy as np

from ..errors import ConversionError, Unsupported
from ..judge.contract import implementation
from . import keras_load, quiet, tflite
from .requires import distribution_version

_LOCK = threading.Lock()


def unrolled(layer: str, config: dict) -> dict:
    """The config with ``unroll=True`` on every recurrent layer (a stack's too)."""
    if layer == "Stacked":
        return {**config, "layers": [{**sub, "config": {**sub["config"], "unroll": True}} for sub in config["layers"]]}
    return {**config, "unroll": True}


def _interpreter(flatbuffer: bytes):
    """An interpreter without the default (XNNPACK) delegate, so that every op and tensor stays visible."""
    tf = tflite._tf()
    interpreter = tf.lite.Interpreter(
        model_content=flatbuffer, num_threads=1,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def output_scales(flatbuffer: bytes) -> dict[str, float]:
    """Per signature output: the scale of the int8 tensor a DEQUANTIZE op turns into it (absent: none)."""
    interpreter = _interpreter(flatbuffer)
    scales = {t["index"]: t["quantization_parameters"]["scales"] for t in interpreter.get_tensor_details()}
    producer = {}
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            producer[int(index)] = op
    found = {}
    for name, detail in interpreter.get_signature_runner().get_output_details().items():
        op = producer.get(int(detail["index"]))
        if op is not None and op["op_name"] == "DEQUANTIZE" and len(scales.get(int(op["inputs"][0]), ())):
            found[name] = float(np.max(scales[int(op["inputs"][0])]))
    return found


def weight_scales(flatbuffer: bytes) -> list[float]:
    """The largest scale of every int8 constant (a weight), in every subgraph (a WHILE body's too)."""
    from tensorflow.lite.python import schema_py_generated as schema
    model = schema.Model.GetRootAs(flatbuffer, 0)
    found = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            quantization = tensor.Quantization()
            if (tensor.Type() == schema.TensorType.INT8 and quantization is not None and quantization.ScaleLength()
                    and model.Buffers(tensor.Buffer()).DataLength()):
                found.append(float(quantization.ScaleAsNumpy().max()))
    return found


def _quantize(model, fixture, input_keys, representative: bool) -> bytes:
    tf = tflite._tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if representative:
        sample = {keras_load.input_name(k): np.asarray(fixture.inputs[k], bool if k == "mask" else np.float32)
                  for k in input_keys}
        converter.representative_dataset = lambda: iter([sample])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return converter.convert()
    except Exception as exc:
        raise ConversionError(f"TFLiteConverter ({'int8' if representative else 'dynamic range'}) failed: "
                           + " ".join(str(exc).split())[:600]) from exc


class DynamicRange(tflite.Converted):
    """Weights in int8, activations in float."""
    TOOL = "tflite-dynamic-range"

    def flatbuffer_of(self, model, stateful, fixture, input_keys):
        return _quantize(model, fixture, input_keys, representative=False), False

    def described(self, flatbuffer: bytes) -> dict:
        return {"weight_scales": weight_scales(flatbuffer)}


class FullInt8(tflite.Converted):
    """Every op in int8, calibrated on the fixture's inputs; the recurrent layers unrolled."""
    TOOL = "tflite-int8"

    def __init__(self, fixture, config, stateful: bool):
        super().__init__(fixture, unrolled(fixture.layer, config), stateful)

    def flatbuffer_of(self, model, stateful, fixture, input_keys):
        return _quantize(model, fixture, input_keys, representative=True), False

    def described(self, flatbuffer: bytes) -> dict:
        return {"output_scales": output_scales(flatbuffer)}


_NOTES: dict[str, dict[str, str]] = {"tflite-dynamic-range": {}, "tflite-int8": {}}
_OPS: dict[str, set] = {"tflite-dynamic-range": set(), "tflite-int8": set()}
_STEPS: dict[str, dict[str, float | None]] = {"tflite-dynamic-range": {}, "tflite-int8": {}}


def _port(kind: type, name: str):
    made: dict[str, list] = {}

    class Recording(kind):
        def __init__(self, fixture, config, stateful):
            super().__init__(fixture, config, stateful)
            with _LOCK:
                made.setdefault(fixture.id, []).append(self)

    def run(fixture):
        tflite._tf()
        if kind is FullInt8 and fixture.meta.get("calls"):
            raise Unsupported("a stateful model is converted with an open time axis, which unroll=True cannot take "
                              "(and calibrating the WHILE loop of a rolled layer crashes TensorFlow 2.21's calibrator)")
        with _LOCK:
            made.pop(fixture.id, None)
        with quiet.calls():
            result = tflite._run(fixture, Recording, _NOTES[name], _OPS[name])
        with _LOCK:
            models = made.pop(fixture.id, [])
        if kind is FullInt8:
            scales = [s for m in models for s in m.details.get("output_scales", {}).values()]
            note = f"; output scales {', '.join(f'{s:.3g}' for s in scales)}"
        else:
            scales = [s for m in models for s in m.details.get("weight_scales", [])]
            note = (f"; {len(scales)} weight tensor(s) quantized" if scales else
                    "; no weight quantized (TFLite's dynamic range quantizes weight tensors of 1024 elements or more)")
        with _LOCK:
            _STEPS[name][fixture.id] = max(scales) if scales else None
            _NOTES[name][fixture.id] = _NOTES[name].get(fixture.id, "") + note
        return result

    def numeric_format(fixture) -> dict:
        """int8, with the step the converter chose for this fixture (None before it ran or where none)."""
        return {"format": "int8" if kind is FullInt8 else "int8 weights (dynamic range)",
                "step": _STEPS[name].get(fixture.id)}

    def info() -> dict:
        details = tflite.info()
        if "not_installed" not in details:
            details.pop("tflite_ops", None)
            details["tflite_ops"] = ",".join(sorted(_OPS[name])) or "(none converted yet)"
        return details

    run.__doc__ = f"Entry point ``{name}``: {kind.__doc__}"
    return implementation(numeric_format=numeric_format, info=info,
                          version=distribution_version("tensorflow") or distribution_version("tensorflow-cpu"),
                          notes=lambda fixture_id: _NOTES[name].get(fixture_id),
                          keras_version=tflite.keras_version, backend=tflite.backend_name)(run)


run_dynamic_range = _port(DynamicRange, "tflite-dynamic-range")
run_int8 = _port(FullInt8, "tflite-int8")
