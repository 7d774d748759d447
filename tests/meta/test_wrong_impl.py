"""Wrong and broken implementations fail loudly, each in its own tests, with messages fit for a bug report.

The implementations live in ``tests/impls/`` and are loaded by the suite through
``--impl module:attr``, in a pytester run of ``pytest --pyargs conformance``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil

import numpy as np
import pytest

from conformance.fixtures import list_fixtures

from helpers.repo import REPO

IMPLS = REPO / "tests" / "impls"
BROKEN = {  # --impl spec -> text its failure message must contain
    "impl_import_error:run": ["failed to load", "impl_import_error:run", "ModuleNotFoundError",
                              "lstm_conformance_missing_dependency"],
    "impl_broken:raises": ["raised RuntimeError", "deliberate failure in impl_broken.raises"],
    "impl_broken:returns_nan": ["returned unusable output", "output 'state_c' contains NaN or Inf"],
    "impl_broken:wrong_shape": ["returned unusable output", "output 'output' has shape"],
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_test_{name}", IMPLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lstm_gallery(tmp_path_factory):
    """A copy of the gallery's single-call LSTM fixtures: the wrong implementations here are LSTM ports
    that know nothing of stateful ``calls``."""
    listing = list_fixtures(REPO / "fixtures")
    root = tmp_path_factory.mktemp("lstm-fixtures")
    for fixture in listing.fixtures:
        if fixture.layer == "LSTM" and not fixture.meta.get("calls"):
            shutil.copytree(fixture.path, root / fixture.id)
    copied = list_fixtures(root)
    assert copied.fixtures and not copied.errors, copied.errors
    return copied


def run_suite(pytester, gallery, *impls: str) -> dict[tuple[str, str], pytest.TestReport]:
    """Run ``pytest --pyargs conformance`` in-process; the test reports keyed by (impl, fixture id)."""
    pytester.syspathinsert(IMPLS)
    args = ["-p", "no:cacheprovider", "--pyargs", "conformance", "--fixtures-dir", str(gallery.root)]
    for impl in impls:
        args += ["--impl", impl]
    recorded = pytester.inline_run(*args)
    reports = {}
    for report in recorded.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            param = re.search(r"\[(.*)\]$", report.nodeid).group(1)
            impl = next(i for i in impls if param.startswith(i + "-"))
            reports[(impl, param[len(impl) + 1:])] = report
    return reports


def test_onnx_gate_order_fails_every_fixture_naming_fixture_output_and_timestep(pytester, lstm_gallery):
    wrong = _load("impl_onnx_gate_order")
    reports = run_suite(pytester, lstm_gallery, "impl_onnx_gate_order:run")
    assert len(reports) == len(lstm_gallery.fixtures)
    steps_checked = 0
    for fixture in lstm_gallery.fixtures:
        report = reports[("impl_onnx_gate_order:run", fixture.id)]
        assert report.failed, f"{fixture.id}: a port with ONNX gate order was not caught ({report.outcome})"
        message = report.longreprtext
        assert fixture.citation in message, message
        # Which outputs are wrong, and the first bad timestep, computed here independently of compare.py.
        got = wrong.run(fixture.isolated())
        for name, want in fixture.expected.items():
            bad = ~np.isclose(got[name].astype(np.float64), want.astype(np.float64),
                              atol=fixture.tolerance["atol"], rtol=fixture.tolerance["rtol"])
            if not bad.any():
                assert f"output {name!r}" not in message, message
                continue
            assert f"output {name!r}: {int(bad.sum())} of {bad.size} elements out of tolerance" in message, message
            if bad.ndim == 3:
                first_step = int(np.argwhere(bad)[:, 1].min())
                assert re.search(rf"first offending element \[batch \d+, timestep {first_step}\b", message), message
                steps_checked += 1
        assert f"--impl impl_onnx_gate_order:run --fixture-id {fixture.id}" in message, message
    assert steps_checked, "no fixture with a per-timestep output was checked"


def test_onnx_gate_order_with_trace_names_the_first_diverging_gate_and_timestep(pytester, lstm_gallery):
    reports = run_suite(pytester, lstm_gallery, "impl_onnx_gate_order:run_with_trace")
    assert len(reports) == len(lstm_gallery.fixtures)
    for fixture in lstm_gallery.fixtures:
        report = reports[("impl_onnx_gate_order:run_with_trace", fixture.id)]
        assert report.failed, f"{fixture.id}: not caught ({report.outcome})"
        assert fixture.citation in report.longreprtext
        if fixture.trace:
            assert re.search(r"trace: first diverging gate is '\w+' at timestep \d+", report.longreprtext), \
                report.longreprtext
        else:  # the scale family stores no trace, and says so rather than localise nothing
            assert "trace: not compared (this fixture stores no trace)" in report.longreprtext, report.longreprtext


def test_broken_plugins_fail_only_their_own_tests(pytester, lstm_gallery):
    reports = run_suite(pytester, lstm_gallery, "numpy-reference", *BROKEN)
    ids = [f.id for f in lstm_gallery.fixtures]
    assert set(reports) == {(impl, fid) for impl in ["numpy-reference", *BROKEN] for fid in ids}
    for fid in ids:
        reference = reports[("numpy-reference", fid)]
        assert reference.passed, f"numpy-reference on {fid} was affected: {reference.longreprtext}"
    for impl, needles in BROKEN.items():
        for fixture in lstm_gallery.fixtures:
            report = reports[(impl, fixture.id)]
            assert report.failed, f"{impl} on {fixture.id}: {report.outcome}"
            message = report.longreprtext
            for needle in needles:
                assert needle in message, f"{impl} on {fixture.id}: {needle!r} not in\n{message}"
            if impl != "impl_import_error:run":   # a load failure happens before any fixture is involved
                assert fixture.citation in message, message
