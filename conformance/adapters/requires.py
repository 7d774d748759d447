"""One wording for a missing optional library, with the command that installs it.

Every adapter skips (``Unsupported``) when its library is absent, and its ``info()`` says so
for ``--list-impls`` and the report header; all of them say it the same way, with the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

from ..errors import BrokenLibrary, Unsupported

# top-level module -> how to install it
INSTALL = {
    "keras": 'pip install "lstm-conformance[keras]"',
    "tensorflow": 'pip install "lstm-conformance[keras]"',
    "torch": 'pip install "lstm-conformance[torch]"',
    "onnx": 'pip install "lstm-conformance[onnx]"',
    "onnxruntime": 'pip install "lstm-conformance[onnx]"',
    "tf2onnx": 'pip install "lstm-conformance[tf2onnx]"',
    "openvino": 'pip install "lstm-conformance[openvino]"',
    "tf_keras": "pip install tf-keras",
    "ai_edge_litert": "pip install ai-edge-litert",
}


def missing(module: str) -> Unsupported:
    """The standard skip for ``module`` not being installed."""
    top = module.partition(".")[0]
    return Unsupported(f"needs {top}, which is not installed: {INSTALL.get(top, f'pip install {top}')}")


def require(module: str):
    """Import ``module``, or raise ``Unsupported`` saying which library is missing and how to install it.

    A library that is installed but fails to import is named as such, with the error: the hint
    to install it would be wrong there, and it is an error of the case (``BrokenLibrary``), not a skip.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        if isinstance(exc, ModuleNotFoundError) and exc.name == top:
            raise missing(module) from None
        raise BrokenLibrary(f"needs {top}, which is installed but fails to import: {exc}") from None


def check_installed(module: str) -> None:
    """``require`` without the import, for ``info()``: cheap enough for ``--list-impls``."""
    try:
        found = importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without __spec__
        found = False
    if not found:
        raise missing(module)


def distribution_version(distribution: str) -> str | None:
    """The installed distribution's version (without importing it), or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
