"""The ``iree`` port: IREE compiles the graph tf2onnx writes for a generic CPU, and runs it (real conversions
and compiles into a private cache)."""

from __future__ import annotations

import json

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
