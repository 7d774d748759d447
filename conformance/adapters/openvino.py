"""The ``openvino`` and ``openvino-f32`` implementations: the fixture's Keras model converted by OpenVINO, run on CPU.

Conversion path: OpenVINO's guide for Keras 3 ("Converting a Keras Model") says to export the
model to a TensorFlow SavedModel with ``model.export(path)`` and convert that folder with
``openvino.convert_model(path)``; that is what this port does. (``convert_model`` also accepts a
live ``keras.Model`` on the TensorFlow backend by tracing it; that path names the outputs after
Keras's global tensor counter, ``keras_tensor_17``, which is not stable from one session to the
next, while the SavedModel signature names them ``output_0``, ``output_1``... by position.)
The model is the one ``ported.keras_graph`` gives: the fixture's own model file, or for stateful
fixtures the same layers built stateless with the initial states as inputs, the calls then
carried by hand (``ported.run_calls``).

The IR (``openvino.save_model(..., compress_to_fp16=False)``: the weights stay exactly what
``convert_model`` produced; ``save_model``'s default would round them to float16) is cached per
fixture (``conformance.cache``, tool ``openvino``), keyed on the fixture digest and the OpenVINO,
TensorFlow and Keras versions. Both implementations read the same IR; they differ only at
``compile_model`` on ``"CPU"``:

* ``openvino``: the default configuration, what a user gets. On a CPU with native bfloat16
  (AVX512_BF16 or AMX; OpenVINO lists ``BF16`` in the device's ``OPTIMIZATION_CAPABILITIES``)
  the CPU plugin's default ``INFERENCE_PRECISION_HINT`` is ``bf16``, so the recurrent loop runs in
  bfloat16; elsewhere it is ``f32``.
* ``openvino-f32``: ``INFERENCE_PRECISION_HINT = f32`` (``openvino.properties.hint.inference_precision``).

The precision each compiled model reports (``compiled.get_property(INFERENCE_PRECISION_HINT)``)
is in ``run.notes(id)`` and ``run.info()``, with the CPU's name and bfloat16 capability.

Inputs are fed by name (the Keras input names, ``keras_load.input_name``); outputs are read by
their signature names ``output_<k>``, ``k`` being the position in the Keras model's outputs (never
by sorting the names as text: ``output_10`` sorts before ``output_2``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import cache
from ..errors import ConversionError, Unsupported
from . import keras_load, ported, quiet
from .keras import LAYER_STATES
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

TOOL = "openvino"
DEVICE = "CPU"
LAYOUT = 1                  # the cache entry's layout (bump when what is stored changes)
IR_NAME = "model.xml"       # beside it, model.bin
CONTRACT = "contract.json"  # input and output keys, IR ops, conversion times
OUTPUT_NAME = re.compile(r"output_(\d+)")
SETTINGS = {"path": "keras model.export(tf_saved_model) -> openvino.convert_model", "compress_to_fp16": False}

_NOTES: dict[str, str] = {}
# the precision of the model each implementation compiled last (the case just run: the ledger's `when` reads it)
# and every precision it has compiled in this process (the header and the report)
_LAST_PRECISION: dict[str, str] = {}
_PRECISIONS: dict[str, set] = {"openvino": set(), "openvino-f32": set()}
_LOCK = threading.Lock()



def _ov():
    with quiet.importing("openvino"):
        return require("openvino")


_CORE = None


def core():
    """One ``openvino.Core`` for the process (it holds the CPU plugin; creating one per fixture is slow)."""
    global _CORE
    with _LOCK:
        if _CORE is None:
            _CORE = _ov().Core()
        return _CORE


def _precision_key():
    return _ov().properties.hint.inference_precision


def compile_config(impl: str) -> dict:
    """What ``compile_model`` gets: the plugin's defaults for ``openvino``, the f32 hint for ``openvino-f32``."""
    if impl == "openvino":
        return {}
    if impl == "openvino-f32":
        return {_precision_key(): _ov().Type.f32}
    raise ValueError(f"unknown OpenVINO implementation {impl!r}")


def _type_name(value) -> str:
    """``<Type: 'bfloat16'>`` as ``bf16``, the spelling OpenVINO's documentation uses."""
    get = getattr(value, "get_type_name", None)
    return get() if callable(get) else str(value)


