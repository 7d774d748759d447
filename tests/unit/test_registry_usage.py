"""How ``--impl`` values are read: a typo is one usage error, a broken plug-in stays its own cases' error.

Also ``python -m conformance``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance import ImplementationError, __version__, registry
from conformance.errors import UnknownImplementation

from helpers.venvs import clean_env


@pytest.fixture
def known(monkeypatch):
    """A registry holding a few names, ``my-port`` among them, whatever is installed."""
    names = ["my-port", "numpy-reference", "torch"]
    monkeypatch.setattr(registry, "registered",
                        lambda group=registry.ENTRY_POINT_GROUP: {} if group != registry.ENTRY_POINT_GROUP else
                        {n: registry.Implementation(n, f"{n.replace('-', '_')}:run") for n in names})
    monkeypatch.delenv(registry.ENV_IMPL, raising=False)
    return names


def test_a_typo_is_a_usage_error_with_the_closest_name(known):
    with pytest.raises(UnknownImplementation) as caught:
        registry.select(["numpy-reference", "my-prot"])
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("--impl: no implementation named 'my-prot' is registered"), message
    assert "did you mean 'my-port'?" in message, message
    assert "registered: my-port, numpy-reference, torch" in message, message


def test_no_suggestion_when_nothing_is_close(known):
    with pytest.raises(UnknownImplementation) as caught:
        registry.select(["zzz"])
    assert "did you mean" not in str(caught.value)
    assert "registered: my-port, numpy-reference, torch" in str(caught.value)


def test_a_typo_in_the_environment_names_the_variable(known, monkeypatch):
    monkeypatch.setenv(registry.ENV_IMPL, "numpy-reference, my-prot")
    with pytest.raises(UnknownImplementation, match=r"^\$LSTM_CONFORMANCE_IMPL: .*'my-prot'.*did you mean 'my-port'"):
        registry.select([])


def test_an_empty_registry_says_none(monkeypatch):
    monkeypatch.setattr(registry, "registered", lambda group=None: {})
    with pytest.raises(UnknownImplementation, match=r"registered: none; or give module:attr or cmd:COMMAND"):
        registry.select(["my-port"])


def test_registered_names_module_attr_and_cmd_are_not_usage_errors(known):
    chosen = registry.select(["my-port", "no_such_module_xyz:run", "cmd:./no-such-engine"])
    assert [i.name for i in chosen] == ["my-port", "no_such_module_xyz:run", "cmd:./no-such-engine"]


def test_a_module_attr_that_fails_to_import_errors_at_load_with_its_traceback(known):
    (impl,) = registry.select(["no_such_module_xyz:run"])
    with pytest.raises(ImplementationError) as caught:
        impl.load()
    assert "Traceback" in str(caught.value) and "No module named 'no_such_module_xyz'" in str(caught.value)


def test_a_missing_cmd_engine_errors_at_load_without_our_traceback(known):
    """Our traceback says nothing about a command that is not there; the message says it all."""
    (impl,) = registry.select(["cmd:./no-such-engine --flag"])
    with pytest.raises(ImplementationError) as caught:
        impl.load()
    message = str(caught.value)
    assert "'./no-such-engine' is not an executable file or on PATH" in message, message
    assert "Traceback" not in message, message


def test_approximate_ports_run_only_when_named(monkeypatch):
    """The installed entry points (this checkout's pyproject.toml): the approximate ports are registered on
    request, so the default run leaves them out and naming one selects it."""
    monkeypatch.delenv(registry.ENV_IMPL, raising=False)
    on_request = set(registry.registered(registry.ON_REQUEST_GROUP))
    assert {"tflite-int8", "tflite-dynamic-range", "hls4ml"} <= on_request
    default = {impl.name for impl in registry.select()}
    assert "numpy-reference" in default and not default & on_request
    assert [impl.name for impl in registry.select(["tflite-int8"])] == ["tflite-int8"]
    monkeypatch.setenv(registry.ENV_IMPL, "hls4ml,numpy-reference")
    assert [impl.name for impl in registry.select()] == ["hls4ml", "numpy-reference"]


def test_python_dash_m_conformance_runs_the_cli(tmp_path):
    """The package runs as ``python -m conformance``, same as the ``lstm-conformance`` script."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=120)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"lstm-conformance {__version__}", version
    unknown = run("show", "no-such-fixture-xyz")  # main() returns 2: the exit status gets through
    assert unknown.returncode == 2 and "no-such-fixture-xyz" in unknown.stderr, unknown
