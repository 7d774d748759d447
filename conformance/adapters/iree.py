"""The ``iree`` implementation: IREE compiles the graph tf2onnx writes ahead of time for a CPU and runs it.

The graph is the ``tf2onnx`` adapter's, conversion and cache entry included (``onnx_reference``
says what that needs at run time). IREE's documented ONNX path is three steps, taken here as
documented: ``iree-import-onnx`` (in process: ``iree.compiler.tools.import_onnx``, which runs ONNX
shape inference and writes the torch-dialect MLIR), ``iree-compile
--iree-hal-target-backends=llvm-cpu`` (``iree.compiler.compile_file``, which runs the compiler
binary), then the module in ``iree.runtime`` on the ``local-sync`` driver (one thread, no task
pool: the run cannot depend on the machine's load). The guide's quickstart also upgrades the graph
(``--opset-version 17``); the graph is imported at tf2onnx's opset instead, as the other ONNX
runtimes take it (the upgrade changed nothing on a fused, a Loop, a float16 and a float64 graph).

The compiler targets a fixed CPU, ``--iree-llvmcpu-target-cpu=generic``: the baseline ISA of
the host's architecture (SSE2 on x86-64), never the host's own features (AVX-512 here, maybe not
on CI), so the code and so the verdict are the same on every machine of one architecture
(``tests/ports/test_iree.py`` runs a module under qemu-user as a CPU without AVX: the same bytes). The
architecture (``platform.machine()``), the flags, the IREE and ONNX versions and the graph's
sha256 key the compiled module in the conversion cache (``conversions/iree/``: ``module.vmfb``
and ``compile.json`` with the import and compile times). A graph IREE cannot import or compile is
``ConversionError`` with IREE's own first error line (and the ONNX op it names), never cached.
Inputs go in the graph's input order, outputs come back in its output order and are named by
``conversion.json`` as in the ``tf2onnx`` adapter.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
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
from . import keras_load, quiet, tf2onnx
from .requires import distribution_version, require
from ..judge.contract import implementation

TOOL = "iree"
COMPILER, RUNTIME = "iree-base-compiler", "iree-base-runtime"
BACKEND = "llvm-cpu"
TARGET_CPU = "generic"  # never "host": the compiled code must not depend on this machine's CPU features
FLAGS = (f"--iree-llvmcpu-target-cpu={TARGET_CPU}",)
DRIVER = "local-sync"
LAYOUT = 1              # bump when what this adapter writes into a cache entry changes
MODULE = "module.vmfb"
META = "compile.json"
NOTES: dict[str, str] = {}
_LAST = threading.local()  # the compile note of this thread's last Session, for run()'s note


@functools.lru_cache(maxsize=None)
def _compiler():
    require("iree.compiler.tools.import_onnx.__main__")
    return require("iree.compiler")


@functools.lru_cache(maxsize=None)
def _runtime():
    return require("iree.runtime")


def target() -> str:
    return f"{BACKEND} {platform.machine()} cpu={TARGET_CPU}"


def _failure(step: str, text: str, caught=()) -> ConversionError:
    """IREE's first error line, the op dump cut to the ONNX op it names (the dump holds every operand's type),
    and what the importer warned."""
    lines = [line for line in str(text).splitlines() if "error:" in line] or [str(text).strip() or "?"]
    first = re.sub(r"\S*[/\\](model\.mlir:)", r"\1", " ".join(lines[0].split()))  # the scratch folder varies
    op = re.search(r'<\{name = "(onnx\.\w+)"\}>', first)
    first = re.sub(r":\s*%\S+ = \"torch\.operator\".*", "", first) + (f" [op {op.group(1)}]" if op else "")
    return ConversionError(f"{TOOL} {distribution_version(COMPILER)} ({step}, {target()}) could not take what "
                           f"tf2onnx {tf2onnx.tool_version()} wrote: {first[:600]}"
                           + "".join(f" [iree-import-onnx warned: {' '.join(str(w.message).split())[:200]}]"
                                     for w in caught))


def compile_module(model: Path, folder: Path) -> None:
    """``iree-import-onnx`` then ``iree-compile`` on ``model``; writes ``module.vmfb`` and ``compile.json``."""
    compiler = _compiler()
    importer = sys.modules["iree.compiler.tools.import_onnx.__main__"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-iree-") as scratch:
        mlir = Path(scratch) / "model.mlir"
        with warnings.catch_warnings(record=True) as caught:  # the importer's notices go into the message
            warnings.simplefilter("always")
            try:
                importer.main(importer.parse_arguments([str(model), "-o", str(mlir)]))
            except Exception as exc:
                raise _failure("iree-import-onnx", f"{type(exc).__name__}: {exc}", caught) from exc
        imported = time.perf_counter()
        try:
            compiler.compile_file(str(mlir), target_backends=[BACKEND], extra_args=list(FLAGS),
                                  output_file=str(folder / MODULE))
        except compiler.CompilerToolError as exc:
            raise _failure("iree-compile", str(exc), caught) from exc
    done = time.perf_counter()
    (folder / META).write_text(json.dumps({"import_s": round(imported - started, 3),
                                           "compile_s": round(done - imported, 3), "target": target(),
                                           "flags": list(FLAGS),
                                           "warnings": sorted({str(w.message) for w in caught})[:20]},
                                          indent=1, sort_keys=True))


def cache_parts(model_bytes: bytes) -> dict:
    return {"onnx_sha256": hashlib.sha256(model_bytes).hexdigest(), "machine": platform.machine(),
            "backend": BACKEND, "flags": list(FLAGS), "layout": LAYOUT,
            "versions": {COMPILER: distribution_version(COMPILER), RUNTIME: distribution_version(RUNTIME),
                         "onnx": distribution_version("onnx")}}


def check(data: bytes, log: list[str]) -> None:
    """The conversion's acceptance test here: the file parses as ONNX (compiling is this adapter's own step)."""
    try:
        require("onnx").load_from_string(data)
    except Exception as exc:
        raise ConversionError(f"onnx {distribution_version('onnx')} could not parse what tf2onnx "
                              f"{tf2onnx.tool_version()} wrote: {type(exc).__name__}: {exc}") from exc


class Session:
    """The compiled module (compiled or found in the cache): contract keys in, contract keys out."""

    def __init__(self, path: Path, output_names: Mapping[str, str], log: list[str]):
        data = Path(path).read_bytes()
        graph = require("onnx").load_from_string(data).graph
        self.input_names = [i.name for i in graph.input]
        self.graph_outputs = [o.name for o in graph.output]
        self.output_names = dict(output_names)
        if not set(self.output_names.values()) <= set(self.graph_outputs):
            raise ConversionError(f"{TOOL}: the graph's outputs are {self.graph_outputs}, "
                                  f"expected {sorted(self.output_names.values())}")
        folder, hit = cache.entry(TOOL, cache_parts(data), lambda into: compile_module(Path(path), into))
        meta = json.loads((folder / META).read_text())
        _LAST.note = (f"iree {target()}: cache {'hit' if hit else 'miss'}, import {meta['import_s']:.2f} s, "
                      f"compile {meta['compile_s']:.2f} s{' (when cached)' if hit else ''}")
        runtime = _runtime()
        config = runtime.Config(DRIVER)
        module = runtime.VmModule.copy_buffer(config.vm_instance, (folder / MODULE).read_bytes())
        self.context = runtime.SystemContext(config=config)
        self.context.add_vm_module(module)
        try:
            self.function = self.context.modules[module.name][graph.name]
        except (KeyError, AttributeError) as exc:
            raise ConversionError(f"{TOOL}: the compiled module has no function {graph.name!r}") from exc

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        fed = tf2onnx.feed(chunk, set(self.input_names))
        missing = [n for n in self.input_names if n not in fed]
        if missing:
            raise RuntimeError(f"no value for the ONNX inputs {missing} (fed {sorted(fed)})")
        try:
            values = self.function(*(np.ascontiguousarray(fed[n]) for n in self.input_names))
        except Exception as exc:
            raise ConversionError(f"{TOOL} {distribution_version(RUNTIME)} ({DRIVER}) failed running what "
                                  f"tf2onnx {tf2onnx.tool_version()} wrote: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:600]}") from exc
        values = values if isinstance(values, (tuple, list)) else (values,)
        if len(values) != len(self.graph_outputs):
            raise ConversionError(f"{TOOL}: the module returned {len(values)} values for the graph's outputs "
                                  f"{self.graph_outputs}")
        position = {name: k for k, name in enumerate(self.graph_outputs)}
        return {key: np.asarray(values[position[name]].to_host()) for key, name in self.output_names.items()}


def notes(fixture_id: str) -> str | None:
    """tf2onnx's ops for this fixture, IREE's compile (cache hit or miss, times) and the run's timings."""
    return NOTES.get(fixture_id)


def info() -> dict:
    return tf2onnx.converter_info(("iree",), lambda: {
        "iree_compiler": distribution_version(COMPILER), "iree_runtime": distribution_version(RUNTIME),
        "target": target(), "flags": " ".join(FLAGS), "driver": DRIVER,
        "iree_cache": str(cache.conversions_dir(TOOL)) if cache.enabled() else "off"})


@implementation(
    info=info,
    notes=notes,
    version=distribution_version(COMPILER),
    returns_trace=False,
    keras_semantics=keras_load.keras_version,
    repro_env=(tf2onnx.OPSET_VARIABLE,))
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``iree``."""
    tf2onnx._tf2onnx()
    _compiler()
    _runtime()
    _LAST.note = None
    try:
        with quiet.calls():
            return tf2onnx._run(fixture, runtime=sys.modules[__name__])
    finally:
        if _LAST.note and fixture.id in NOTES:
            NOTES[fixture.id] += f"; {_LAST.note}"
