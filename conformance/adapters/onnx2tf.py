"""The ``onnx2tf`` implementation: PINTO0309's onnx2tf (ONNX → TFLite) on the graph tf2onnx writes, run by TFLite.

The graph is the ``tf2onnx`` adapter's, conversion and cache entry included (``onnx_reference``
says what that needs at run time; ONNX Runtime's refusal is the graph's acceptance test, as for the
``tf2onnx`` port). onnx2tf converts it with its Python entry point ``onnx2tf.convert`` at its
defaults (onnxsim first, float32 weights) except for three settings, each about naming or layout,
never numbers:

* ``keep_shape_absolutely_input_names`` = every graph input. onnx2tf reads a 3-D input as NCW and
  transposes it to NWC (``x`` of shape ``(B, T, F)`` becomes ``(B, F, T)``), and a 4-D/5-D one to
  NHWC/NDHWC: a recurrent layer's axes are (batch, time, features), so each input keeps the shape
  the ONNX graph gives it and is fed as the contract has it, never guessed from its shape.
* ``output_signaturedefs=True``: the .tflite has a ``serving_default`` signature whose inputs carry
  the ONNX input names (``x``, ``mask``, ``initial_state_h``: ``keras_load.input_name(key)``) and
  whose outputs carry the ONNX output names. An input name onnx2tf changed is an error naming both.
* The graph's outputs are renamed ``output_0``, ``output_1``... (their place in the graph, which
  ``conversion.json`` maps to contract keys) before onnx2tf sees them. onnx2tf renames each output
  layer of its tf_keras model after its ONNX output (onnx2tf.py "Bring back output names"), and its
  LSTM/GRU/RNN ops build an unnamed ``tf_keras.layers.RNN`` (auto-named ``rnn``, ``rnn_1``...): an
  ONNX output named ``rnn``, which is what tf2onnx writes for the gallery's layers, then makes
  tf_keras raise ``The name "rnn" is used 2 times in the model`` (SPEC 7.7: outputs are matched by
  position, their names are not part of the contract; ``run_onnx2tf`` on the graph as written shows the clash).

tf_keras's layer names are process-global, so ``tf_keras.backend.clear_session()`` runs before every
conversion: a verdict never depends on which fixtures converted before in the same worker.

The ``*_float32.tflite`` runs in ``tf.lite.Interpreter`` (one thread; it has the Flex delegate,
which onnx2tf's ``FlexTensorListReserve``-style ops need) through its signature runner, which sizes
the open batch axis to what is fed. Stateful fixtures go through ``ported.run_calls`` as for every
ONNX runtime. Conversions are cached (``conformance.cache``, ``conversions/onnx2tf/``) keyed on the
ONNX file's sha256, tf2onnx's key versions, the versions of onnx2tf, TensorFlow, tf_keras, onnx,
onnxsim, onnx-graphsurgeon and ai-edge-litert, and the settings above; only the .tflite and
``onnx2tf.json`` (its TFLite ops, the conversion time) are kept. A conversion onnx2tf raises on is
``ConversionError`` with onnx2tf's own error (and the onnx2tf op file it came from), every time, never
cached; so is a .tflite the interpreter cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import cache
from ..errors import ConversionError
from . import keras_load, quiet, tf2onnx, tflite
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

TOOL = "onnx2tf"
CHANGED_AT_IMPORT = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")
LAYOUT = 1                      # bump when what this adapter writes into a cache entry changes
MODEL = "model_float32.tflite"
META = "onnx2tf.json"
SETTINGS = {"output_signaturedefs": True, "keep_shape_absolutely_input_names": "every graph input",
            "outputs_renamed": "output_<position>"}
NOTES: dict[str, str] = {}
_OPS_SEEN: set[str] = set()
_LOCK = threading.Lock()
_DONE = threading.local()      # .note: onnx2tf's part of the fixture's note, left by its Session


@functools.lru_cache(maxsize=None)
def _onnx2tf():
    """onnx2tf, imported without its side effects on the process: its import sets ``TF_CPP_MIN_LOG_LEVEL=3`` and
    ``TF_USE_LEGACY_KERAS=1`` (onnx2tf.py lines 26-27 at 1.29.24); the second would turn the Keras the suite
    loads models with into tf_keras. onnx2tf itself uses ``tf_keras`` by name, never ``tf.keras``."""
    keras_load.keras_module()  # the environment's Keras, chosen before onnx2tf's import can change it
    saved = {name: os.environ.get(name) for name in CHANGED_AT_IMPORT}
    try:
        with quiet.importing("tensorflow", "tf_keras", "onnx2tf"):
            return require("onnx2tf")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def versions() -> dict:
    """What an onnx2tf conversion depends on besides the ONNX file (part of its cache key)."""
    return {name: distribution_version(name) for name in ("onnx2tf", "tensorflow", "tf-keras", "onnx", "onnxsim",
                                                          "onnx-graphsurgeon", "ai-edge-litert")}


def positional(proto):
    """The ONNX model with its outputs renamed ``output_<k>`` in graph order (every producer and consumer too)."""
    renamed = {o.name: f"output_{k}" for k, o in enumerate(proto.graph.output)}
    for node in proto.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for output in proto.graph.output:
        output.name = renamed[output.name]
    return proto


def _said(exc: BaseException) -> str:
    """onnx2tf's error in one line: the first line, then what a Keras layer's report says inside (its
    ``...Error: ...`` line, else its second line), and the onnx2tf op file it was raised in."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    inner = [line for line in lines[1:] if re.match(r"\w+(Error|Exception): ", line)]
    if not inner and len(lines) > 1 and not lines[1].startswith(("Call arguments", "in user code")):
        inner = [lines[1]]
    where = re.findall(r"onnx2tf/ops/(\w+\.py)\", line (\d+)", str(exc))
    text = lines[0] + (f" {inner[-1]}" if inner else "") + (f" (onnx2tf/ops/{where[-1][0]}:{where[-1][1]})"
                                                           if where else "")
    return text[:700]


