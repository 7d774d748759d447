"""The ``iree`` port: IREE compiles the graph tf2onnx writes for a generic CPU, and runs it (real conversions
and compiles into a private cache)."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("iree.compiler")
pytest.importorskip("iree.runtime")
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.adapters import iree
from conformance.judge.registry import Implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}


def test_a_fused_lstm_graph_compiles_for_the_generic_cpu_runs_and_passes(private_cache):
    impl = Implementation("iree", "conformance.adapters.iree:run", iree.run.version, None, _loader=lambda: iree.run)
    verdict = judge(Case(impl, FIXTURES["bidirectional-lstm-return-state"]))
    assert verdict.status == Status.PASSED, verdict.message
    assert "iree llvm-cpu" in iree.notes("bidirectional-lstm-return-state")
    assert "cache miss" in iree.notes("bidirectional-lstm-return-state").split("iree llvm-cpu")[1]
    # what was compiled is keyed on the fixed target, never the host's CPU
    keys = [json.loads(p.read_text()) for p in (private_cache / "conversions" / "iree").glob("*/key.json")]
    assert [k["flags"] for k in keys] == [["--iree-llvmcpu-target-cpu=generic"]]


def test_a_loop_graph_is_a_conversion_error_naming_the_onnx_op_torch_mlir_cannot_lower():
    """tf2onnx writes a masked LSTM as a Loop with scan outputs, which torch-mlir's onnx.Loop lowering refuses."""
    with pytest.raises(ConversionError, match=r"iree \S+ \(iree-compile, llvm-cpu \S+ cpu=generic\) .*"
                                              r"failed to legalize operation 'torch\.operator'.*\[op onnx\.Loop\]"):
        iree.run(FIXTURES["lstm-mask-trailing"].isolated())


def test_the_generic_module_gives_the_same_bits_on_a_cpu_without_avx(private_cache, tmp_path):
    """The compiled module run by IREE's own iree-run-module here and under qemu-user emulating a Westmere
    (SSE4.2, no AVX): a module built for the host's AVX-512 dies there of an illegal instruction."""
    qemu = shutil.which("qemu-x86_64")
    if platform.machine() != "x86_64" or not qemu:
        pytest.skip("needs x86-64 and qemu-user's qemu-x86_64 (apt-get install qemu-user)")
    fixture = FIXTURES["lstm-seed-question"]
    iree.run(fixture.isolated())
    (module,) = (private_cache / "conversions" / "iree").glob("*/module.vmfb")
    (graph,) = (private_cache / "conversions" / "tf2onnx").glob("*/model.onnx")
    outputs = len(pytest.importorskip("onnx").load(str(graph)).graph.output)
    tool = Path(pytest.importorskip("iree._runtime_libs").__path__[0]) / "iree-run-module"
    np.save(tmp_path / "x.npy", np.asarray(fixture.inputs["x"], np.float32))
    results = {}
    for name, prefix in (("native", []), ("westmere", [qemu, "-cpu", "Westmere"])):
        files = [tmp_path / f"{name}-{k}.npy" for k in range(outputs)]
        subprocess.run([*prefix, str(tool), "--device=local-sync", f"--module={module}", "--function=tf2onnx",
                        f"--input=@{tmp_path / 'x.npy'}", *[f"--output=@{f}" for f in files]],
                       check=True, capture_output=True, timeout=300)
        results[name] = [f.read_bytes() for f in files]
    assert results["native"] == results["westmere"]
    np.testing.assert_allclose(np.load(tmp_path / "native-0.npy"), fixture.expected["output"], rtol=1e-5, atol=1e-5)