@functools.lru_cache(maxsize=None)
def cpu_capabilities() -> dict:
    """The CPU device's name, OpenVINO's view of its capabilities, and the bfloat16 instructions it has.

    Asked once per process: ``info()`` runs after every case, and the machine does not change in between."""
    ov_core = core()
    found = {"cpu": str(ov_core.get_property(DEVICE, "FULL_DEVICE_NAME")),
             "optimization_capabilities": ",".join(ov_core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")),
             "default_inference_precision": _type_name(ov_core.get_property(DEVICE, _precision_key()))}
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
        found["cpu_bf16_flags"] = ",".join(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")) or "none"
    except OSError:  # not Linux: OpenVINO's OPTIMIZATION_CAPABILITIES (BF16 or not) says it
        pass
    return found


# -- conversion --------------------------------------------------------------------------------

def cache_parts(fixture) -> dict:
    """What a conversion depends on: the fixture (its digest covers config, weights and model file), the tools, how."""
    return {"fixture": cache.fixture_key(fixture), "openvino": distribution_version("openvino"),
            **ported.keras_versions(), "stateless_for_calls": ported.STATELESS if fixture.meta.get("calls") else False,
            "layout": LAYOUT, **SETTINGS}


def _one_line(exc: BaseException, limit: int = 800) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())[:limit]


def build_ir(fixture, folder: Path) -> None:
    """Export the Keras model to a SavedModel, convert it with ``openvino.convert_model``, save the IR in ``folder``."""
    ov = _ov()
    graph = ported.keras_graph(fixture)
    saved = folder / "saved_model"
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # export prints the endpoint's signature
            graph.model.export(str(saved), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise ConversionError(f"Keras {keras_load.keras_version()} model.export (the SavedModel OpenVINO "
                              f"converts) failed: {_one_line(exc)}") from exc
    exported = time.perf_counter()
    try:
        model = ov.convert_model(str(saved))
    except Exception as exc:
        raise ConversionError(f"OpenVINO {distribution_version('openvino')} convert_model failed: "
                              f"{_one_line(exc)}") from exc
    converted = time.perf_counter()
    ops = sorted({node.get_type_name() for node in model.get_ordered_ops()})
    ov.save_model(model, str(folder / IR_NAME), compress_to_fp16=False)
    del model
    (folder / CONTRACT).write_text(json.dumps({
        "input_keys": graph.input_keys, "output_keys": graph.output_keys, "source": graph.source,
        "ops": ops, "export_s": round(exported - started, 3), "convert_s": round(converted - exported, 3)}, indent=1))
    shutil.rmtree(saved)  # the IR is what is kept
    keras = keras_load.keras_module()
    if hasattr(keras, "utils") and hasattr(keras.utils, "clear_session"):
        keras.utils.clear_session()  # symbolic models pile up in the global graph otherwise


def _input_shapes(ir_model, input_keys) -> dict[str, tuple]:
    """Each input's shape without the batch axis, from the converted IR's own parameters (what
    ``ported.run_calls`` needs for zero initial states): a cache hit needs no Keras model."""
    by_name = {name: port for port in ir_model.inputs for name in port.get_names()}
    return {key: tuple(d.get_length() if d.is_static else None
                       for d in by_name[keras_load.input_name(key)].get_partial_shape())[1:]
            for key in input_keys}


class Loaded:
    """A cached IR compiled for one implementation, with its inputs and outputs mapped to the contract's keys."""

    def __init__(self, folder: Path, impl: str):
        ov_core = core()
        contract = json.loads((folder / CONTRACT).read_text())
        self.contract = contract
        ir_model = ov_core.read_model(str(folder / IR_NAME))
        self.graph = ported.Graph(None, contract["input_keys"], contract["output_keys"], contract["source"],
                                  _input_shapes(ir_model, contract["input_keys"]))
        try:
            self.compiled = ov_core.compile_model(ir_model, DEVICE, compile_config(impl))
        except Exception as exc:
            raise ConversionError(f"OpenVINO {distribution_version('openvino')} compile_model on {DEVICE} failed: "
                                  f"{_one_line(exc)}") from exc
        self.precision = _type_name(self.compiled.get_property(_precision_key()))
        self.request = self.compiled.create_infer_request()
        self.inputs = {}
        names = {name: port for port in self.compiled.inputs for name in port.get_names()}
        for key in self.graph.input_keys:
            if keras_load.input_name(key) not in names:
                raise RuntimeError(f"the converted model has no input {keras_load.input_name(key)!r} "
                                   f"(it has {sorted(names)})")
            self.inputs[key] = names[keras_load.input_name(key)]
        self.outputs = []  # (compiled output port, contract key)
        keys = self.graph.output_keys
        for port in self.compiled.outputs:
            found = [int(m[1]) for m in map(OUTPUT_NAME.fullmatch, port.get_names()) if m]
            if len(found) != 1 or not 0 <= found[0] < len(keys):
                raise RuntimeError(f"converted output named {sorted(port.get_names())}: expected one name "
                                   f"output_<k>, k < {len(keys)} ({', '.join(keys)})")
            self.outputs.append((port, keys[found[0]]))
        if sorted(k for _, k in self.outputs) != sorted(keys):
            raise RuntimeError(f"the converted model's outputs {[sorted(p.get_names()) for p, _ in self.outputs]} "
                               f"do not cover {keys} once each")

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict:
        tensors = {self.inputs[key]: np.ascontiguousarray(value, bool if key == "mask" else np.float32)
                   for key, value in feeds.items()}
        try:
            results = self.request.infer(tensors)
        except Exception as exc:
            raise ConversionError(f"OpenVINO {distribution_version('openvino')} inference on {DEVICE} failed: "
                                  f"{_one_line(exc)}") from exc
        return {key: np.array(results[port]) for port, key in self.outputs}


def _run(fixture, impl: str) -> dict[str, np.ndarray]:
    _ov()
    keras_load.keras_module()
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):
        raise Unsupported(f"the openvino adapter does not support layer {fixture.layer!r}")
    if keras_load.backend_name() != "tensorflow":
        raise Unsupported(f"model.export to a TensorFlow SavedModel needs the TensorFlow backend, "
                          f"not {keras_load.backend_name()!r}")
    fixture.model_file()  # the sha256 check, also on a cache hit (a changed model file is a broken fixture)
    started = time.perf_counter()
    folder, hit = cache.entry(TOOL, cache_parts(fixture), lambda where: build_ir(fixture, where))
    ready = time.perf_counter()
    loaded = Loaded(folder, impl)
    compiled = time.perf_counter()
    result = ported.run_calls(fixture, loaded.graph, loaded)
    done = time.perf_counter()
    contract = loaded.contract
    how = (f"cache hit {ready - started:.2f} s" if hit else
           f"cache miss: export {contract['export_s']:.2f} s, convert_model {contract['convert_s']:.2f} s "
           f"(total {ready - started:.2f} s)")
    with _LOCK:
        _PRECISIONS[impl].add(loaded.precision)
        _LAST_PRECISION[impl] = loaded.precision
        _NOTES[f"{impl}:{fixture.id}"] = (
            f"inference precision {loaded.precision} on {DEVICE}; {how}; compile {compiled - ready:.2f} s, "
            f"run {done - compiled:.2f} s; {contract['source']}; IR ops {','.join(contract['ops'])}")
    return result


def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``openvino``: the IR compiled on CPU with OpenVINO's default configuration."""
    with quiet.calls():
        return _run(fixture, "openvino")


def run_f32(fixture) -> dict[str, np.ndarray]:
    """Entry point ``openvino-f32``: the same IR compiled with ``INFERENCE_PRECISION_HINT = f32``."""
    with quiet.calls():
        return _run(fixture, "openvino-f32")


def _notes_for(impl: str):
    def notes(fixture_id: str) -> str | None:
        """Inference precision, cache hit or miss, and the times of this fixture's run."""
        return _NOTES.get(f"{impl}:{fixture_id}")
    return notes


def _info_for(impl: str):
    def info() -> dict:
        details = {"openvino": distribution_version("openvino"), "device": DEVICE,
                   "compile_config": "default" if impl == "openvino" else "INFERENCE_PRECISION_HINT=f32"}
        try:
            check_installed("openvino")
        except Unsupported as exc:
            return {"not_installed": str(exc)}
        details.update(tensorflow=distribution_version("tensorflow") or distribution_version("tensorflow-cpu"),
                       keras=distribution_version("keras"))
        with _LOCK:
            seen, last = sorted(_PRECISIONS[impl]), _LAST_PRECISION.get(impl)
        # the case just run, so a ledger `when: {inference_precision: ...}` is judged per case, on any CPU
        details["inference_precision"] = last or "(nothing compiled yet)"
        details["inference_precisions_seen"] = ",".join(seen) or "(nothing compiled yet)"
        try:
            details.update(cpu_capabilities())
        except Exception as exc:  # noqa: BLE001 - info() must not break the report header
            details["cpu"] = f"unknown ({_one_line(exc, 200)})"
        return details
    return info


for _callable, _impl in ((run, "openvino"), (run_f32, "openvino-f32")):
    implementation(info=_info_for(_impl), notes=_notes_for(_impl), returns_trace=False,
                   version=distribution_version("openvino"),  # the tool's version, in failure messages and the report
                   keras_semantics=keras_load.keras_version)(_callable)  # the Keras that built what it converts
