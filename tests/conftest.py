"""Fixtures and hooks for the project's own tests: pytester, the built wheel, fresh virtual environments.

Helpers shared by the tests live in tests/helpers/ (paths, clean environments, plain venvs, numpy loops).

The wheel and the venv are session-scoped: building and installing take seconds,
and every install-from-wheel test can share one environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Hypothesis keeps files (its constants cache) under ./.hypothesis unless told otherwise: the project's
# own tests keep them in the user's cache folder instead, never in the working tree.
from conformance.cache import user_cache_dir  # noqa: E402  (imports no Hypothesis: the ports envs lack it)

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(user_cache_dir() / "hypothesis-tests"))

from helpers.repo import EXAMPLE_PLUGIN, REPO  # noqa: E402
from helpers.venvs import TIMINGS, Venv, clean_env, timed  # noqa: E402


@pytest.fixture(scope="session")
def conformance_wheel(tmp_path_factory) -> Path:
    """The lstm-conformance wheel, built once from this checkout with ``python -m build --wheel``."""
    out = tmp_path_factory.mktemp("wheel")
    with timed("build lstm-conformance wheel"):
        done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
                              cwd=out, env=clean_env(), capture_output=True, text=True, timeout=600)
    wheels = sorted(out.glob("lstm_conformance-*.whl"))
    assert done.returncode == 0 and len(wheels) == 1, (
        f"python -m build --wheel failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wheels[0]


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory):
    """Factory: ``make_venv(name)`` creates a fresh plain venv (its own pip, no system site-packages)."""
    def make(name: str = "venv") -> Venv:
        root = tmp_path_factory.mktemp(name)
        venv = Venv(root / "env", root / "work")
        venv.workdir.mkdir()
        with timed(f"create venv {name}"):
            subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True, env=clean_env(),
                           capture_output=True, timeout=300)
        return venv
    return make


@pytest.fixture(scope="session")
def installed_venv(make_venv, conformance_wheel) -> Venv:
    """A fresh venv with the lstm-conformance wheel and the example plug-in installed, without TensorFlow."""
    venv = make_venv("installed")
    with timed("pip install wheel + example plug-in"):
        venv.pip_install(str(conformance_wheel), str(EXAMPLE_PLUGIN))
    return venv


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("setup timings (tests/conftest.py)")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{label:40} {seconds:6.1f} s")


@pytest.fixture(scope="session")
def gen():
    """The repository's ``generate_fixtures`` module (not a package module: imported from the checkout)."""
    sys.path.insert(0, str(REPO))
    try:
        import generate_fixtures
    finally:
        sys.path.remove(str(REPO))
    return generate_fixtures


@pytest.fixture(scope="session")
def gallery():
    """The repository's committed fixtures, all of which must load."""
    from conformance.fixtures import list_fixtures
    listing = list_fixtures(REPO / "fixtures")
    assert listing.fixtures and not listing.errors, listing.errors
    return listing.fixtures


SLOW_FIXTURES = {"installed_venv", "make_venv", "conformance_wheel"}


def pytest_collection_modifyitems(items):
    """``slow``: everything in tests/integration, and any test that builds the wheel or a venv.

    ``pytest tests -m "not slow"`` is the quick loop (tests/unit and tests/meta); CI runs everything.
    """
    for item in items:
        if "integration" in item.path.parts or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
