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

An entry is trusted only as far as its manifest (``.complete``, written last: every file's
path, size and sha256, and the entry's key) vouches for it, checked on every use: a file
truncated, deleted, added or swapped in from another conversion, or a whole entry copied under
another key, is removed and converted again with a ``CacheWarning`` naming the entry and what
was wrong, so a damaged cache never turns into a verdict. Building folders left by a killed
process (``.building-<host>-<pid>-*``) are swept by the next ``entry`` for that tool.

Where: ``$LSTM_CONFORMANCE_CACHE``, else ``$XDG_CACHE_HOME/lstm-conformance``, else
``~/.cache/lstm-conformance``; conversions live under ``conversions/<tool>/``. Clear it with
``lstm-conformance cache clear [TOOL]``; ``LSTM_CONFORMANCE_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

ENV_DIR = "LSTM_CONFORMANCE_CACHE"
ENV_OFF = "LSTM_CONFORMANCE_NO_CACHE"
COMPLETE = ".complete"  # the manifest, written last inside an entry: a folder without a valid one is never used
MANIFEST_FORMAT = 1
MAX_MANIFEST_BYTES = 1 << 20
BUILDING = ".building-"  # + host-pid-random: an entry being built (or left by a killed process)
DAMAGED = ".damaged-"    # + host-pid-random: a damaged entry moved aside, being removed
LOCK = ".lock"           # held while a damaged entry is checked again and moved aside
STALE_AFTER_S = 3600     # a leftover whose process cannot be asked (another host, an older name) is swept after this
REUSED_PID_S = 86400     # ...and one whose pid is alive on this host after this (a reused pid: no build lasts a day)


_LOOKUPS: list[tuple[str, bool, float]] = []  # (tool, hit, seconds building) since the last take_lookups()


def take_lookups() -> list[tuple[str, bool, float]]:
    """The lookups ``entry`` made in this process since the last call, oldest first (for ``progress``)."""
    taken = _LOOKUPS[:]
    del _LOOKUPS[:]
    return taken


class CacheWarning(UserWarning):
    """A cache entry was damaged (or not this key's) and was removed; the conversion is run again."""


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
    A hit is an entry whose files all match its manifest; a damaged one is removed (with a
    ``CacheWarning``) and built again.
    """
    started = time.perf_counter()
    folder, hit = _entry(tool, parts, build)
    _LOOKUPS.append((str(tool), hit, 0.0 if hit else time.perf_counter() - started))
    return folder, hit


def _entry(tool: str, parts: Mapping, build: Callable[[Path], None]) -> tuple[Path, bool]:
    if not enabled():
        scratch = Path(tempfile.mkdtemp(prefix=f"lstm-conformance-{_safe(tool)}-"))
        _remove_at_exit(scratch)
        build(scratch)
        return scratch, False
    home = conversions_dir(tool)
    key = key_of(parts)
    final = home / key
    sweep(home)
    if os.path.lexists(final):
        problem = damage(final, tool, key)
        if problem is None:
            return final, True
        if not _discard(home, final, tool, key, problem):
            return final, True  # another process repaired it while we waited for the lock
    home.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{BUILDING}{_host()}-{os.getpid()}-", dir=home))
    try:
        build(building)
        (building / "key.json").write_text(json.dumps(parts, sort_keys=True, indent=1, default=str))
        write_manifest(building, tool, key)
        for attempt in (1, 2):
            try:
                os.rename(building, final)
                break
            except OSError:  # another worker renamed its copy first: use theirs, if it is sound
                if not os.path.lexists(final):
                    raise
                problem = damage(final, tool, key)
                if problem is None:
                    break
                if attempt == 2:
                    raise
                if not _discard(home, final, tool, key, problem):
                    break  # sound after all, checked again under the lock
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return final, False


# -- the manifest ---------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> dict[str, os.stat_result]:
    """Every file under ``folder`` but the manifest, by ``/``-separated relative path; links and
    other non-plain files raise ValueError (an entry holds plain files only)."""
    found = {}
    for where, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            path = Path(where) / name
            info = path.lstat()
            relative = path.relative_to(folder).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise ValueError(f"{relative} is a link")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{relative} is not a plain file")
            if relative != COMPLETE:
                found[relative] = info
    return found


def write_manifest(folder: Path, tool: str, key: str) -> None:
    """Write ``.complete``: the key and tool it belongs to, and every file's size and sha256."""
    files = {relative: {"size": info.st_size, "sha256": _sha256(folder / relative)}
             for relative, info in sorted(_files(folder).items())}
    manifest = {"format": MANIFEST_FORMAT, "tool": tool, "key": key, "files": files}
    (folder / COMPLETE).write_text(json.dumps(manifest, sort_keys=True, indent=1))


def damage(folder: Path, tool: str, key: str) -> str | None:
    """What is wrong with the entry ``folder`` for ``(tool, key)``, or None when every file matches its manifest.

    Sizes are compared before any file is hashed, so a truncated file costs no read.
    """
    try:
        if folder.is_symlink() or not folder.is_dir():
            return "it is not a plain folder"
        marker = folder / COMPLETE
        if marker.is_symlink() or not marker.is_file():
            return f"it has no manifest ({COMPLETE})"
        if marker.stat().st_size > MAX_MANIFEST_BYTES:
            return f"its manifest ({COMPLETE}) is over {MAX_MANIFEST_BYTES} bytes"
        text = marker.read_bytes()
        if not text.strip():
            return f"its manifest ({COMPLETE}) is empty (an entry from an older lstm-conformance?)"
        try:
            manifest = json.loads(text.decode("utf-8"))
            listed = manifest["files"]
            ok = (manifest["format"] == MANIFEST_FORMAT and isinstance(listed, dict)
                  and all(isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                          for v in listed.values()))
        except (ValueError, KeyError, TypeError) as exc:
            return f"its manifest ({COMPLETE}) is unreadable: {type(exc).__name__}: {exc}"
        if not ok:
            return f"its manifest ({COMPLETE}) is not a format-{MANIFEST_FORMAT} manifest"
        if manifest.get("key") != key or manifest.get("tool") != tool:
            return (f"its manifest belongs to the {manifest.get('tool')!r} entry {manifest.get('key')!r}, not this one "
                    "(copied from another conversion?)")
        try:
            found = _files(folder)
        except ValueError as exc:
            return str(exc)
        missing, extra = sorted(set(listed) - set(found)), sorted(set(found) - set(listed))
        if missing:
            return f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        if extra:
            return f"{extra[0]} is not in its manifest" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        for relative in sorted(listed):
            if found[relative].st_size != listed[relative]["size"]:
                return f"{relative} is {found[relative].st_size} bytes, the manifest says {listed[relative]['size']}"
        for relative in sorted(listed):
            if _sha256(folder / relative) != listed[relative]["sha256"]:
                return f"{relative} does not match its sha256 in the manifest"
    except OSError as exc:
        return f"it cannot be read: {exc}"
    return None


def _discard(home: Path, final: Path, tool: str, key: str, problem: str) -> bool:
    """Move a damaged entry aside and remove it, warning once; False if, checked again under the
    tool's lock, it is sound after all (another process rebuilt it meanwhile)."""
    with _locked(home):
        if not os.path.lexists(final):
            return True  # another process removed it: build
        problem = damage(final, tool, key)
        if problem is None:
            return False
        aside = Path(tempfile.mkdtemp(prefix=f"{DAMAGED}{_host()}-{os.getpid()}-", dir=home))
        with contextlib.suppress(FileNotFoundError):  # a `cache clear` beside us
            os.rename(final, aside / key)
    shutil.rmtree(aside, ignore_errors=True)
    warnings.warn(CacheWarning(f"conversion cache: the {tool} entry {final} was damaged ({problem}); "
                               "removed it, converting again"), stacklevel=3)
    return True


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """An exclusive lock on the tool's folder (``flock``; where there is none, no lock: the rename still decides)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- leftovers of killed processes ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Leftover:
    """A ``.building-*`` or ``.damaged-*`` folder; ``stale`` when its process is gone (or it is old)."""
    tool: str
    path: Path
    size: int
    stale: bool


def _host() -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return False
    return True


def _stale(path: Path, now: float) -> bool:
    """Left by a process on this host whose pid is dead (or alive for over a day: reused), or, where the
    process cannot be asked (another host, a name without a pid), older than ``STALE_AFTER_S``."""
    try:
        age = now - path.lstat().st_mtime
    except OSError:
        return False
    prefix = BUILDING if path.name.startswith(BUILDING) else DAMAGED
    host, pid, _random = (path.name[len(prefix):].rsplit("-", 2) + ["", "", ""])[:3]
    if host == _host() and pid.isdigit():
        return not _alive(int(pid)) or age > REUSED_PID_S
    return age > STALE_AFTER_S


def _size(path: Path) -> int:
    total = 0
    for where, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += (Path(where) / name).lstat().st_size
    return total


def leftovers(tool: str | None = None) -> list[Leftover]:
    """The building and moved-aside folders in the cache (of one tool, or all), live or stale."""
    root = conversions_dir()
    if tool:
        homes = [conversions_dir(tool)]
    else:
        homes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    now, found = time.time(), []
    for home in homes:
        with contextlib.suppress(OSError):
            for item in sorted(os.scandir(home), key=lambda e: e.name):
                if item.name.startswith((BUILDING, DAMAGED)) and item.is_dir(follow_symlinks=False):
                    path = Path(item.path)
                    found.append(Leftover(home.name, path, _size(path), _stale(path, now)))
    return found


def sweep(home: Path) -> int:
    """Remove the stale leftovers in one tool's folder (a live builder's folder is kept); how many went."""
    if not home.is_dir():
        return 0
    now, swept = time.time(), 0
    with contextlib.suppress(OSError):
        for item in os.scandir(home):
            if item.name.startswith((BUILDING, DAMAGED)) and _stale(Path(item.path), now):
                shutil.rmtree(item.path, ignore_errors=True)
                swept += 1
    return swept


# -- info and clear ---------------------------------------------------------------------------------

def clear(tool: str | None = None) -> tuple[Path, int]:
    """Remove the cached conversions (of one tool, or all); returns the folder and how many entries went."""
    where = conversions_dir(tool)
    if not where.is_dir():
        return where, 0
    homes = [where] if tool else [p for p in where.iterdir() if p.is_dir()]
    count = sum(1 for home in homes for p in home.iterdir() if not p.name.startswith("."))
    shutil.rmtree(where)
    return where, count


def summary() -> list[tuple[str, int, int]]:
    """(tool, entries, bytes) for each tool with cached conversions (entries with a manifest; not verified here)."""
    root = conversions_dir()
    rows = []
    for tool in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        entries = [p for p in tool.iterdir() if not p.name.startswith(".") and (p / COMPLETE).is_file()]
        size = sum(f.stat().st_size for p in entries for f in p.rglob("*") if f.is_file())
        rows.append((tool.name, len(entries), size))
    return rows


_AT_EXIT: list[Path] = []


def _remove_at_exit(path: Path) -> None:
    import atexit
    if not _AT_EXIT:
        atexit.register(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _AT_EXIT])
    _AT_EXIT.append(path)
