"""The ``tract`` implementation: Sonos's tract (a Rust inference engine, PyPI ``tract``) on the graph tf2onnx writes.

The graph is the ``tf2onnx`` adapter's, conversion and cache entry included (``onnx_reference``
says what that needs at run time: TensorFlow, Keras and tf2onnx, onnx and onnxruntime for the
cache key). tract analyses a model for concrete shapes before it runs it: the batch axis tf2onnx
leaves open is given, as tract's documentation shows, by ``set_input_fact`` on each input with the
shape and type of what is fed, then ``into_model().into_runnable()`` (one runnable per set of input
shapes; a stateful fixture's chunks share one). Concrete facts are needed: with the batch or time left
symbolic (no fact, or ``B,T,F``), the zeros tf2onnx builds for a layer without initial state (an Expand of
the batch) stop translation ("output can not have variable rank"). Where that one tensor is both a fused
LSTM's initial_h and initial_c, tract's own axis-change pass may still break the LSTM's Scan ("Clashing
resolution for expression"): tract's bug, in the ledger. Inputs go in the graph's input order, outputs come
back in its output order and are named by ``conversion.json`` as in the ``tf2onnx`` adapter.
A graph tract cannot analyse or translate (an operator it does not implement) is ``ConversionError``
with tract's own first line.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ConversionError
from . import keras_load, quiet, tf2onnx
from .requires import distribution_version, require
from ..judge.contract import implementation

TOOL = "tract"
NOTES: dict[str, str] = {}
# tract's fact notation for the dtypes a fixture feeds
FACT_TYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(bool): "bool"}


@functools.lru_cache(maxsize=None)
def _tract():
    return require("tract")


def _error(what: str, exc: Exception) -> ConversionError:
    """tract's message with its "Caused by" chain (the innermost cause says why), without the Rust backtrace."""
    text = str(exc).strip().split("Stack backtrace:")[0]
    return ConversionError(f"{TOOL} {distribution_version('tract')} {what} what tf2onnx {tf2onnx.tool_version()} "
                           f"wrote: {type(exc).__name__}: {' '.join(text.split())[:600]}")


def check(data: bytes, log: list[str]) -> None:
    """The conversion's acceptance test here: tract parses the file (shapes are only known when it is fed)."""
    handle, name = tempfile.mkstemp(suffix=".onnx")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        _tract().onnx().load(name)
    except Exception as exc:
        raise _error("would not load", exc) from exc
    finally:
        os.unlink(name)


class Session:
    """tract on a converted model: contract keys in, contract keys out (as ``tf2onnx.Session``)."""

    def __init__(self, path: Path, output_names: Mapping[str, str], log: list[str]):
        self.path = str(path)
        model = self._load()
        self.input_names = [model.input_name(i) for i in range(model.input_count())]
        # tract names an output after the node that makes it, so outputs are placed by the graph's own order
        self.graph_outputs = [o.name for o in require("onnx").load(self.path, load_external_data=False).graph.output]
        if len(self.graph_outputs) != model.output_count():
            raise ConversionError(f"{TOOL}: the model has {model.output_count()} outputs, "
                                  f"the graph {self.graph_outputs}")
        self.output_names = dict(output_names)
        if not set(self.output_names.values()) <= set(self.graph_outputs):
            raise ConversionError(f"{TOOL}: the graph's outputs are {self.graph_outputs}, "
                                  f"expected {sorted(self.output_names.values())}")
        self.runnables: dict[tuple, object] = {}

    def _load(self):
        try:
            return _tract().onnx().load(self.path)
        except Exception as exc:
            raise _error("would not load", exc) from exc

    def _runnable(self, arrays: list[np.ndarray]):
        shapes = tuple((a.shape, a.dtype.str) for a in arrays)
        if shapes not in self.runnables:
            model = self._load()
            try:
                for i, array in enumerate(arrays):
                    model.set_input_fact(i, ",".join([*map(str, array.shape), FACT_TYPES[array.dtype]]))
                self.runnables[shapes] = model.into_model().into_runnable()
            except Exception as exc:
                raise _error("could not analyse or translate", exc) from exc
        return self.runnables[shapes]

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        by_name = {keras_load.input_name(k): np.ascontiguousarray(v, bool if k == "mask" else np.float32)
                   for k, v in chunk.items()}
        missing = [n for n in self.input_names if n not in by_name]
        if missing:
            raise RuntimeError(f"no value for the ONNX inputs {missing} (fed {sorted(by_name)})")
        arrays = [by_name[n] for n in self.input_names]
        runnable = self._runnable(arrays)
        try:
            values = [t.to_numpy() for t in runnable.run(arrays)]
        except Exception as exc:
            raise _error("failed running", exc) from exc
        position = {name: k for k, name in enumerate(self.graph_outputs)}
        return {key: np.asarray(values[position[name]]) for key, name in self.output_names.items()}


def notes(fixture_id: str) -> str | None:
    """tf2onnx's ops for this fixture, cache hit or miss, and timings (the run is tract's)."""
    return NOTES.get(fixture_id)


def info() -> dict:
    return tf2onnx.converter_info(("tract",), lambda: {"tract": distribution_version("tract"),
                                                       "tract_library": _tract().version()})


@implementation(
    info=info,
    notes=notes,
    version=distribution_version("tract"),
    returns_trace=False,
    keras_semantics=keras_load.keras_version,
    repro_env=(tf2onnx.OPSET_VARIABLE,))
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``tract``."""
    tf2onnx._tf2onnx()
    _tract()
    with quiet.calls():
        return tf2onnx._run(fixture, runtime=sys.modules[__name__])
