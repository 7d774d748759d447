"""Build broken fixtures and hostile plug-ins from real ones, and run the suite over them.

Every corruption starts from a copy of a real gallery fixture, so a test breaks one
thing at a time: the helpers that rewrite ``fixture.yaml`` or ``arrays.npz`` can keep
the rest consistent (sha256 and digest recomputed) or leave it stale on purpose.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import yaml

import conformance
from conformance.fixtures import ARRAYS_NAME, YAML_NAME, compute_digest, gallery_dir
from conformance.writer import array_entries, npz_bytes, yaml_text

# Small real fixtures: fast to load and run. GOOD are the two that accompany a broken one.
SOURCE = "lstm-seed-question"
GOOD = ("lstm-units1", "lstm-basic")
PYTEST = [sys.executable, "-m", "pytest"]
PACKAGE_ROOT = Path(conformance.__file__).resolve().parents[1]  # the folder holding the package under test


# -- fixtures on disk ------------------------------------------------------------------------------

def copy_fixture(root: Path, source: str = SOURCE, name: str | None = None) -> Path:
    """Copy gallery fixture ``source`` to ``root/name``; with a new name, the id and digest follow it."""
    folder = Path(root) / (name or source)
    shutil.copytree(gallery_dir() / source, folder)
    if name and name != source:
        edit_meta(folder, lambda meta: meta.update(id=name))
    return folder


def copied_gallery(base: Path, fids) -> Path:
    """``base/fixtures``, holding a copy of each of the gallery's fixtures ``fids``."""
    root = base / "fixtures"
    root.mkdir()
    for fid in fids:
        copy_fixture(root, fid)
    return root


def good_fixtures(root: Path) -> list[str]:
    for fid in GOOD:
        copy_fixture(root, fid)
    return list(GOOD)


def read_meta_raw(folder: Path) -> dict:
    return yaml.safe_load((Path(folder) / YAML_NAME).read_text())


def write_meta_raw(folder: Path, meta: Mapping) -> None:
    (Path(folder) / YAML_NAME).write_text(yaml_text(meta), encoding="ascii")


def redigest(meta: dict) -> dict:
    meta["digest"] = compute_digest(meta)
    return meta


def edit_meta(folder: Path, change: Callable[[dict], object], keep_digest: bool = False) -> dict:
    """Apply ``change`` to the parsed YAML; recompute the digest unless told to leave it stale."""
    meta = read_meta_raw(folder)
    change(meta)
    if not keep_digest:
        redigest(meta)
    write_meta_raw(folder, meta)
    return meta


def read_arrays(folder: Path) -> dict[str, np.ndarray]:
    with np.load(Path(folder) / ARRAYS_NAME, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_arrays(folder: Path, arrays: Mapping[str, np.ndarray], update_yaml: bool = False) -> None:
    """Rewrite ``arrays.npz``; with ``update_yaml`` the YAML's arrays table and digest match the new data."""
    (Path(folder) / ARRAYS_NAME).write_bytes(npz_bytes(arrays))
    if update_yaml:
        edit_meta(folder, lambda meta: meta.update(arrays=array_entries(arrays)))


def edit_arrays(folder: Path, change: Callable[[dict], object], update_yaml: bool = False) -> None:
    arrays = read_arrays(folder)
    change(arrays)
    write_arrays(folder, arrays, update_yaml)


def write_members(folder: Path, members: Mapping[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    """Write ``arrays.npz`` from raw ``.npy`` member bytes (valid zip, whatever the members hold)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    (Path(folder) / ARRAYS_NAME).write_bytes(buffer.getvalue())


def raw_zip(name: str, data: bytes, declared_size: int, method: int = zipfile.ZIP_DEFLATED, crc: int = 0) -> bytes:
    """A one-member zip built by hand, so the header may declare any uncompressed size (zip bombs)."""
    encoded = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), declared_size,
                        len(encoded), 0) + encoded
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data),
                          declared_size, len(encoded), 0, 0, 0, 0, 0, 0) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def npy_members(folder: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(Path(folder) / ARRAYS_NAME) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


class CreatesFile:
    """A pickle payload: unpickling it creates ``path``. Its absence proves nothing was unpickled."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- the suite, as a user runs it ------------------------------------------------------------------

class SuiteRun:
    """One ``pytest --pyargs conformance`` run: exit status, output, and the per-case JSON records."""

    def __init__(self, returncode: int, output: str, cases: list[dict]):
        self.returncode, self.output, self.cases = returncode, output, cases

    def statuses(self, impl: str | None = None) -> dict[str, str]:
        return {c["fixture"]: c["status"] for c in self.cases if impl is None or c["impl"] == impl}

    def case(self, fixture: str, impl: str = "numpy-reference") -> dict:
        found = [c for c in self.cases if c["fixture"] == fixture and c["impl"] == impl]
        assert len(found) == 1, f"expected one case for {impl}/{fixture}, got {found}\n{self.output[-3000:]}"
        return found[0]

    def failed_line(self, test_id: str) -> str:
        """The short-summary line pytest printed for a failed test id (``-rfEs`` prints them)."""
        lines = [line for line in self.output.splitlines()
                 if line.startswith(("FAILED", "ERROR")) and f"[{test_id}]" in line]
        assert lines, f"no FAILED line for [{test_id}] in the output:\n{self.output[-3000:]}"
        return lines[0]


    def failure(self, test_id: str) -> str:
        """The full text pytest printed for ``test_conformance[test_id]`` (its FAILURES or ERRORS section)."""
        match = re.search(rf"^_+ (?:ERROR at setup of )?test_conformance\[{re.escape(test_id)}\] _+$\n(.*?)"
                          r"(?=^_{3,} |^=+ )",
                          self.output, re.M | re.S)
        assert match, f"no failure section for [{test_id}] in the output:\n{self.output[-3000:]}"
        return match.group(1)


def clean_env(pythonpath=(), **extra: str) -> dict[str, str]:
    """The environment minus what would leak this session into a child, plus ``pythonpath``.

    The child imports the ``conformance`` package this process imported (a worktree run with PYTHONPATH
    must not test another checkout's editable install).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LSTM_CONFORMANCE_", "PYTHON"))}
    env["COLUMNS"] = "1000"  # pytest shortens short-summary lines to the terminal width
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(PACKAGE_ROOT)])
    env.update(extra)
    return env


def run_suite(fixtures_dir: Path, *args: str, impls=("numpy-reference",), pythonpath=(), env=None,
              timeout: float = 120) -> SuiteRun:
    """Run the suite in a subprocess exactly as a user would, with a JSON summary to read back."""
    out = Path(fixtures_dir).parent / f"summary-{os.getpid()}-{len(os.listdir(Path(fixtures_dir).parent))}.json"
    command = [*PYTEST, "-p", "no:cacheprovider", "--pyargs", "conformance", "-rfEs",
               "--fixtures-dir", str(fixtures_dir), "--conformance-json", str(out), *args]
    for impl in impls:
        command += ["--impl", impl]
    environment = clean_env(pythonpath, **(env or {}))
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout,
                          env=environment, cwd=Path(fixtures_dir).parent)
    cases = json.loads(out.read_text())["cases"] if out.exists() else []
    return SuiteRun(done.returncode, done.stdout + done.stderr, cases)
