"""Child processes that cannot see this session's Python: a clean environment, plain venvs, setup timings."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

TIMINGS: dict[str, float] = {}   # label -> seconds, printed by tests/conftest.py's terminal summary

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
