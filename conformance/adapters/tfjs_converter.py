"""The ``tfjs-converter`` port: the TensorFlow.js user path, ``tensorflowjs_converter`` then ``tf.loadLayersModel``.

What a user does, step by step. The fixture's model (``keras_load.contract_model``: the fixture's inputs in,
its output and final states out, the fixture's weights set) is saved as a Keras HDF5 file
(``model.save("model.h5")``) and converted by tensorflowjs 4.22.0's converter, the function its
``tensorflowjs_converter`` command runs (``converter.convert``, ``--input_format=keras
--output_format=tfjs_layers_model``), into ``model.json`` and its weight shards. Node.js loads them with
``tf.loadLayersModel`` (the tfjs port's runner and node modules, ``@tensorflow/tfjs`` 4.22.0, pure-JS CPU
backend; the files read as tfjs-node's ``file://`` handler reads them) and calls ``model.predict``; a
stateful fixture is one ``predict`` per call, ``model.resetStates()`` before each call in ``reset_before``.
Nothing is rebuilt from the fixture's config on the JavaScript side: where ``tfjs-converter`` and ``tfjs``
(layers built from the config) differ on a fixture, the conversion or tfjs's model loading differs.

Which Keras. tensorflowjs 4.22.0 depends on tf-keras (Keras 2) and reads its HDF5 files; its Keras 3 input
(``--input_format=keras_keras``, a ``.keras`` file) converts, but tfjs 4.22.0 cannot load what it writes
("An InputLayer should be passed either a `batchInputShape` or an `inputShape`": Keras 3 names the input
shape ``batch_shape``), tensorflow/tfjs#8489 and #8494; a maintainer's answer is to convert from Keras 2
(tensorflow/tfjs#8358). So the model is built with tf-keras (``TF_USE_LEGACY_KERAS=1``, as the
``ports-tfjs-converter`` env sets); under Keras 3 every fixture is skipped with that reason
(``conformance/report/not_run.yaml`` has the Keras 3 path's exact error).

Conversions are cached (``conformance.cache``, tool ``tfjs-converter``), keyed on the fixture and the
tensorflowjs, TensorFlow and Keras versions. Needs TensorFlow, tf-keras and tensorflowjs to convert, Node.js and
the tfjs port's node modules (``python -m conformance.adapters.tfjs --install``) to run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import cache
from ..errors import ConversionError, Unsupported
from ..semantics import wrappers
from . import keras_load, quiet, tfjs
from .keras import LAYER_STATES, backend_name, is_keras3, keras_module, keras_version
from .requires import check_installed, distribution_version, require
from .tfjs.translate import decode_array, encode_array
from ..judge.contract import implementation

DISTRIBUTION = "tensorflowjs"
TOOL = "tfjs-converter"   # the conversion cache's folder
KERAS3_PATH = ("tensorflowjs 4.22.0's Keras 3 input (--input_format=keras_keras) converts, but tfjs 4.22.0's "
               "loadLayersModel refuses what it writes: \"An InputLayer should be passed either a `batchInputShape` "
               "or an `inputShape`.\" (Keras 3 writes batch_shape; tensorflow/tfjs#8489, #8494); the port converts "
               "from tf-keras (Keras 2) HDF5, as tfjs's maintainers advise (tensorflow/tfjs#8358): set "
               "TF_USE_LEGACY_KERAS=1 with tf-keras installed (tox -e ports-tfjs-converter)")
PHASES = {"load": "loading the converted model (tf.loadLayersModel)", "run": "running model.predict",
          "protocol": "reading the request"}
_NOTES: dict[str, str] = {}


def _converter():
    # TF-DF (imported by the converter) prints a welcome unless this is set, and where stdout is not a terminal
    # (pytest capturing it) takes itself for a notebook and imports IPython for it, which fails without IPython
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    with quiet.importing("tensorflowjs"):  # it imports TensorFlow, TF-DF, JAX and tensorflow_hub, which all talk
        return require("tensorflowjs.converters.converter")


def supports(fixture) -> str | None:
    """Node.js or its modules missing, Keras 3 (whose converted models tfjs cannot load), or no model for the layer."""
    reason = tfjs.readiness()
    if reason:
        return reason
    try:
        check_installed("tensorflowjs")
        if is_keras3():
            return KERAS3_PATH
    except Unsupported as exc:
        return str(exc)
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):
        return f"no Keras model for layer {fixture.layer!r}"
    if fixture.layer == "Bidirectional" and fixture.meta.get("calls"):
        # the in-process ports read those states from the Keras layer's variables; a loaded tfjs model is in Node
        return ("a stateful Bidirectional: the model built for it outputs no states (keras_load.contract_model: "
                "Keras 3's Bidirectional.compute_mask raises for a stateful one returning them, SPEC 5.10), and this "
                "adapter does not read the state variables of the layers tf.loadLayersModel loads, so the per-copy "
                "states the fixture asserts would have nothing to compare with")
    return None


def _convert(fixture, stateful: bool, out: Path) -> None:
    """``model.h5`` from the fixture's tf-keras model, converted into ``out`` as ``tensorflowjs_converter`` does."""
    converter = _converter()
    keras = keras_module()
    batch = int(np.shape(fixture.inputs["x"])[0]) if stateful else None
    model, input_keys, output_keys = keras_load.contract_model(fixture.layer, fixture.config, fixture.weights,
                                                               fixture.inputs, batch_size=batch, stateful=stateful)
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-tfjs-converter-") as tmp:
        h5 = Path(tmp) / "model.h5"
        with quiet.calls(), contextlib.redirect_stdout(io.StringIO()):
            model.save(h5)  # what a Keras 2 user's model.save("model.h5") writes
            try:
                converter.convert(["--input_format=keras", "--output_format=tfjs_layers_model", str(h5), str(out)])
            except Exception as exc:  # the converter's own failure, reported as the tool's
                raise ConversionError(f"tensorflowjs {distribution_version(DISTRIBUTION)}: tensorflowjs_converter "
                                      f"--input_format=keras failed for fixture {fixture.id!r}: "
                                      f"{type(exc).__name__}: {exc}") from exc
    (out / "details.json").write_text(json.dumps({"input_keys": input_keys, "output_keys": output_keys}))
    del model
    keras.backend.clear_session()  # symbolic models pile up in the global graph otherwise


