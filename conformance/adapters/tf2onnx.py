"""The ``tf2onnx`` implementation: the fixture's Keras model converted by tf2onnx, run by ONNX Runtime.

What is converted is what ``ported.keras_graph`` gives: the fixture's own model file (loaded
from a private scratch copy), or for a stateful fixture the same layers built stateless with
every initial state as an input. It goes through tf2onnx's public Keras entry point,
``tf2onnx.convert.from_keras(model, opset=...)``, with no ``input_signature``: that is the
call tf2onnx documents for Keras models and the one a Keras 3 user makes first, and since
tf2onnx 1.17 it takes a Keras 3 model as it is (it traces the model's call with the
model's own input specs; ``from_function`` or ``model.export()`` + ``from_saved_model``
would be a workaround for older tf2onnx, not the documented path). The batch axis stays
open, as tf2onnx leaves it. The opset is tf2onnx's default (``utils.find_opset(None)``,
15 in tf2onnx 1.17), or ``$LSTM_CONFORMANCE_TF2ONNX_OPSET``.

The ONNX file runs in ``onnxruntime.InferenceSession`` (CPU, one thread). Inputs are fed by
name: tf2onnx names a graph input after the Keras input (``keras_load.input_name(key)``).
Outputs: tf2onnx names each graph output after the model's ``output_names`` in the model's
output order, making repeated names unique with ``_1``, ``_2``... (a model file's state
outputs all come from one layer, so ``rnn``, ``rnn_1``, ``rnn_2``). ``output_map`` rebuilds
those names from the model and checks them against the graph's outputs, name for name and
place for place, so the contract key of each output is known by its name, never guessed.

Conversions are cached (``conformance.cache``) per fixture digest, tool versions, opset and
settings: the folder holds ``model.onnx`` and ``conversion.json`` (the output names, the ops,
the converter's own error lines, the conversion time). ``run.notes(id)`` tells, per fixture,
the ONNX ops (whether a fused ``LSTM``/``GRU``/``RNN`` node or a ``Loop``/``Scan`` appears),
cache hit or miss and the times. tf2onnx converts with ``continue_on_error``: an op it cannot
map is logged and left in the graph, which ONNX Runtime then refuses to load. A converter
exception, a model ONNX Runtime will not load or run, or an output layout that cannot be
named is ``ConversionError`` naming the tool, its version and its own error.

Stateful fixtures go through ``ported.run_calls``: one ONNX session, each call fed the
previous call's final states as initial states (zeros first and after ``reset_before``).
There is no gate trace to return (``run.returns_trace = False``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import cache
from ..errors import ConversionError, Unsupported
from . import keras_load, ported, quiet
from .keras import LAYER_STATES
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

TOOL = "tf2onnx"
API = "tf2onnx.convert.from_keras"
OPSET_VARIABLE = "LSTM_CONFORMANCE_TF2ONNX_OPSET"
LAYOUT = 1          # bump when what this adapter writes into a cache entry changes
MODEL = "model.onnx"
META = "conversion.json"
FUSED = ("LSTM", "GRU", "RNN")
LOOPS = ("Loop", "Scan")

_NOTES: dict[str, str] = {}
_OPS_SEEN: set[str] = set()
_LOCK = threading.Lock()


def _tf2onnx():
    with quiet.importing("tensorflow", "tf2onnx"):  # TensorFlow's start-up lines stay out of the run
        require("tensorflow")
        return require("tf2onnx")


@functools.lru_cache(maxsize=None)
def _onnxruntime():
    return require("onnxruntime")



def tool_version() -> str:
    return distribution_version("tf2onnx") or "?"


def opset() -> int:
    """The opset asked of tf2onnx: ``$LSTM_CONFORMANCE_TF2ONNX_OPSET``, else tf2onnx's own default."""
    value = os.environ.get(OPSET_VARIABLE, "").strip()
    if value:
        try:
            return int(value)
        except ValueError:
            raise Unsupported(f"${OPSET_VARIABLE}={value!r} is not an opset number") from None
    return int(_tf2onnx().utils.find_opset(None))


