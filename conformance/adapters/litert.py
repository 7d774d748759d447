"""The ``litert`` implementation: LiteRT's interpreter (``ai-edge-litert``) on the .tflite the ``tflite``
adapter converts.

LiteRT is the successor of ``tf.lite.Interpreter`` (deprecated in TensorFlow 2.20, to be removed):
the package ``ai-edge-litert`` ships its own interpreter and kernels, built apart from TensorFlow.
The flatbuffer is the ``tflite`` adapter's, byte for byte: the same conversion
(``TFLiteConverter.from_keras_model``, builtins first, resource variables for stateful fixtures), the
same cache entry, the same feeding and output naming; only the interpreter differs
(``ai_edge_litert.interpreter.Interpreter``, one thread, a fresh one after ``reset_before``). So where
``litert`` and ``tflite`` disagree on a fixture, the interpreters differ.

What it needs at run time: TensorFlow and Keras to build the cache key and, on a miss, to convert;
``ai-edge-litert`` to run.
"""

from __future__ import annotations

import numpy as np

from ..errors import Unsupported
from . import quiet, tflite
from .keras import backend_name, keras_version
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

DISTRIBUTION = "ai-edge-litert"
NAME = f"ai_edge_litert {distribution_version(DISTRIBUTION)}"
NOTES: dict[str, str] = {}


def _interpreter() -> type:
    with quiet.importing("ai_edge_litert"):
        return require("ai_edge_litert.interpreter").Interpreter


class Converted(tflite.Converted):
    """The tflite adapter's conversion, run by LiteRT's interpreter."""

    @staticmethod
    def interpreter() -> tuple[type, str]:
        return _interpreter(), NAME


def notes(fixture_id: str) -> str | None:
    """The ops the converter produced for this fixture (and timings), once it has run."""
    return NOTES.get(fixture_id)


def info() -> dict:
    try:
        check_installed("ai_edge_litert")
    except Unsupported as exc:
        return {"not_installed": str(exc)}
    converter = tflite.info()
    if "not_installed" in converter:
        return converter
    return {"ai_edge_litert": distribution_version(DISTRIBUTION), "interpreter": "ai_edge_litert",
            "converter": f"TFLiteConverter (tensorflow {converter['tensorflow']})", "keras": keras_version(),
            "backend": backend_name(), "tflite_ops": converter["tflite_ops"]}


@implementation(
    version=distribution_version(DISTRIBUTION),
    info=info,
    notes=notes,
    keras_version=keras_version,
    backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``litert``."""
    tflite._tf()
    _interpreter()
    with quiet.calls():
        return tflite._run(fixture, Converted, NOTES)
