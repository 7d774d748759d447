"""The ``onnx-reference`` implementation: ONNX's own reference evaluator on the graph tf2onnx writes.

``onnx.reference.ReferenceEvaluator`` is ONNX's executable reading of its operator specs (numpy,
one operator at a time), so where it and ONNX Runtime disagree on one graph, one of them departs
from the spec. The graph is the ``tf2onnx`` adapter's: the same conversion
(``tf2onnx.convert.from_keras`` on the fixture's model file, or the stateless model of a
stateful fixture), the same conversion cache entry (its key holds the tf2onnx, ONNX, ONNX Runtime,
TensorFlow and Keras versions, so an env with the ``ports-tf2onnx`` pins reuses that env's
conversions), the same feeding by input name and outputs by name.

What it needs at run time: TensorFlow, Keras and tf2onnx to load the fixture's model and compute
the cache key (the model's input and output keys are part of it) even on a hit, onnx to evaluate,
and onnxruntime only for the cache key's version. A graph the reference evaluator will not load is
never cached (``ConversionError``, every time), as with ONNX Runtime in the ``tf2onnx`` adapter.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ConversionError
from . import keras_load, quiet, tf2onnx
from .requires import distribution_version, require
from ..judge.contract import implementation

TOOL = "onnx.reference"
NOTES: dict[str, str] = {}


@functools.lru_cache(maxsize=None)
def _reference():
    onnx = require("onnx")
    require("onnx.reference")
    return onnx


def _evaluator(model):
    """A ``ReferenceEvaluator`` on a model file or its bytes; ``ConversionError`` naming onnx when it refuses."""
    onnx = _reference()
    try:
        proto = onnx.load(str(model)) if isinstance(model, Path) else onnx.load_from_string(model)
        return onnx.reference.ReferenceEvaluator(proto)
    except Exception as exc:
        raise ConversionError(f"{TOOL} (onnx {distribution_version('onnx')}) would not load what tf2onnx "
                              f"{tf2onnx.tool_version()} wrote: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:600]}") from exc


def check(data: bytes, log: list[str]) -> None:
    """The conversion's acceptance test here: the reference evaluator loads the graph."""
    _evaluator(data)


class Session:
    """The reference evaluator on a converted model: contract keys in, contract keys out (as ``tf2onnx.Session``)."""

    def __init__(self, path: Path, output_names: Mapping[str, str], log: list[str]):
        self.evaluator = _evaluator(Path(path))
        self.inputs = set(self.evaluator.input_names)
        self.output_names = dict(output_names)
        if not set(self.output_names.values()) <= set(self.evaluator.output_names):
            raise ConversionError(f"{TOOL}: the graph's outputs are {self.evaluator.output_names}, "
                                  f"expected {sorted(self.output_names.values())}")

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = list(self.output_names)
        try:
            values = self.evaluator.run([self.output_names[k] for k in keys], tf2onnx.feed(chunk, self.inputs))
        except Exception as exc:
            raise ConversionError(f"{TOOL} (onnx {distribution_version('onnx')}) failed running what tf2onnx "
                                  f"{tf2onnx.tool_version()} wrote: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:800]}") from exc
        return {key: np.asarray(value) for key, value in zip(keys, values)}


def notes(fixture_id: str) -> str | None:
    """tf2onnx's ops for this fixture, cache hit or miss, and timings (the run is the reference evaluator's)."""
    return NOTES.get(fixture_id)


def info() -> dict:
    return tf2onnx.converter_info(("onnx",), lambda: {"evaluator": "onnx.reference.ReferenceEvaluator",
                                                      "onnx": distribution_version("onnx")})


@implementation(
    info=info,
    notes=notes,
    version=distribution_version("onnx"),
    returns_trace=False,
    keras_semantics=keras_load.keras_version,
    repro_env=(tf2onnx.OPSET_VARIABLE,))
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``onnx-reference``."""
    tf2onnx._tf2onnx()
    _reference()
    with quiet.calls():
        return tf2onnx._run(fixture, runtime=sys.modules[__name__])