def versions() -> dict:
    """Everything a conversion depends on besides the fixture (part of every cache key)."""
    return {"tf2onnx": tool_version(), "onnx": distribution_version("onnx"),
            "onnxruntime": distribution_version("onnxruntime"), **ported.keras_versions()}


# -- conversion ------------------------------------------------------------------------------------

def unique_names(names) -> list[str]:
    """``names`` made unique the way tf2onnx's ``from_keras`` does it: a repeat gets ``_1``, ``_2``..."""
    used: set[str] = set()
    result = []
    for name in names:
        new, k = name, 0
        while new in used:
            k += 1
            new = f"{name}_{k}"
        used.add(new)
        result.append(new)
    return result


def output_map(model, graph_outputs: list[str], output_keys: list[str]) -> dict[str, str]:
    """{contract output key: ONNX output name}, from the Keras model's output names, checked against the graph."""
    keras_names = list(getattr(model, "output_names", None) or ())
    if len(keras_names) != len(output_keys):
        raise ConversionError(f"{TOOL} {tool_version()}: the Keras model has {len(output_keys)} outputs "
                              f"({', '.join(output_keys)}) but output_names {keras_names}")
    expected = unique_names(keras_names)
    if graph_outputs != expected:
        raise ConversionError(f"{TOOL} {tool_version()}: the ONNX graph's outputs are {graph_outputs}; from the "
                              f"Keras output names {keras_names} they should be {expected} "
                              f"(for {', '.join(output_keys)})")
    return dict(zip(output_keys, expected))


class _Records(logging.Handler):
    """tf2onnx's log records during one conversion: kept for the message, out of the run's output."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(f"{record.levelname}: {' '.join(record.getMessage().split())[:400]}")
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not worth a failed case
            self.lines.append(f"{record.levelname}: (unformattable record)")


@contextlib.contextmanager
def _captured_log():
    logger = logging.getLogger("tf2onnx")
    records = _Records()
    saved = logger.propagate, logger.level, list(logger.handlers)
    logger.handlers[:] = [records]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        logger.propagate, level, handlers = saved
        logger.setLevel(level)
        logger.handlers[:] = handlers


def op_types(proto) -> tuple[list[str], list[str]]:
    """(ops of the main graph, ops only inside subgraphs such as a Loop body), each sorted."""
    top = {node.op_type for node in proto.graph.node}
    inner: set[str] = set()
    stack = [a.g for n in proto.graph.node for a in n.attribute if a.HasField("g")]
    stack += [g for n in proto.graph.node for a in n.attribute for g in a.graphs]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            inner.add(node.op_type)
            stack += [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
    return sorted(top), sorted(inner - top)


def convert(graph: ported.Graph, folder: Path, opset_number: int, check=None) -> None:
    """``from_keras`` on the graph's model; writes ``model.onnx`` and ``conversion.json`` into ``folder``.

    ``check(bytes, log)`` is the runtime's refusal (ONNX Runtime's by default): a model it refuses is not cached."""
    tf2onnx = _tf2onnx()
    started = time.perf_counter()
    with _captured_log() as log, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            proto, _ = tf2onnx.convert.from_keras(graph.model, opset=opset_number)
        except Exception as exc:
            lines = "; ".join(log.lines[-5:])
            raise ConversionError(f"{TOOL} {tool_version()} ({API}, opset {opset_number}) raised "
                                  f"{type(exc).__name__}: {' '.join(str(exc).split())[:800]}"
                                  + (f" [its log: {lines}]" if lines else "")) from exc
    seconds = time.perf_counter() - started
    outputs = [o.name for o in proto.graph.output]
    names = output_map(graph.model, outputs, graph.output_keys)
    top, inner = op_types(proto)
    data = proto.SerializeToString()
    (check or load_session)(data, log.lines)  # a model the runtime refuses is reported every time, never cached
    (folder / MODEL).write_bytes(data)
    meta = {"outputs": [[key, names[key]] for key in graph.output_keys],  # a list: the model's order survives JSON
            "input_keys": graph.input_keys, "output_keys": graph.output_keys,
            "opset": opset_number, "ops": top, "subgraph_ops": inner, "convert_s": round(seconds, 3),
            "log": log.lines, "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught})[:20],
            "source": graph.source}
    (folder / META).write_text(json.dumps(meta, indent=1, sort_keys=True))


def cache_parts(fixture, graph: ported.Graph, opset_number: int) -> dict:
    return {"fixture": cache.fixture_key(fixture), "versions": versions(), "opset": opset_number, "api": API,
            "input_signature": None, "source": graph.source, "input_keys": graph.input_keys,
            "output_keys": graph.output_keys, "layout": LAYOUT}


# -- running ---------------------------------------------------------------------------------------

def load_session(model, log: list[str]):
    """An ONNX Runtime session (CPU, one thread) on a model file or its bytes; ``ConversionError`` if refused."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        errors = [line for line in log if line.startswith(("ERROR", "CRITICAL"))]
        errors = [line for line in errors if "Unsupported ops" in line] + \
                 [line for line in errors if "Unsupported ops" not in line]  # tf2onnx's summary first
        text = "; ".join(errors)[:800]
        raise ConversionError(f"onnxruntime {distribution_version('onnxruntime')} would not load what {TOOL} "
                              f"{tool_version()} wrote: {type(exc).__name__}: {' '.join(str(exc).split())[:600]}"
                              + (f" [{TOOL}'s errors: {text}]" if text else "")) from exc


