"""``hls4ml``: the fixture's Keras model compiled by hls4ml into fixed-point C++ (``ap_fixed<16,6>``) and run.

hls4ml translates a Keras model into HLS C++ for FPGAs; ``HLSModel.compile()`` builds that C++
with the host's g++ into a shared library (the bit-accurate C simulation) and ``predict`` runs it.
Every value is ``ap_fixed<16,6>`` (``config_from_keras_model(default_precision=...)``; the
Vivado backend, ``io_parallel``), and the activations are lookup tables, so this is an
approximate port (SPEC 7.8), judged by its semantics, not the float tolerance.

Only what hls4ml's Keras 3 parser takes: one ``LSTM``, ``GRU`` or ``SimpleRNN`` layer on the
fixture's ``x`` (no mask, initial state or stateful calls); it returns ``output`` only (the final
states are not outputs of the HLS model), so a fixture that also expects states is ``partial``.
Anything hls4ml itself rejects or fails to build is a ``ConversionError`` (crashed), with its message.
"""

from __future__ import annotations

import contextlib
import io
import tempfile

import numpy as np

from ..errors import ConversionError, Unsupported
from ..judge.contract import implementation
from . import keras_load, quiet
from .keras import backend_name, keras_module, keras_version
from .requires import distribution_version, require

FORMAT = "ap_fixed<16,6>"
LAYERS = ("LSTM", "GRU", "SimpleRNN")


def _hls4ml():
    with quiet.importing("hls4ml"):
        return require("hls4ml")


def supports(fixture) -> str | None:
    """Why hls4ml's Keras parser cannot take this fixture's model, or None."""
    if fixture.layer not in LAYERS:
        return f"the hls4ml adapter converts one {', '.join(LAYERS)} layer, not {fixture.layer!r}"
    extra = sorted(k for k in fixture.inputs if k != "x")
    if extra or fixture.meta.get("calls"):
        return f"the hls4ml adapter feeds x only (this fixture needs {', '.join(extra) or 'stateful calls'})"
    if fixture.config.get("return_state"):
        return "an HLS model's outputs are the layer's output only, and this layer returns its states with it"
    return None


def returns(fixture):
    return ("output",)


def _build(fixture, folder: str):
    hls4ml = _hls4ml()
    batch = int(np.shape(fixture.inputs["x"])[0])
    model, _, output_keys = keras_load.contract_model(fixture.layer, fixture.config, fixture.weights,
                                                      fixture.inputs, batch_size=batch, twin=False)
    if output_keys != ["output"]:
        raise Unsupported(f"the model's outputs are {output_keys}, not the layer's output alone")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints every layer it parses
            config = hls4ml.utils.config_from_keras_model(model, granularity="name", default_precision=FORMAT)
            hls_model = hls4ml.converters.convert_from_keras_model(
                model, hls_config=config, output_dir=folder, backend="Vivado", io_type="io_parallel")
            hls_model.compile()  # g++ builds the C simulation into a shared library, loaded with ctypes
    except Exception as exc:
        raise ConversionError(f"hls4ml {type(exc).__name__}: {exc}") from exc
    return model, hls_model


def _run(fixture) -> dict[str, np.ndarray]:
    why = supports(fixture)
    if why:
        raise Unsupported(why)
    if backend_name() != "tensorflow":
        raise Unsupported(f"hls4ml's Keras 3 parser is used here on the TensorFlow backend, not {backend_name()!r}")
    keras = keras_module()
    with tempfile.TemporaryDirectory(prefix="hls4ml-") as folder:
        model, hls_model = _build(fixture, folder)
        x = np.ascontiguousarray(fixture.inputs["x"], np.float32)
        with contextlib.redirect_stdout(io.StringIO()):
            got = np.asarray(hls_model.predict(x), np.float64)
        shape = (x.shape[0], *model.outputs[0].shape[1:])
    if hasattr(keras, "utils") and hasattr(keras.utils, "clear_session"):
        keras.utils.clear_session()
    return {"output": got.reshape(shape).astype(np.float32)}


def info() -> dict:
    try:
        return {"hls4ml": _hls4ml().__version__, "keras": keras_version(), "format": FORMAT}
    except Unsupported as exc:
        return {"not_installed": str(exc)}


@implementation(version=distribution_version("hls4ml"), info=info, supports=supports, returns=returns,
                returns_trace=False, numeric_format=FORMAT, keras_semantics=keras_version)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``hls4ml``."""
    with quiet.calls():
        return _run(fixture)