def run_onnx2tf(onnx_path: Path, folder: Path) -> float:
    """``onnx2tf.convert`` on a file into ``folder`` (its prints and logs captured); seconds taken.

    ``ConversionError`` with onnx2tf's own last line (and its exception type) when it raises."""
    onnx2tf = _onnx2tf()
    onnx = require("onnx")
    names = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
    require("tf_keras").backend.clear_session()  # auto-named layers (rnn, rnn_1...) start afresh
    started = time.perf_counter()
    printed = io.StringIO()  # its progress and advice lines, not part of a verdict
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(folder), non_verbose=True,
                            output_signaturedefs=True, keep_shape_absolutely_input_names=names)
    except (Exception, SystemExit) as exc:  # onnx2tf ends some failures with sys.exit(1)
        raise ConversionError(f"{TOOL} {distribution_version('onnx2tf')} could not convert what tf2onnx "
                              f"{tf2onnx.tool_version()} wrote: {type(exc).__name__}: {_said(exc)}") from exc
    return time.perf_counter() - started


def _convert(onnx_path: Path, into: Path) -> None:
    onnx = require("onnx")
    with tempfile.TemporaryDirectory(prefix="onnx2tf-") as scratch:
        renamed = Path(scratch) / "model.onnx"
        onnx.save(positional(onnx.load(str(onnx_path))), str(renamed))
        seconds = run_onnx2tf(renamed, Path(scratch) / "out")
        flatbuffer = (Path(scratch) / "out" / MODEL).read_bytes()
    (into / MODEL).write_bytes(flatbuffer)
    (into / META).write_text(json.dumps({"convert_s": round(seconds, 3), "ops": tflite.model_ops(flatbuffer)}))


def check(data: bytes, log: list[str]) -> None:
    """The graph's acceptance test before tf2onnx's conversion is cached: ONNX Runtime loads it (the tf2onnx port's)."""
    tf2onnx.load_session(data, log)