def feed(chunk: Mapping[str, np.ndarray], inputs) -> dict[str, np.ndarray]:
    """The graph's inputs by name from contract keys (``x``, ``mask``, ``initial_state_h``), as the graph types them."""
    fed = {}
    for key, value in chunk.items():
        name = keras_load.input_name(key)
        if name not in inputs:
            raise RuntimeError(f"the ONNX model has no input {name!r} for {key!r} (it has {sorted(inputs)})")
        integer = np.issubdtype(np.asarray(value).dtype, np.integer)  # a Model's token ids stay int32
        fed[name] = np.asarray(value, bool if key == "mask" else np.int32 if integer else np.float32)
    return fed


def converter_info(modules: tuple[str, ...], details) -> dict:
    """A runtime's ``info()`` on tf2onnx's graph: ``not_installed`` naming the first of ``modules`` (the runtime's
    own) or of the converter's that is missing, else ``details()`` (called only then, it may import the runtime)
    plus the converter's versions and settings."""
    try:
        for module in modules:
            check_installed(module)
    except Unsupported as exc:
        return {"not_installed": str(exc)}
    converter = info()
    if "not_installed" in converter:
        return {"not_installed": converter["not_installed"]}
    own = details()
    own.update({k: v for k, v in converter.items() if k not in ("api", "onnx_ops")})
    own["converter"] = f"tf2onnx {tool_version()} ({API})"
    return own


class Session:
    """An ONNX Runtime session on a converted model: contract keys in, contract keys out."""

    def __init__(self, path: Path, output_names: Mapping[str, str], log: list[str]):
        self.session = load_session(str(path), log)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = dict(output_names)
        have = {o.name for o in self.session.get_outputs()}
        if not set(self.output_names.values()) <= have:
            raise ConversionError(f"{TOOL} {tool_version()}: the session's outputs are {sorted(have)}, "
                                  f"expected {sorted(self.output_names.values())}")

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = list(self.output_names)
        try:
            values = self.session.run([self.output_names[k] for k in keys], feed(chunk, self.inputs))
        except Exception as exc:
            raise ConversionError(f"onnxruntime {distribution_version('onnxruntime')} failed running what {TOOL} "
                                  f"{tool_version()} wrote: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:800]}") from exc
        return {key: np.asarray(value) for key, value in zip(keys, values)}


