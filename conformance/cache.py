"""The conversion cache: converted artifacts (ONNX files, OpenVINO IR, TFLite flatbuffers, compiled C)
kept in the user's cache folder, keyed on the fixture digest, the tool versions and the settings.

Converting is the slow part of a port's run; ``fixture_key`` (the fixture digest, which covers
config, weights and model file, and a hash of the arrays handed over) is in every key, so a hit
is always the same conversion.
An entry is a folder built in a private temporary folder beside the cache and renamed into
place in one step (``os.rename`` of a directory is atomic on POSIX): concurrent pytest-xdist
workers converting the same fixture both build, one rename wins, the other's copy is
discarded, and a reader never sees a half-written entry. Nothing is written into the
working tree or the gallery.

Where: ``$LSTM_CONFORMANCE_CACHE``, else ``$XDG_CACHE_HOME/lstm-conformance``, else
``~/.cache/lstm-conformance``; conversions live under ``conversions/<tool>/``. Clear it with
``lstm-conformance cache clear [TOOL]``; ``LSTM_CONFORMANCE_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

ENV_DIR = "LSTM_CONFORMANCE_CACHE"
ENV_OFF = "LSTM_CONFORMANCE_NO_CACHE"
COMPLETE = ".complete"  # written last inside an entry: a folder without it is never used


def user_cache_dir() -> Path:
    """The project's folder in the user's cache (the Hypothesis database lives here too)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstm-conformance"


def conversions_dir(tool: str | None = None) -> Path:
    root = user_cache_dir() / "conversions"
    return root / _safe(tool) if tool else root


def enabled() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("1", "true", "yes", "on")


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    if not cleaned or cleaned.startswith("."):
        raise ValueError(f"not a usable cache name: {name!r}")
    return cleaned


def key_of(parts: Mapping) -> str:
    """A stable hex key for the key parts (fixture digest, tool versions, settings)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fixture_key(fixture) -> str:
    """What a conversion of this fixture reads: its digest and the arrays actually handed over.

    The digest alone is not enough: a fixture built in memory (the fuzzer's) or a private copy whose
    arrays a test replaced (weights in another gate order) keeps its digest, and must not be served
    the conversion of the pristine fixture.
    """
    content = hashlib.sha256(str(fixture.digest).encode())
    for name, array in sorted(fixture.arrays.items()):
        content.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        content.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return f"{fixture.digest}+{content.hexdigest()[:16]}"


def entry(tool: str, parts: Mapping, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache folder for ``(tool, parts)``, built by ``build(folder)`` on a miss; ``(folder, hit)``.

    ``build`` writes its files into the empty folder it is given. If it raises, nothing is
    cached and the exception propagates (a converter crash is reported every time, never
    remembered). With the cache off, the folder is a fresh temporary one, removed at exit.
    """
    if not enabled():
        scratch = Path(tempfile.mkdtemp(prefix=f"lstm-conformance-{_safe(tool)}-"))
        _remove_at_exit(scratch)
        build(scratch)
        return scratch, False
    home = conversions_dir(tool)
    final = home / key_of(parts)
    if (final / COMPLETE).is_file():
        return final, True
    home.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=home))
    try:
        build(building)
        (building / "key.json").write_text(json.dumps(parts, sort_keys=True, indent=1, default=str))
        (building / COMPLETE).write_text("")
        if final.exists() and not (final / COMPLETE).is_file():
            shutil.rmtree(final, ignore_errors=True)  # a stale entry from an older layout
        try:
            os.rename(building, final)
        except OSError:  # another worker renamed its copy first: use theirs
            if not (final / COMPLETE).is_file():
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return final, False


def clear(tool: str | None = None) -> tuple[Path, int]:
    """Remove the cached conversions (of one tool, or all); returns the folder and how many entries went."""
    where = conversions_dir(tool)
    if not where.is_dir():
        return where, 0
    count = sum(1 for _ in where.glob("*/*" if tool is None else "*"))
    shutil.rmtree(where)
    return where, count


def summary() -> list[tuple[str, int, int]]:
    """(tool, entries, bytes) for each tool with cached conversions."""
    root = conversions_dir()
    rows = []
    for tool in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        entries = [p for p in tool.iterdir() if (p / COMPLETE).is_file()]
        size = sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())
        rows.append((tool.name, len(entries), size))
    return rows


_AT_EXIT: list[Path] = []


def _remove_at_exit(path: Path) -> None:
    import atexit
    if not _AT_EXIT:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _AT_EXIT])
    _AT_EXIT.append(path)