class Session:
    """onnx2tf's .tflite of a converted model: contract keys in, contract keys out (as ``tf2onnx.Session``)."""

    def __init__(self, path: Path, output_names: Mapping[str, str], log: list[str]):
        onnx = require("onnx")
        graph = onnx.load(str(path), load_external_data=False).graph
        self.input_names = [i.name for i in graph.input]
        place = {o.name: k for k, o in enumerate(graph.output)}
        missing = sorted(set(output_names.values()) - set(place))
        if missing:
            raise ConversionError(f"{TOOL}: the graph's outputs are {sorted(place)}, expected {missing} too")
        self.outputs = {key: f"output_{place[name]}" for key, name in output_names.items()}
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        parts = {"onnx_sha256": digest, "versions": versions(), "tf2onnx": tf2onnx.versions(), "settings": SETTINGS,
                 "layout": LAYOUT}
        started = time.perf_counter()
        folder, hit = cache.entry(TOOL, parts, lambda into: _convert(Path(path), into))
        meta = json.loads((folder / META).read_text())
        cls, _ = tflite.interpreter_class()
        with quiet.calls(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice, once per fixture
            interpreter = cls(model_content=(folder / MODEL).read_bytes(), num_threads=1)
        signatures = interpreter.get_signature_list()
        if "serving_default" not in signatures:
            raise ConversionError(f"{TOOL}: the .tflite has no serving_default signature (it has {sorted(signatures)})")
        self.runner = interpreter.get_signature_runner("serving_default")
        have = signatures["serving_default"]
        if sorted(have["inputs"]) != sorted(self.input_names):
            raise ConversionError(f"{TOOL} renamed the inputs: the ONNX graph's are {self.input_names}, the .tflite "
                                  f"signature's {have['inputs']}")
        if not set(self.outputs.values()) <= set(have["outputs"]):
            raise ConversionError(f"{TOOL}: the .tflite signature's outputs are {have['outputs']}, expected "
                                  f"{sorted(self.outputs.values())}")
        with _LOCK:
            _OPS_SEEN.update(meta["ops"])
        _DONE.note = (f"; onnx2tf: tflite ops {','.join(meta['ops'])}; cache {'hit' if hit else 'miss'}, convert "
                      f"{meta['convert_s']:.2f} s{' (when cached)' if hit else ''}, "
                      f"load {time.perf_counter() - started:.2f} s")

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        fed = tf2onnx.feed(chunk, set(self.input_names))
        try:
            with quiet.calls():
                values = self.runner(**fed)
        except Exception as exc:
            raise ConversionError(f"TFLite {distribution_version('tensorflow')} failed running what {TOOL} "
                                  f"{distribution_version('onnx2tf')} wrote: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:600]}") from exc
        return {key: np.asarray(values[name]) for key, name in self.outputs.items()}


def notes(fixture_id: str) -> str | None:
    """tf2onnx's ONNX ops and onnx2tf's TFLite ops for this fixture, cache hits, and timings."""
    return NOTES.get(fixture_id)


def info() -> dict:
    details = tf2onnx.converter_info(("onnx2tf", "tf_keras", "onnx"),
                                     lambda: {k.replace("-", "_"): v for k, v in versions().items() if v})
    if "not_installed" not in details:
        details["settings"] = ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
        details["tflite_ops"] = ",".join(sorted(_OPS_SEEN)) or "(none converted yet)"
    return details


@implementation(
    info=info,
    notes=notes,
    version=distribution_version("onnx2tf"),
    returns_trace=False,
    keras_semantics=keras_load.keras_version,
    repro_env=(tf2onnx.OPSET_VARIABLE,))
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``onnx2tf``."""
    check_installed("onnx2tf")  # first: its extra pins the TensorFlow and tf2onnx stack, not tf2onnx's extra
    tf2onnx._tf2onnx()
    _onnx2tf()
    _DONE.note = ""
    with quiet.calls():
        result = tf2onnx._run(fixture, runtime=sys.modules[__name__])  # its Session, check and NOTES
    with _LOCK:
        NOTES[fixture.id] = NOTES.get(fixture.id, "") + _DONE.note
    return result
