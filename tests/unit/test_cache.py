"""The conversion cache: user cache folder, atomic entries shared by concurrent processes, failures not kept."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import cache

from helpers.repo import REPO


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_OFF, raising=False)
    return tmp_path / "cache"


def test_the_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.conversions_dir("tf2onnx") == tmp_path / "xdg" / "lstm-conformance" / "conversions" / "tf2onnx"
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "mine"))
    assert cache.user_cache_dir() == tmp_path / "mine"


def test_a_hit_returns_what_the_miss_built(cache_home):
    builds = []

    def build(folder: Path):
        builds.append(folder)
        (folder / "model.onnx").write_bytes(b"converted")

    parts = {"fixture": "sha256:ab", "tool": "1.0"}
    first, hit = cache.entry("tool", parts, build)
    second, hit_again = cache.entry("tool", parts, build)
    assert (hit, hit_again) == (False, True)
    assert first == second and len(builds) == 1
    assert (second / "model.onnx").read_bytes() == b"converted"
    assert json.loads((second / "key.json").read_text()) == parts
    other, hit = cache.entry("tool", {**parts, "tool": "1.1"}, build)  # another version: another entry
    assert other != first and not hit
    assert cache.summary() == [("tool", 2, sum(f.stat().st_size for p in (first, other) for f in p.rglob("*")
                                                if f.is_file()))]
    assert cache.clear("tool") == (cache_home / "conversions" / "tool", 2)
    assert cache.summary() == []


def test_a_failed_build_is_not_remembered(cache_home):
    def broken(folder: Path):
        (folder / "half.onnx").write_bytes(b"half")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        cache.entry("tool", {"k": 1}, broken)
    home = cache_home / "conversions" / "tool"
    assert list(home.iterdir()) == []  # no entry, no leftover building folder
    folder, hit = cache.entry("tool", {"k": 1}, lambda f: (f / "ok").write_text("ok"))
    assert not hit and (folder / "ok").read_text() == "ok"


def _racer(home: str, start: float, out: str) -> None:
    os.environ[cache.ENV_DIR] = home
    while time.time() < start:
        time.sleep(0.001)

    def build(folder: Path):
        (folder / "who").write_text(str(os.getpid()))
        time.sleep(0.2)  # both processes are inside build at once

    folder, hit = cache.entry("tool", {"fixture": "same"}, build)
    Path(out).write_text(json.dumps([str(folder), (folder / "who").read_text(), hit]))


def test_concurrent_processes_share_one_complete_entry(cache_home, tmp_path):
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"out{k}.json" for k in range(2)]
    procs = [context.Process(target=_racer, args=(str(cache_home), start, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    seen = [json.loads(o.read_text()) for o in outs]
    assert seen[0][0] == seen[1][0]           # one entry
    assert seen[0][1] == seen[1][1]           # both read the same complete files (the rename that won)
    entries = list((cache_home / "conversions" / "tool").iterdir())
    assert len(entries) == 1 and (entries[0] / cache.COMPLETE).is_file()


def test_off_switch_builds_in_a_scratch_folder_every_time(cache_home, monkeypatch):
    monkeypatch.setenv(cache.ENV_OFF, "1")
    calls = []
    for _ in range(2):
        folder, hit = cache.entry("tool", {"k": 1}, lambda f: calls.append(f))
        assert not hit
    assert len(calls) == 2 and not (cache_home / "conversions").exists()


def test_the_cli_shows_and_clears_it(cache_home):
    cache.entry("tf2onnx", {"k": 1}, lambda f: (f / "m.onnx").write_bytes(b"x" * 1000))
    env = {**os.environ, cache.ENV_DIR: str(cache_home)}
    shown = subprocess.run([sys.executable, "-m", "conformance", "cache", "info"], capture_output=True, text=True,
                           env=env, cwd=REPO)
    assert shown.returncode == 0 and "tf2onnx" in shown.stdout and "1 entries" in shown.stdout
    cleared = subprocess.run([sys.executable, "-m", "conformance", "cache", "clear"], capture_output=True, text=True,
                             env=env, cwd=REPO)
    assert cleared.returncode == 0 and "removed 1 cached conversion " in cleared.stdout


def test_the_key_sees_arrays_replaced_under_the_same_digest():
    """A private copy whose weights were rearranged keeps its digest but must not share a conversion."""
    from types import MappingProxyType

    import numpy as np

    from conformance import gallery_dir, list_fixtures

    fixture = next(f for f in list_fixtures(gallery_dir()).fixtures if f.id == "lstm-basic")
    twin = fixture.isolated()
    assert cache.fixture_key(twin) == cache.fixture_key(fixture)
    arrays = dict(twin.arrays)
    arrays["kernel"] = np.ascontiguousarray(arrays["kernel"][:, ::-1])
    twin._arrays = MappingProxyType(arrays)
    assert twin.digest == fixture.digest and cache.fixture_key(twin) != cache.fixture_key(fixture)


def test_the_manifest_lists_every_file_and_the_key(cache_home):
    """``.complete`` is written last and binds the files (size, sha256) to the entry's key and tool."""
    import hashlib

    def build(folder: Path):
        (folder / "model.onnx").write_bytes(b"m" * 3000)
        (folder / "ir").mkdir()
        (folder / "ir" / "model.bin").write_bytes(bytes(range(256)))

    parts = {"fixture": "sha256:cd"}
    folder, _ = cache.entry("tool", parts, build)
    manifest = json.loads((folder / cache.COMPLETE).read_text())
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file() and p.name != cache.COMPLETE}
    assert sorted(files) == ["ir/model.bin", "key.json", "model.onnx"]
    assert manifest["files"] == {name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                                 for name, p in files.items()}
    assert (manifest["key"], manifest["tool"]) == (folder.name, "tool") == (cache.key_of(parts), "tool")
    assert cache.damage(folder, "tool", folder.name) is None