def _run(fixture, runtime=None) -> dict[str, np.ndarray]:
    """Convert (or find in the cache) and run; ``runtime`` (default ONNX Runtime) is what runs the graph, with
    its own ``Session(path, output_names, log)``, ``check(bytes, log)`` and ``NOTES`` (``onnx_reference``)."""
    session_class, check, notes_of = (runtime.Session, runtime.check, runtime.NOTES) if runtime else \
        (Session, load_session, _NOTES)
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):
        raise Unsupported(f"the tf2onnx adapter has no Keras model for layer {fixture.layer!r}")
    if keras_load.backend_name() != "tensorflow":
        raise Unsupported(f"tf2onnx converts TensorFlow graphs; Keras runs on {keras_load.backend_name()!r}")
    opset_number = opset()
    started = time.perf_counter()
    graph = ported.keras_graph(fixture)
    loaded = time.perf_counter()
    hit = False
    try:
        folder, hit = cache.entry(TOOL, cache_parts(fixture, graph, opset_number),
                                  lambda into: convert(graph, into, opset_number, check))
        meta = json.loads((folder / META).read_text())
        if meta["output_keys"] != graph.output_keys or meta["input_keys"] != graph.input_keys:
            raise RuntimeError(f"cache entry {folder} was written for other keys: {meta['input_keys']} -> "
                               f"{meta['output_keys']}")
        ready = time.perf_counter()
        session = session_class(folder / MODEL, dict(meta["outputs"]), meta["log"])
        result = ported.run_calls(fixture, graph, session)  # reads the model's input shapes only
        done = time.perf_counter()
    finally:
        graph.model = None
        if not hit:  # tracing for the conversion leaves graphs behind; a hit only loaded a small model
            keras_load.keras_module().utils.clear_session()  # (its gc.collect costs 0.5 s: not on every hit)
    fused = [op for op in FUSED if op in meta["ops"] or op in meta["subgraph_ops"]]
    loops = [op for op in LOOPS if op in meta["ops"]]
    note = (f"opset {meta['opset']}; ops {','.join(meta['ops'])}"
            + (f"; in subgraphs {','.join(meta['subgraph_ops'])}" if meta["subgraph_ops"] else "")
            + f"; fused {'/'.join(fused) if fused else 'none'}; loop {'/'.join(loops) if loops else 'none'}"
            + f"; {graph.source}; cache {'hit' if hit else 'miss'}"
            + f", convert {meta['convert_s']:.2f} s{' (when cached)' if hit else ''}"
            + f", load Keras {loaded - started:.2f} s, run {done - ready:.2f} s")
    errors = [line for line in meta["log"] if line.startswith(("ERROR", "CRITICAL"))]
    if errors:
        note += f"; {TOOL} logged {len(errors)} error(s): {errors[0]}"
    with _LOCK:
        notes_of[fixture.id] = note
        _OPS_SEEN.update(meta["ops"])
        _OPS_SEEN.update(meta["subgraph_ops"])
    return result


def notes(fixture_id: str) -> str | None:
    """The ONNX ops tf2onnx produced for this fixture, cache hit or miss, and timings, once it has run."""
    return _NOTES.get(fixture_id)


def info() -> dict:
    details: dict = {"api": API}
    try:
        for module in ("tf2onnx", "onnxruntime", "onnx", "tensorflow", "keras"):
            check_installed(module)
        details.update({k: v for k, v in versions().items() if v is not None})
        details["opset"] = opset()
    except Unsupported as exc:
        return {"not_installed": str(exc)}
    details["onnx_ops"] = ",".join(sorted(_OPS_SEEN)) or "(none converted yet)"
    details["cache"] = str(cache.conversions_dir(TOOL)) if cache.enabled() else "off"
    return details


@implementation(
    info=info,
    notes=notes,
    version=tool_version(),
    returns_trace=False,
    keras_semantics=keras_load.keras_version,  # the Keras that built the model tf2onnx converted (SPEC §7.7)
    repro_env=(OPSET_VARIABLE,))
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``tf2onnx``."""
    _tf2onnx()
    _onnxruntime()
    with quiet.calls():  # TensorFlow's native notices during tracing stay out of reports
        return _run(fixture)
