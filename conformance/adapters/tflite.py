"""The ``tflite`` implementation: TensorFlow's own TFLite converter and interpreter on the fixture's model.

The fixture's layer becomes a functional Keras model with a fixed batch size
(``keras_load.contract_model``: the fixture's inputs in, its outputs out; a second model
with ``return_state=True`` gives the final states where the config does not return them),
gets the fixture weights, is converted with ``tf.lite.TFLiteConverter.from_keras_model``
(builtin ops only; ``SELECT_TF_OPS`` is enabled only when a builtin-only conversion
fails, and the notes say so) and run with the TFLite interpreter (``tf.lite.Interpreter``,
else ``ai_edge_litert``). This is the port embedded users deploy, so the ops the converter
produced are recorded per fixture (``run.notes(id)``) and across the run (``run.info()``):
a Keras 3 recurrent layer converts to a ``WHILE`` loop, a tf.keras 2 one may convert to
the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM``; when that path changes, the matrix shows it.

Stateful fixtures: the model is built stateful with an open time axis and converted with
resource variables, so the interpreter itself carries the states from one invocation to
the next. ``reset_before`` starts a fresh interpreter: ``Interpreter.reset_all_variables()``
resets only variable tensors, not the resource variables (``VAR_HANDLE``) holding the states.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import time
import warnings
from typing import Mapping

import numpy as np

from .. import cache
from ..errors import ConversionError, Unsupported
from .keras import LAYER_STATES, keras_module, keras_version, backend_name
from . import quiet
from .requires import distribution_version, require
from . import keras_load
from ..semantics.wrappers import wrapped_layers
from ..judge.contract import implementation

_NOTES: dict[str, str] = {}
_OPS_SEEN: set[str] = set()
_LOCK = threading.Lock()


def _tf():
    with quiet.importing("tensorflow"):  # its native start-up lines stay out of the run
        return require("tensorflow")  # the TFLite converter ships with it


def interpreter_class():
    """``tf.lite.Interpreter`` where TensorFlow still has it (deprecated there since 2.20), else LiteRT's."""
    tf = _tf()
    cls = getattr(getattr(tf, "lite", None), "Interpreter", None)
    if cls is not None:
        return cls, "tf.lite"
    try:
        litert = require("ai_edge_litert.interpreter")
    except Unsupported as exc:
        raise Unsupported(f"this TensorFlow has no tf.lite.Interpreter, so the tflite adapter {exc}") from None
    return litert.Interpreter, "ai_edge_litert"


def model_ops(flatbuffer: bytes) -> list[str]:
    """Sorted names of every operator in the converted model, in every subgraph (WHILE bodies too)."""
    from tensorflow.lite.python import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    ops = set()
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if names.get(builtin) == "CUSTOM":
            ops.add(f"CUSTOM:{(code.CustomCode() or b'?').decode()}")
        else:
            ops.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(ops)


def convert(model, stateful: bool = False) -> tuple[bytes, bool]:
    """TFLite flatbuffer of a Keras model; (bytes, whether SELECT_TF_OPS had to be enabled)."""
    tf = _tf()
    errors = []
    for select_tf_ops in (False, True):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if stateful:
            converter.experimental_enable_resource_variables = True
        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Keras's export prints its endpoints
                return converter.convert(), select_tf_ops
        except Exception as exc:  # noqa: BLE001 - the converter raises several kinds; both attempts are reported
            errors.append(f"{'SELECT_TF_OPS' if select_tf_ops else 'builtins'}: {type(exc).__name__}: "
                          + " ".join(str(exc).split())[:600])
    raise RuntimeError("TFLiteConverter.from_keras_model failed: " + " | ".join(errors))


def _feed(details: Mapping, chunk: Mapping[str, np.ndarray], input_keys) -> dict:
    feed = {}
    for key in input_keys:
        name = keras_load.input_name(key)
        if name not in details:
            raise RuntimeError(f"the converted model has no input {name!r} (it has {sorted(details)})")
        value = np.asarray(chunk[key])
        feed[name] = value.astype(bool if key == "mask" else np.int32 if value.dtype.kind == "i" else np.float32)
    return feed


def _outputs(result: Mapping[str, np.ndarray], output_keys, output_names) -> dict:
    """Signature outputs in the Keras model's output order: ``output_0``, ``output_1``... (Keras 3
    export), or the model's ``output_names`` (tf.keras 2)."""
    if all(re.fullmatch(r"output_\d+", n) for n in result):
        ordered = sorted(result, key=lambda n: int(n[len("output_"):]))
    else:
        ordered = list(output_names or ())
    if sorted(ordered) != sorted(result) or len(ordered) != len(output_keys):
        raise RuntimeError(f"the converted model returns outputs {sorted(result)}; expected {len(output_keys)} "
                           f"({', '.join(output_keys)}) named output_0... or {list(output_names or ())}")
    return {key: np.asarray(result[name]) for key, name in zip(output_keys, ordered)}


