"""The implementation contract (SPEC 7, ``conformance.judge.contract``): one declaration, read in one place.

Both forms a plug-in can take are judged by the real suite on gallery fixtures: a ``run`` declared with
``@implementation(...)`` and a bare ``run(fixture)`` with the optional attributes set by hand (what a third-party
entry point written before the decorator does). Each form must reach the suite the same way.
"""

from __future__ import annotations

import pytest

from conformance import gallery_dir, list_fixtures
from conformance.adapters import keras_load, onnx, tf2onnx
from conformance.judge.contract import Contract, implementation
from conformance.judge.registry import Implementation
from conformance.judge.suite import Case, judge
from conformance.judge.verdict import Status
from conformance.semantics import reference

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
GRU = "gru-reset-after-basic"
LSTM = "lstm-seed-question"


def _impl(run) -> Implementation:
    return Implementation("port", "test:port", "0", None, _loader=lambda: run)


def _decorated():
    @implementation(version="1.2", info=lambda: {"tool": "t"}, supports=lambda f: "no GRU" if f.layer == "GRU" else None,
                    returns_trace=False, keras_semantics="3.15.1", repro_env=("PORT_SETTING",))
    def run(fixture):
        return reference.run(fixture)
    return run


def _bare():
    def run(fixture):
        return reference.run(fixture)
    run.version = "1.2"
    run.info = lambda: {"tool": "t"}
    run.supports = lambda f: "no GRU" if f.layer == "GRU" else None
    run.returns_trace = False
    run.keras_semantics = "3.15.1"
    run.repro_env = ("PORT_SETTING",)
    return run


@pytest.mark.parametrize("make", [_decorated, _bare], ids=["decorator", "bare-callable"])
def test_both_forms_reach_the_suite_alike(make, monkeypatch):
    run = make()
    contract = Contract.of(run)
    assert (contract.version, contract.returns_trace, contract.repro_env, contract.declares) == \
        ("1.2", False, ("PORT_SETTING",), "keras_semantics")
    impl = _impl(run)
    assert impl.info() == {"version": "1.2", "tool": "t"}
    assert impl.keras_semantics() == ("3.15.1", None)   # a port: the version only, never a backend
    skipped = judge(Case(impl, FIXTURES[GRU]))
    assert skipped.status is Status.SKIPPED and skipped.reason == "no GRU"
    passed = judge(Case(impl, FIXTURES[LSTM]))
    assert passed.status is Status.PASSED and passed.impl_version == "1.2"
    monkeypatch.setenv("PORT_SETTING", "7")
    assert "PORT_SETTING=7" in Case(impl, FIXTURES[LSTM]).repro()


def test_a_bare_callable_with_nothing_declared_gets_the_defaults():
    def run(fixture):
        return reference.run(fixture)
    contract = Contract.of(run)
    assert contract == Contract(run=run)
    assert (contract.returns_trace, contract.repro_env, contract.keras()) == (True, (), (None, None))
    assert judge(Case(_impl(run), FIXTURES[LSTM])).status is Status.PASSED


def test_the_decorator_keeps_the_attributes_spec_7_names():
    run = _decorated()
    assert Contract.of(run) is run.contract
    assert run.version == "1.2" and run.returns_trace is False and run.supports(FIXTURES[GRU]) == "no GRU"


def test_the_built_ins_declare_with_the_decorator():
    for run in (keras_load.run, onnx.run, tf2onnx.run):
        assert isinstance(run.contract, Contract), run.__module__
    assert keras_load.run.contract.declares == "keras_version"
    assert tf2onnx.run.contract.declares == "keras_semantics" and tf2onnx.run.contract.returns_trace is False
    assert onnx.run.contract.supports is onnx.supports


def test_a_wrong_declaration_is_refused_when_made():
    with pytest.raises(TypeError, match="unknown contract field.*retruns_trace"):
        implementation(retruns_trace=False)
    with pytest.raises(TypeError, match="keras_version .* and keras_semantics"):
        implementation(keras_version="3.15.1", keras_semantics="3.15.1")
    with pytest.raises(TypeError, match="not a callable run"):
        Contract(run="run")
