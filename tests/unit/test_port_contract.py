"""The converter contract (SPEC 7.8): crashes, partial outputs, declared Keras semantics, scratch copies, repro env.

Each case runs the real suite's ``judge`` on gallery fixtures with small implementations
that do what a port does: return the reference's numbers (right), part of them, or raise
the tool's own failure.
"""

from __future__ import annotations

import hashlib

import numpy as np

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.reference import run as reference
from conformance.registry import Implementation
from conformance.suite import Case, judge
from conformance.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}


def _impl(run, name="port") -> Implementation:
    return Implementation(name, f"test:{name}", "0", None, _loader=lambda: run)


def _judge(run, fixture_id: str):
    return judge(Case(_impl(run), FIXTURES[fixture_id]))


def test_a_tool_failure_is_crashed_not_failed():
    def converter(fixture):
        raise ConversionError("tool 1.0 refused the model: unsupported op LSTM")

    verdict = _judge(converter, "lstm-seed-question")
    assert verdict.status == Status.CRASHED
    assert "refused the model: unsupported op LSTM" in verdict.message and "repro:" in verdict.message


def test_declared_partial_outputs_are_partial_never_passed():
    def output_only(fixture):
        return {"output": reference(fixture)["output"]}
    output_only.returns = lambda fixture: ["output"]

    verdict = _judge(output_only, "lstm-seed-question")
    assert verdict.status == Status.PARTIAL
    assert "state_h" in verdict.message and "state_c" in verdict.message

    def wrong_output(fixture):
        return {"output": reference(fixture)["output"] + 0.5}
    wrong_output.returns = output_only.returns
    assert _judge(wrong_output, "lstm-seed-question").status == Status.FAILED

    undeclared = lambda fixture: {"output": reference(fixture)["output"]}  # noqa: E731
    assert _judge(undeclared, "lstm-seed-question").status == Status.FAILED  # missing states, not declared


def test_no_trace_hint_for_a_port_that_cannot_return_one():
    def scaled(fixture):
        return {k: v * 1.1 for k, v in reference(fixture).items() if k != "trace"}

    assert "return a 'trace'" in _judge(scaled, "lstm-basic").message
    scaled.returns_trace = False
    assert "return a 'trace'" not in _judge(scaled, "lstm-basic").message


def test_declared_keras_semantics_filter_applies_to_only():
    def port(fixture):
        return {k: v for k, v in reference(fixture).items() if k != "trace"}
    port.keras_semantics = "3.15.1"
    port.backend = "jax"  # ignored without keras_version: a port is not a backend

    skipped = _judge(port, "lstm-hard-sigmoid-keras2")
    assert skipped.status == Status.SKIPPED and "applies to Keras <3" in skipped.message
    assert _judge(port, "lstm-hard-sigmoid-keras3").status == Status.PASSED


def test_the_model_file_is_a_private_scratch_copy_removed_after_the_case():
    fixture = FIXTURES["lstm-seed-question"]
    gallery_file = fixture.path / fixture.meta["model_file"]["name"]
    before = hashlib.sha256(gallery_file.read_bytes()).hexdigest()
    seen = []

    def unpacking_converter(fixture):
        path = fixture.model_path()
        seen.append(path)
        assert path.parent != fixture.path and path.read_bytes() == gallery_file.read_bytes()
        (path.parent / "unpacked.bin").write_bytes(b"converter output")  # writes beside its input
        path.write_bytes(b"clobbered")
        return {k: v for k, v in reference(fixture).items() if k != "trace"}

    assert _judge(unpacking_converter, "lstm-seed-question").status == Status.PASSED
    assert not seen[0].parent.exists()  # released after the case
    assert hashlib.sha256(gallery_file.read_bytes()).hexdigest() == before
    assert not (fixture.path / "unpacked.bin").exists()


def test_the_repro_line_carries_the_environment(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("PORT_PRECISION", "f16")

    def port(fixture):
        return {k: np.asarray(v) * 2 for k, v in reference(fixture).items() if k != "trace"}
    port.repro_env = ["PORT_PRECISION", "UNSET_SETTING"]

    message = _judge(port, "lstm-basic").message
    repro = next(line for line in message.splitlines() if line.startswith("repro:"))
    assert repro.startswith("repro: KERAS_BACKEND=jax PORT_PRECISION=f16 pytest --pyargs conformance --impl port")
    assert "UNSET_SETTING" not in repro


def test_a_library_that_fails_to_import_is_an_error_not_a_skip(tmp_path, monkeypatch):
    """An env whose library is installed but broken (e.g. Keras without its backend) must not come out green."""
    from conformance.adapters.requires import require

    (tmp_path / "broken_backend_xyz.py").write_text("import torch_that_is_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    verdict = _judge(lambda fixture: require("broken_backend_xyz"), "lstm-basic")
    assert verdict.status == Status.ERROR
    assert "needs broken_backend_xyz, which is installed but fails to import" in verdict.message
