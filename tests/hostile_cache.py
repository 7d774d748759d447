"""Builders for the conversion-cache tests: a real process caught in the middle of ``cache.entry``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conformance import cache

from helpers.repo import REPO

BUILDER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from conformance import cache

    def build(folder):
        (folder / "half.onnx").write_bytes(b"x" * 5000)
        Path(sys.argv[1]).write_text(str(folder))
        time.sleep(600)

    cache.entry("tool", {"fixture": sys.argv[2]}, build)
''')


def start_builder(cache_home: Path, tmp_path: Path, key: str = "killed") -> tuple[subprocess.Popen, Path]:
    """A process inside ``build`` for tool ``tool`` (it sleeps there); returns it and its building folder."""
    ready = tmp_path / f"ready-{key}"
    env = {**os.environ, cache.ENV_DIR: str(cache_home), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(ready), key], env=env, cwd=tmp_path)
    while not ready.exists():
        assert proc.poll() is None, "the builder died before building"
        time.sleep(0.05)
    return proc, Path(ready.read_text())