def test_a_live_builders_folder_is_kept(cache_home, tmp_path):
    """Sweeping never takes the folder of a conversion still running (its pid is alive)."""
    from hostile_cache import start_builder

    proc, building = start_builder(cache_home, tmp_path, "live")
    try:
        cache.entry("tool", {"fixture": "other"}, lambda f: (f / "m").write_text("m"))
        assert building.is_dir() and (building / "half.onnx").exists()
        assert [(item.path, item.stale) for item in cache.leftovers()] == [(building, False)]
        shown = subprocess.run([sys.executable, "-m", "conformance", "cache", "info"], capture_output=True, text=True,
                               env={**os.environ, cache.ENV_DIR: str(cache_home)}, cwd=REPO)
        assert f"{building} in use" in shown.stdout and "0 left by a killed process" in shown.stdout
    finally:
        proc.kill()
        proc.wait(30)
    cache.entry("tool", {"fixture": "other"}, lambda f: (f / "m").write_text("m"))
    assert not building.exists()


def test_a_leftover_without_a_pid_is_swept_only_when_old(cache_home):
    """An older suite's ``.building-XXXX`` (no host or pid in the name) goes once it is older than STALE_AFTER_S."""
    home = cache_home / "conversions" / "tool"
    fresh, old = home / ".building-abc123", home / ".building-def456"
    for folder in (fresh, old):
        folder.mkdir(parents=True)
        (folder / "half").write_text("x")
    past = time.time() - cache.STALE_AFTER_S - 60
    os.utime(old, (past, past))
    cache.entry("tool", {"k": 1}, lambda f: (f / "m").write_text("m"))
    assert fresh.exists() and not old.exists()


def _repairer(home: str, start: float, out: str) -> None:
    import warnings
    os.environ[cache.ENV_DIR] = home
    while time.time() < start:
        time.sleep(0.001)

    def build(folder: Path):
        (folder / "who").write_text(str(os.getpid()))
        time.sleep(0.2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder, _ = cache.entry("tool", {"fixture": "same"}, build)
    said = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
    Path(out).write_text(json.dumps([(folder / "who").read_text(), said]))


def test_two_processes_meeting_one_damaged_entry_warn_once_and_share_the_rebuilt_one(cache_home, tmp_path):
    folder, _ = cache.entry("tool", {"fixture": "same"}, lambda f: (f / "who").write_text("first"))
    (folder / "who").write_text("tampered")
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"out{k}.json" for k in range(2)]
    procs = [context.Process(target=_repairer, args=(str(cache_home), start, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    seen = [json.loads(o.read_text()) for o in outs]
    assert seen[0][0] == seen[1][0] != "tampered"   # both read the same rebuilt entry
    said = seen[0][1] + seen[1][1]
    assert len(said) == 1 and "who is 8 bytes, the manifest says 5" in said[0]
    assert cache.damage(folder, "tool", folder.name) is None
    assert [p.name for p in (cache_home / "conversions" / "tool").iterdir() if not p.name.startswith(".lock")] \
        == [folder.name]
