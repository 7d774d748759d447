"""One wording for a missing optional library, with the command that installs it.

Every adapter skips (``Unsupported``) when its library is absent, and its ``info()`` says so
for ``--list-impls`` and the report header; all of them say it the same way, with the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import urllib.parse
from importlib import metadata

from ..errors import BrokenLibrary, Unsupported

DISTRIBUTION = "lstm-conformance"
# top-level module -> the extra of this package that installs it (or a plain pip requirement)
EXTRA = {"keras": "keras", "tensorflow": "keras", "torch": "torch", "onnx": "onnx", "onnxruntime": "onnx",
         "tf2onnx": "tf2onnx", "openvino": "openvino", "hypothesis": "fuzz", "matplotlib": "gallery",
         "onnx2tf": "onnx2tf"}
PLAIN = {"tf_keras": "tf-keras", "ai_edge_litert": "ai-edge-litert", "hls4ml": "hls4ml",
         "iree": "iree-base-compiler iree-base-runtime"}


def _direct_url(dist) -> dict:
    """PEP 610's record of where this package was installed from ({} for an index install)."""
    try:
        return json.loads(dist.read_text("direct_url.json") or "{}")
    except (OSError, ValueError):
        return {}


def _extra_requirements(dist, extra: str) -> list[str]:
    marker = re.compile(rf"""; *extra *== *["']{re.escape(extra)}["']$""")
    return [marker.sub("", r).replace(" ", "") for r in dist.requires or () if marker.search(r)]


def extra_install(extra: str, dist=None) -> str:
    """The command that installs ``extra`` for the way this package was installed.

    This package is not on PyPI, so ``pip install "lstm-conformance[x]"`` works nowhere: a clone
    installed with ``pip install -e .`` is told ``pip install -e "<its folder>[x]"``; any other install
    (a wheel, tox's envs) is told the extra's own pinned requirements, which pip resolves from the index.
    """
    try:
        dist = dist or metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree on sys.path, not installed
        return f'pip install -e ".[{extra}]" (in the lstm-conformance checkout)'
    origin = _direct_url(dist)
    folder = origin.get("url", "")
    if "dir_info" in origin and folder.startswith("file://"):
        path = urllib.parse.unquote(urllib.parse.urlparse(folder).path)
        editable = "-e " if origin["dir_info"].get("editable") else ""
        return f'pip install {editable}"{path}[{extra}]"'
    needed = _extra_requirements(dist, extra)
    return "pip install " + " ".join(f'"{r}"' for r in needed) if needed else f"pip install {extra}"


def install_command(top: str) -> str:
    """How to install the library whose top-level module is ``top``."""
    if top in EXTRA:
        return extra_install(EXTRA[top])
    return f"pip install {PLAIN.get(top, top)}"


def missing(module: str) -> Unsupported:
    """The standard skip for ``module`` not being installed."""
    top = module.partition(".")[0]
    return Unsupported(f"needs {top}, which is not installed: {install_command(top)}")


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
