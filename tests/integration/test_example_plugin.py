"""The example third-party plug-in, pip-installed with the wheel into a fresh venv without TensorFlow.

This is the port author's path end to end: a real entry point in a real
distribution, discovered by the installed suite, not a patched registry.
"""

from __future__ import annotations

import json
import re

from conformance.fixtures import list_fixtures

from helpers.repo import REPO
from helpers.venvs import clean_env

PLUGIN = "numpy-lstm-port"


def gallery() -> dict[str, str]:
    """Fixture id -> layer for the repository's gallery (what the wheel ships); Keras 2's time-major layout,
    which the example refuses, as ``LSTM time_major``."""
    listing = list_fixtures(REPO / "fixtures")
    assert not listing.errors, f"the repository gallery has broken fixtures: {listing.errors}"
    return {f.id: f.layer + (" time_major" if f.config.get("time_major") else "") for f in listing.fixtures}


def lstm_ids() -> set[str]:
    """The example implements LSTM only (batch-major); other layers must be skipped with its reason."""
    ids = {fid for fid, layer in gallery().items() if layer == "LSTM"}
    assert ids, "the gallery has no LSTM fixtures"
    return ids


def pytest_in(venv, *args):
    done = venv.run("-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "conformance", *args,
                    env=clean_env(venv))
    return done.returncode, done.stdout + done.stderr


def test_no_tensorflow_or_keras_in_the_venv(installed_venv):
    probe = ("import importlib.util, json; "
             "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ('tensorflow', 'keras')}))")
    done = installed_venv.run("-c", probe)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tensorflow": False, "keras": False}


def test_entry_point_is_discovered(installed_venv):
    rc, output = pytest_in(installed_venv, "--list-impls")
    assert rc == 0, output
    listed = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    assert PLUGIN in listed, f"--list-impls does not list {PLUGIN}:\n{output}"
    assert "numpy_lstm_port:run" in listed[PLUGIN] and "[numpy-lstm-port]" in listed[PLUGIN], listed[PLUGIN]


def test_example_plugin_passes_every_fixture(installed_venv):
    rc, output = pytest_in(installed_venv, "--impl", PLUGIN, "-q")
    assert rc == 0, output[-4000:]
    passed, others = len(lstm_ids()), len(gallery()) - len(lstm_ids())
    expected = f"{passed} passed" + (f", {others} skipped" if others else "")
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(rf"{expected} in [\d.]+s", summary), (
        f"expected {expected} over the {len(gallery())} gallery fixtures, got: {summary}\n{output[-4000:]}")


def test_default_runs_every_registered_impl_and_keras_skips(installed_venv, tmp_path):
    """No --impl: keras is skipped because Keras is absent (never passes); both numpy ones pass."""
    report = tmp_path / "report.json"
    rc, output = pytest_in(installed_venv, "-q", "-rs", "--conformance-json", str(report))
    assert rc == 0, output[-4000:]
    cases = json.loads(report.read_text())["cases"]
    n, lstm = len(gallery()), lstm_ids()
    by_impl: dict[str, dict[str, dict]] = {}
    for case in cases:
        by_impl.setdefault(case["impl"], {})[case["fixture"]] = case
    assert {"keras", "numpy-reference", PLUGIN} <= set(by_impl), sorted(by_impl)
    for name in ("numpy-reference", PLUGIN):
        assert set(by_impl[name]) == set(gallery()), f"{name} did not run over the whole gallery"
        statuses = {fid: c["status"] for fid, c in by_impl[name].items()}
        assert {fid: statuses[fid] for fid in lstm} == dict.fromkeys(lstm, "passed"), f"{name}: {statuses}"
        assert not {"failed", "error"} & set(statuses.values()), f"{name}: {statuses}"
    keras = list(by_impl["keras"].values())
    assert len(keras) == n and all(c["status"] == "skipped" for c in keras), [c["status"] for c in keras]
    # installed from a wheel, the package is not on PyPI: the hint names the [keras] extra's own pins
    hint = 'needs keras, which is not installed: pip install "keras==3.15.1" "tensorflow-cpu==2.21.0"'
    assert all(hint in c["message"] for c in keras), keras[0]["message"]
    assert re.search(rf"SKIPPED \[{n}\] .*{re.escape(hint)}", output), output[-4000:]
