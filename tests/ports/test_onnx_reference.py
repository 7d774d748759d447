"""The ``onnx-reference`` port: ``onnx.reference.ReferenceEvaluator`` on the graph tf2onnx writes.

Real conversions into a private cache, shared with the ``tf2onnx`` adapter (one entry per fixture).
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.adapters import onnx_reference, tf2onnx
from conformance.judge.registry import Implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}



def test_a_fused_lstm_graph_passes_and_the_conversion_is_shared_with_tf2onnx():
    impl = Implementation("onnx-reference", "conformance.adapters.onnx_reference:run", onnx_reference.run.version,
                          None, _loader=lambda: onnx_reference.run)
    verdict = judge(Case(impl, FIXTURES["lstm-seed-question"]))
    assert verdict.status == Status.PASSED, verdict.message
    assert "cache miss" in onnx_reference.notes("lstm-seed-question")
    tf2onnx.run(FIXTURES["lstm-seed-question"].isolated())
    assert "cache hit" in tf2onnx.notes("lstm-seed-question")


def test_a_loop_graph_is_a_conversion_error_naming_the_evaluator():
    """tf2onnx writes a masked LSTM as a Loop; the reference Loop joins its scan outputs with np.vstack
    (onnx 1.23.2 onnx/reference/ops/op_loop.py), so the graph's Transpose meets a rank-2 array."""
    with pytest.raises(ConversionError, match=r"onnx\.reference .*Inconsistent permutation"):
        onnx_reference.run(FIXTURES["lstm-mask-trailing"].isolated())