def converted(fixture) -> tuple[Path, dict, bool]:
    """(folder with model.json and its shards, details, cache hit): the conversion, cached."""
    stateful = bool(fixture.meta.get("calls"))
    parts = {"fixture": cache.fixture_key(fixture), "stateful": stateful, "layout": 1,
             "tensorflowjs": distribution_version(DISTRIBUTION), "tensorflow": distribution_version("tensorflow"),
             "keras": keras_version(), "legacy_keras": os.environ.get("TF_USE_LEGACY_KERAS", "")}
    folder, hit = cache.entry(TOOL, parts, lambda out: _convert(fixture, stateful, out))
    return folder, json.loads((folder / "details.json").read_text()), hit


def _chunks(fixture, input_keys) -> list[list[dict]]:
    """The model's inputs per call, in its input order (one call unless the fixture is stateful)."""
    calls = fixture.meta.get("calls")
    chunks = wrappers.split_calls(fixture.inputs, calls) if calls else [fixture.inputs]
    missing = [k for k in input_keys if k not in chunks[0]]
    if missing:
        raise Unsupported(f"the model's inputs {missing} are not fed per call of a stateful fixture")
    return [[encode_array(chunk[k], bool if k == "mask" else np.float32) for k in input_keys] for chunk in chunks]


def _refusal(error: dict) -> str | None:
    """A layer tfjs 4.22.0 does not have, as ``tf.loadLayersModel`` says it: a skip, as the ``tfjs`` port skips it."""
    message = str(error.get("message", ""))
    if error.get("phase") != "load":
        return None
    if "does not support reset_after" in message:
        return (f"tfjs {tfjs.TFJS_VERSION}'s loadLayersModel refuses GRU reset_after=True ({message}); its GRUCell "
                f"documents resetAfter 'only false is supported' (tfjs-layers/src/layers/recurrent.ts lines 1289-1294 "
                f"and 1337-1340 at tfjs-v{tfjs.TFJS_VERSION})")
    if message.startswith("Unknown layer: ConvLSTM1D"):
        return (f"tfjs {tfjs.TFJS_VERSION} has no ConvLSTM1D layer, so loadLayersModel refuses the converted model "
                "(\"Unknown layer: ConvLSTM1D\"; the tfjs port runs it as a ConvLSTM2D of width 1)")
    if message.startswith("Unknown layer: ConvLSTM3D"):
        return (f"tfjs {tfjs.TFJS_VERSION} has no ConvLSTM3D layer, so loadLayersModel refuses the converted model "
                "(\"Unknown layer: ConvLSTM3D\"; the tfjs port has no counterpart either)")
    return None


