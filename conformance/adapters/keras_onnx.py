"""The ``keras-onnx`` implementation: Keras 3's own exporter, ``model.export(path, format="onnx")``,
run by ONNX Runtime.

This is the ONNX path Keras documents for its users. On the TensorFlow backend Keras 3.15.1's
``export_onnx`` (keras/src/export/onnx.py) traces the model's call into a concrete function
(``ExportArchive``, the SavedModel exporter's tracing) and hands it to
``tf2onnx.convert.from_function(fn, input_signature, opset=None, output_path=...)``, after
patching tf2onnx for numpy 2 (``keras/src/export/tf2onnx_lib.py``). So it needs tf2onnx and
onnx installed; where the ``tf2onnx`` adapter calls ``from_keras`` on the model, this one is
what Keras itself calls, with the default opset and no input signature.

The model is the one the ``tf2onnx`` adapter converts (``ported.keras_graph``: the fixture's
model file, or the stateless model of a stateful fixture). Keras refuses to export a model
that was never called ("The model provided has never called."), which a freshly loaded model
file is, so the adapter calls it once on zeros first, as a user who has used the model has.
The graph's inputs carry the Keras input names; its outputs are ``Identity:0``,
``Identity_1:0``... in the model's output order, so they are read by position (SPEC §7.7).
Conversions are cached per fixture and tool versions; stateful fixtures are carried by hand
(``ported.run_calls``), one ONNX Runtime session (CPU, one thread) per fixture.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from .. import cache
from ..errors import ConversionError, Unsupported
from . import keras_load, ported, quiet, tf2onnx
from .keras import LAYER_STATES
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

TOOL = "keras-onnx"
API = 'keras.Model.export(format="onnx")'
LAYOUT = 1
MODEL = "model.onnx"
META = "conversion.json"

_NOTES: dict[str, str] = {}
_LOCK = threading.Lock()


def versions() -> dict:
    return tf2onnx.versions()


def _call_once(model) -> None:
    """Call the model on zeros (open axes of length 1): Keras exports only a model that was called."""
    arrays = []
    for tensor in model.inputs:
        shape = [d or 1 for d in tuple(tensor.shape)]
        arrays.append(np.zeros(shape, bool if "bool" in str(tensor.dtype) else np.float32))
    model(arrays if len(arrays) > 1 else arrays[0])


def convert(graph: ported.Graph, folder: Path) -> None:
    """``model.export(format="onnx")``; writes ``model.onnx`` and ``conversion.json`` into ``folder``."""
    started = time.perf_counter()
    path = folder / MODEL
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # Keras's input-structure notice, tf2onnx's numpy 2 patch notices
        try:
            _call_once(graph.model)
            graph.model.export(str(path), format="onnx", verbose=False)
        except Exception as exc:
            raise ConversionError(f"Keras {keras_load.keras_version()} {API} (tf2onnx {tf2onnx.tool_version()}) "
                                  f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:800]}") from exc
    seconds = time.perf_counter() - started
    onnx = require("onnx")
    proto = onnx.load(str(path))
    outputs = [o.name for o in proto.graph.output]
    if len(outputs) != len(graph.output_keys):
        raise ConversionError(f"{API} wrote a graph with outputs {outputs}; the model has {len(graph.output_keys)} "
                              f"({', '.join(graph.output_keys)})")
    tf2onnx.load_session(path.read_bytes(), [])  # a model ONNX Runtime refuses is reported every time, never cached
    top, inner = tf2onnx.op_types(proto)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    (folder / META).write_text(json.dumps({
        "outputs": [[key, name] for key, name in zip(graph.output_keys, outputs)],  # by position
        "input_keys": graph.input_keys, "output_keys": graph.output_keys, "opset": opset, "ops": top,
        "subgraph_ops": inner, "convert_s": round(seconds, 3), "source": graph.source}, indent=1, sort_keys=True))


def _run(fixture) -> dict[str, np.ndarray]:
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):
        raise Unsupported(f"the keras-onnx adapter has no Keras model for layer {fixture.layer!r}")
    if keras_load.backend_name() != "tensorflow":
        raise Unsupported(f"this adapter exports on the TensorFlow backend; Keras runs on "
                          f"{keras_load.backend_name()!r}")
    started = time.perf_counter()
    graph = ported.keras_graph(fixture)
    hit = False
    try:
        parts = {"fixture": cache.fixture_key(fixture), "versions": versions(), "api": API, "source": graph.source,
                 "input_keys": graph.input_keys, "output_keys": graph.output_keys, "layout": LAYOUT}
        folder, hit = cache.entry(TOOL, parts, lambda into: convert(graph, into))
        meta = json.loads((folder / META).read_text())
        ready = time.perf_counter()
        session = tf2onnx.Session(folder / MODEL, dict(meta["outputs"]), [])
        result = ported.run_calls(fixture, graph, session)
        done = time.perf_counter()
    finally:
        graph.model = None
        if not hit:
            keras_load.keras_module().utils.clear_session()
    note = (f"opset {meta['opset']}; ops {','.join(meta['ops'])}"
            + (f"; in subgraphs {','.join(meta['subgraph_ops'])}" if meta["subgraph_ops"] else "")
            + f"; {graph.source}; cache {'hit' if hit else 'miss'}, export {meta['convert_s']:.2f} s"
            + f"{' (when cached)' if hit else ''}, total {ready - started:.2f} s, run {done - ready:.2f} s")
    with _LOCK:
        _NOTES[fixture.id] = note
    return result


def notes(fixture_id: str) -> str | None:
    """The ONNX ops Keras's exporter wrote for this fixture, cache hit or miss, and timings."""
    return _NOTES.get(fixture_id)


def info() -> dict:
    details: dict = {"api": API}
    try:
        for module in ("tf2onnx", "onnxruntime", "onnx", "tensorflow", "keras"):
            check_installed(module)
    except Unsupported as exc:
        return {"not_installed": str(exc)}
    details.update({k: v for k, v in versions().items() if v is not None})
    details["cache"] = str(cache.conversions_dir(TOOL)) if cache.enabled() else "off"
    return details


@implementation(
    info=info,
    notes=notes,
    version=distribution_version("keras"),
    returns_trace=False,
    keras_semantics=keras_load.keras_version)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras-onnx``."""
    tf2onnx._tf2onnx()
    tf2onnx._onnxruntime()
    with quiet.calls():
        return _run(fixture)
