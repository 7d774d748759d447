"""Shared helpers for the project's own tests: pytester, the built wheel, fresh virtual environments.

The wheel and the venv are session-scoped: building and installing take seconds,
and every install-from-wheel test can share one environment.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Hypothesis keeps files (its constants cache) under ./.hypothesis unless told otherwise: the project's
# own tests keep them in the user's cache folder instead, never in the working tree.
from conformance.cache import user_cache_dir  # noqa: E402  (imports no Hypothesis: the ports envs lack it)

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(user_cache_dir() / "hypothesis-tests"))

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = REPO / "examples" / "numpy-lstm-port"
TIMINGS: dict[str, float] = {}   # label -> seconds, printed in the terminal summary

# Variables that would let the outer session leak into a child process.
_LEAKY_PREFIXES = ("PYTEST_", "LSTM_CONFORMANCE_", "PYTHON", "VIRTUAL_ENV", "COV_CORE_")


def clean_env(venv: "Venv | None" = None, **extra: str) -> dict[str, str]:
    """os.environ minus anything that points a child at this session's Python, with ``venv`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv.path)
        env["PATH"] = os.pathsep.join([str(venv.bin), env.get("PATH", "")])
    env.update(extra)
    return env


@dataclasses.dataclass
class Venv:
    """A plain ``python -m venv`` environment (no system site-packages) and a way to run its Python."""
    path: Path
    workdir: Path   # a cwd outside the repository, so nothing is imported from the checkout

    @property
    def bin(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def run(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """``python *args`` in this venv, from ``workdir``, with a clean environment; output captured as text."""
        return subprocess.run([str(self.python), *args], cwd=self.workdir, env=env or clean_env(self),
                              capture_output=True, text=True, timeout=timeout)

    def pip_install(self, *specs: str) -> None:
        done = self.run("-m", "pip", "install", "--quiet", "--disable-pip-version-check", *specs, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(specs)} failed in {self.path} "
                               f"(exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def timed(label: str):
    """Context manager recording how long a setup step took, for the terminal summary."""
    class _Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            TIMINGS[label] = time.perf_counter() - self.start
    return _Timer()


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