def notes(fixture_id: str) -> str | None:
    return _NOTES.get(fixture_id)


def info() -> dict:
    reason = tfjs.readiness()
    try:
        check_installed("tensorflowjs")
    except Unsupported as exc:
        reason = reason or str(exc)
    if reason:
        return {"not_installed": reason}
    return {"tensorflowjs": distribution_version(DISTRIBUTION), "tfjs": tfjs.TFJS_VERSION,
            "input_format": "keras (tf-keras HDF5)", "keras": keras_version(), "backend": backend_name(),
            "node": tfjs.info().get("node")}


@implementation(
    version=distribution_version(DISTRIBUTION),
    info=info,
    notes=notes,
    supports=supports,
    returns_trace=False,  # tfjs exposes no per-gate values
    repro_env=(tfjs.ENV_MODULES, "TF_USE_LEGACY_KERAS"),
    keras_semantics=keras_version)  # the Keras that built the model it converts: tf-keras 2 (SPEC 7.7)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``tfjs-converter``: the converter's files loaded by ``tf.loadLayersModel`` (module docstring)."""
    reason = supports(fixture)
    if reason:
        raise Unsupported(reason)
    folder, details, hit = converted(fixture)
    input_keys, output_keys = details["input_keys"], details["output_keys"]
    calls = fixture.meta.get("calls") or {}
    request = {"op": "layers-model", "fixture": fixture.id, "model": str(folder / "model.json"),
               "inputs": _chunks(fixture, input_keys), "reset_before": list(calls.get("reset_before", ()))}
    from ..judge.options import run_limit
    limit = run_limit(fixture)
    response = tfjs.ask(request, f"fixture {fixture.id!r}", limit - min(1.0, 0.1 * limit))
    if "error" in response:
        error = response["error"]
        refusal = _refusal(error)
        if refusal:
            raise Unsupported(refusal)
        stack = "\n".join("  | " + line for line in str(error.get("stack", "")).splitlines()[1:6])
        raise ConversionError(f"tfjs {tfjs.TFJS_VERSION} threw while {PHASES.get(error.get('phase'), 'running')} "
                              f"for fixture {fixture.id!r}: {error.get('name', 'Error')}: {error.get('message', '')}"
                              + (f"\n{stack}" if stack else ""))
    _NOTES[fixture.id] = "cached conversion" if hit else "converted"
    result = {}
    for k, outputs in enumerate(response["results"]):
        if len(outputs) != len(output_keys):
            raise ConversionError(f"tfjs {tfjs.TFJS_VERSION}: the converted model of fixture {fixture.id!r} returned "
                                  f"{len(outputs)} outputs, the Keras model has {len(output_keys)} ({output_keys})")
        named = {key: decode_array(array) for key, array in zip(output_keys, outputs)}
        result.update(wrappers.prefixed(named, wrappers.call_prefix(k)) if calls else named)
    return result