def _runner(flatbuffer: bytes, cls):
    """The default signature of a new interpreter (its variables freshly initialized)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice, once per fixture
        interpreter = cls(model_content=flatbuffer, num_threads=1)
    return interpreter.get_signature_runner()


class Converted:
    """One Keras model converted to TFLite, with what is needed to feed it and name its outputs.

    The flatbuffer and its feeding details are kept in the conversion cache (``conformance.cache``),
    keyed on the fixture digest, which model (configured, or with the final states), the TensorFlow
    and Keras versions and the Keras flavour, so a second run does not convert again. A subclass runs
    the same flatbuffer with another interpreter by overriding ``interpreter`` (``litert``).
    """

    TOOL = "tflite"   # the conversion cache's folder (a quantizing subclass, ``tflite_quantized``, has its own)

    @staticmethod
    def interpreter() -> tuple[type, str]:
        """(interpreter class, its name for messages)."""
        return interpreter_class()

    def __init__(self, fixture, config: Mapping, stateful: bool):
        parts = {"fixture": cache.fixture_key(fixture), "config": config, "stateful": stateful, "layout": 1,
                 "tensorflow": _tf().__version__, "keras": keras_version(), "backend": backend_name(),
                 "legacy_keras": os.environ.get("TF_USE_LEGACY_KERAS", ""),
                 **({"model": "static-batch"} if fixture.layer == "Model" else {})}  # a Model: its batch fixed
        folder, self.cache_hit = cache.entry(self.TOOL, parts, lambda out: self._convert(fixture, config, stateful, out))
        details = self.details = json.loads((folder / "details.json").read_text())
        self.flatbuffer = (folder / "model.tflite").read_bytes()
        self.input_keys, self.output_keys = details["input_keys"], details["output_keys"]
        self.output_names, self.ops, self.select_tf_ops = (details["output_names"], details["ops"],
                                                           details["select_tf_ops"])
        self.restart()

    def _convert(self, fixture, config: Mapping, stateful: bool, out) -> None:
        keras = keras_module()
        batch = int(np.shape(fixture.inputs["x"])[0])
        model, input_keys, output_keys = keras_load.contract_model(
            fixture.layer, config, fixture.weights, fixture.inputs, batch_size=batch, stateful=stateful, twin=False)
        flatbuffer, select_tf_ops = self.flatbuffer_of(model, stateful, fixture, input_keys)
        (out / "model.tflite").write_bytes(flatbuffer)
        (out / "details.json").write_text(json.dumps({
            "input_keys": input_keys, "output_keys": output_keys, "select_tf_ops": select_tf_ops,
            "output_names": list(getattr(model, "output_names", None) or ()), "ops": model_ops(flatbuffer),
            **self.described(flatbuffer)}))
        del model
        if hasattr(keras, "utils") and hasattr(keras.utils, "clear_session"):
            keras.utils.clear_session()  # symbolic models pile up in the global graph otherwise

    def flatbuffer_of(self, model, stateful: bool, fixture, input_keys) -> tuple[bytes, bool]:
        """The conversion (a subclass quantizes here)."""
        return convert(model, stateful=stateful)

    def described(self, flatbuffer: bytes) -> dict:
        """More details kept with the conversion (a subclass: the quantization scales)."""
        return {}

    def restart(self) -> None:
        """A fresh interpreter: ``Interpreter.reset_all_variables()`` resets variable tensors, not the
        resource variables (``VAR_HANDLE``) that hold Keras 3 states (measured on TF 2.21)."""
        self.runner = _runner(self.flatbuffer, self.interpreter()[0])

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict:
        feed = _feed(self.runner.get_input_details(), chunk, self.input_keys)
        try:
            result = self.runner(**feed)
        except RuntimeError as exc:
            flex = [op[len("CUSTOM:"):] for op in self.ops if op.startswith("CUSTOM:Flex")]
            if not flex and "failed to prepare" in str(exc):  # e.g. SLICE of ConvLSTM3D's 6-D sequence (max 5-D)
                raise ConversionError(f"TFLite {_tf().__version__}: the interpreter refused the converted model: "
                                      f"{' '.join(str(exc).split())[:300]}") from exc
            if not flex:
                raise
            # e.g. float64 and mixed precision layers: builtins alone failed, the TF ops written need the Flex delegate
            raise ConversionError(f"TFLite {_tf().__version__}: builtin ops could not express the model, and the "
                                  f"SELECT_TF_OPS conversion wrote TensorFlow ops ({', '.join(flex)}) that "
                                  f"{self.interpreter()[1]} cannot run: {' '.join(str(exc).split())[:300]}") from exc
        return _outputs(result, self.output_keys, self.output_names)


def _run(fixture, kind: type = Converted, notes: dict = _NOTES, ops_seen: set = _OPS_SEEN) -> dict[str, np.ndarray]:
    """``kind``: the conversion (``Converted``, or a quantizing subclass with its own notes and ops)."""
    keras_module()
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):  # every family (ConvLSTM too)
        raise Unsupported(f"the tflite adapter does not support layer {fixture.layer!r}")
    if backend_name() != "tensorflow":
        raise Unsupported(f"TFLiteConverter.from_keras_model needs the TensorFlow backend, not {backend_name()!r}")
    calls = fixture.meta.get("calls")
    started = time.perf_counter()
    models = [kind(fixture, fixture.config, bool(calls))]
    with_states = keras_load.returning_states(fixture.layer, fixture.config)
    if with_states != fixture.config:  # some layer does not return its final states
        models.append(kind(fixture, with_states, bool(calls)))
    converted = time.perf_counter()
    ops = sorted(set().union(*(m.ops for m in models)))
    note = "ops " + ",".join(ops) + ("; cached conversion" if all(m.cache_hit for m in models) else "")
    if any(m.select_tf_ops for m in models):
        note += " (SELECT_TF_OPS enabled: builtins alone failed)"
    with _LOCK:
        notes[fixture.id] = note
        ops_seen.update(ops)

    def outputs(chunk) -> dict:
        result = {}
        for model in models:  # the configured model first: its outputs win, the second adds the states
            result.update({k: v for k, v in model(chunk).items() if k not in result})
        return result

    if not calls:
        result = outputs(fixture.inputs)
    else:
        from ..semantics.wrappers import call_prefix, prefixed, split_calls
        result = {}
        for k, chunk in enumerate(split_calls(fixture.inputs, calls)):
            if k in calls.get("reset_before", ()):
                for model in models:
                    model.restart()
                note += "" if "fresh interpreter" in note else "; reset_before by a fresh interpreter"
            result.update(prefixed(outputs(chunk), call_prefix(k)))
    with _LOCK:
        notes[fixture.id] = (note + f"; {len(models)} model(s), convert (or cache) {converted - started:.2f} s, "
                              f"run {time.perf_counter() - converted:.2f} s")
    return result


def notes(fixture_id: str) -> str | None:
    """The ops the converter produced for this fixture (and timings), once it has run."""
    return _NOTES.get(fixture_id)


def info() -> dict:
    details = {"keras": keras_version(), "backend": backend_name()}
    try:
        details["tensorflow"] = _tf().__version__
        details["interpreter"] = interpreter_class()[1]
    except Unsupported as exc:
        return {"not_installed": str(exc)}
    details["tflite_ops"] = ",".join(sorted(_OPS_SEEN)) or "(none converted yet)"
    return details


# the tool's version (TFLite ships inside TensorFlow), not the suite's; None where TensorFlow is not installed


@implementation(
    version=distribution_version("tensorflow") or distribution_version("tensorflow-cpu"),
    info=info,
    notes=notes,
    keras_version=keras_version,
    backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``tflite``.

    The fixture's model is converted as configured; where it does not return its final
    states, the same layers with ``return_state=True`` are converted as a second model
    for them. (One model holding both tripped the converter on tf.keras 2: a fused
    UNIDIRECTIONAL_SEQUENCE_LSTM beside a WHILE-loop LSTM gave wrong final states.)
    """
    _tf()
    if "ConvLSTM3D" in wrapped_layers(fixture.layer, fixture.config):  # measured on TF 2.21: every one refused
        raise Unsupported("tf.lite.Interpreter's SLICE and STRIDED_SLICE kernels take at most 5-D tensors, and the "
                          "converted ConvLSTM3D slices its 6-D input sequence each step, so TF 2.21.0's interpreter "
                          "refuses the model when it allocates its tensors (measured: \"StridedSlice op only "
                          "supports 1D-5D input arrays. Node number 2 (STRIDED_SLICE) failed to prepare\"); LiteRT's "
                          "interpreter runs the same flatbuffer (the litert port)")
    with quiet.calls():  # the converter's and interpreter's notices stay out of reports
        return _run(fixture)
