"""A hostile or damaged conversion cache: an entry is used only when every file matches its manifest.

The entries are real: built by ``cache.entry`` with a build function that writes files, and by the
real ``tflite`` adapter converting a gallery fixture (TensorFlow's converter, in a temporary cache
named by ``LSTM_CONFORMANCE_CACHE``). Each case damages an entry the way a copy, a full disk or a
kill does, and checks that the entry is rebuilt with a warning naming it and that the verdict is
the real one: a port that fails on a fixture stays failing when another fixture's conversion is
copied into its entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from conformance import cache

from helpers.repo import REPO
from hostile_cache import start_builder

TOOL = "tool"


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_OFF, raising=False)
    return tmp_path / "cache"


class Converter:
    """A build function that writes what a converter writes (a model and its details), derived from the key parts."""

    def __init__(self):
        self.builds = 0

    @staticmethod
    def files(parts) -> dict[str, bytes]:
        seed = int.from_bytes(cache.key_of(parts).encode()[:4], "little")
        model = np.random.default_rng(seed).standard_normal(4096).astype(np.float32).tobytes()
        return {"model.bin": model, "details.json": json.dumps({"made_for": parts}).encode(),
                "sub/weights.bin": model[::-1]}

    def __call__(self, parts):
        def build(folder: Path):
            self.builds += 1
            for name, data in self.files(parts).items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
        return build


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name not in (cache.COMPLETE, "key.json")}


A, B = {"fixture": "sha256:aa", "tool": "1.0"}, {"fixture": "sha256:bb", "tool": "1.0"}


def built(converter: Converter, *parts) -> list[Path]:
    return [cache.entry(TOOL, p, converter(p))[0] for p in parts]


def cache_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]


def rebuilt_with_warning(converter: Converter, parts, reason: str) -> Path:
    """Use the entry for ``parts``: it must hold the real files, be rebuilt (one more build) and warned about once."""
    before = converter.builds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder, hit = cache.entry(TOOL, parts, converter(parts))
    assert contents(folder) == Converter.files(parts)
    assert not hit and converter.builds == before + 1
    said = cache_warnings(caught)
    assert len(said) == 1 and re.search(reason, said[0]) and cache.key_of(parts) in said[0], said
    again, hit = cache.entry(TOOL, parts, converter(parts))  # sound now: a hit, no warning, no build
    assert hit and again == folder and converter.builds == before + 1
    return folder


@pytest.mark.parametrize("damage, reason", [
    (lambda f: (f / "model.bin").write_bytes((f / "model.bin").read_bytes()[:1000]), r"model\.bin is 1000 bytes"),
    (lambda f: (f / "sub" / "weights.bin").unlink(), r"sub/weights\.bin is missing"),
    (lambda f: (f / "stray.onnx").write_bytes(b"x"), r"stray\.onnx is not in its manifest"),
    (lambda f: (f / "model.bin").write_bytes(bytes(len((f / "model.bin").read_bytes()))), r"model\.bin does not match"),
    (lambda f: (f / cache.COMPLETE).unlink(), r"no manifest"),
], ids=["truncated", "deleted", "extra-file", "same-size-other-bytes", "no-manifest"])
def test_a_damaged_entry_is_rebuilt_and_named(cache_home, damage, reason):
    converter = Converter()
    folder, = built(converter, A)
    damage(folder)
    rebuilt_with_warning(converter, A, reason)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'["a list"]', b'{"format": 1, "files": {"m": 3}}',
                                     b"\xff\xfe\x00"], ids=["empty", "broken-json", "list", "bad-files", "binary"])
def test_a_garbage_manifest_is_rebuilt(cache_home, garbage):
    converter = Converter()
    folder, = built(converter, A)
    (folder / cache.COMPLETE).write_bytes(garbage)
    rebuilt_with_warning(converter, A, r"manifest|cannot be read")


def test_files_swapped_in_from_another_entry_are_caught(cache_home):
    converter = Converter()
    a, b = built(converter, A, B)
    for name in ("model.bin", "details.json", "sub/weights.bin"):  # same sizes: only the hashes tell them apart
        shutil.copyfile(a / name, b / name)
    assert contents(b) == Converter.files(A)
    rebuilt_with_warning(converter, B, r"does not match its sha256")


def test_an_entry_copied_under_another_key_is_caught(cache_home):
    """The whole folder of A (manifest included, every hash right) under B's name: its manifest names A's key."""
    converter = Converter()
    a, b = built(converter, A, B)
    shutil.rmtree(b)
    shutil.copytree(a, b)
    rebuilt_with_warning(converter, B, rf"belongs to the 'tool' entry '{a.name}'.*copied from another conversion")


def test_a_link_in_an_entry_is_caught(cache_home, tmp_path):
    converter = Converter()
    folder, = built(converter, A)
    outside = tmp_path / "outside.bin"
    outside.write_bytes((folder / "model.bin").read_bytes())
    (folder / "model.bin").unlink()
    (folder / "model.bin").symlink_to(outside)
    rebuilt_with_warning(converter, A, r"model\.bin is a link")
    assert outside.exists()  # the link's target is not touched


# -- a builder killed mid-conversion --------------------------------------------------------------

def test_a_killed_builders_folder_is_shown_then_swept(cache_home, tmp_path):
    proc, building = start_builder(cache_home, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert building.name.startswith(".building-") and (building / "half.onnx").exists()
    env = {**os.environ, cache.ENV_DIR: str(cache_home)}
    shown = subprocess.run([sys.executable, "-m", "conformance", "cache", "info"], capture_output=True, text=True,
                           env=env, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert "1 building folder (0.0 MB), 1 left by a killed process" in shown.stdout and str(building) in shown.stdout
    converter = Converter()
    cache.entry(TOOL, A, converter(A))  # the next conversion for that tool sweeps it
    assert not building.exists()
    assert cache.leftovers() == []
    assert sorted(p.name for p in (cache_home / "conversions" / TOOL).iterdir()
                  if not p.name.startswith(".lock")) == [cache.key_of(A)]


# -- the real tflite adapter: a failing port stays failing -------------------------------------------

@pytest.fixture(scope="module")
def tflite_cache(tmp_path_factory):
    """A cache holding the real tflite conversions of lstm-basic and of a twin whose kernel columns are
    reversed (the gate-order mistake): the port passes the first and fails the second."""
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (extra 'keras' of lstm-conformance)")
    from conformance import gallery_dir, list_fixtures, registry
    from conformance.suite import Case, judge
    from conformance.verdict import Status

    fixture = next(f for f in list_fixtures(gallery_dir()).fixtures if f.id == "lstm-basic")
    twin = fixture.isolated()
    arrays = dict(twin.arrays)
    arrays["kernel"] = np.ascontiguousarray(arrays["kernel"][:, ::-1])
    twin._arrays = MappingProxyType(arrays)
    impl = registry.registered()["tflite"]
    home = tmp_path_factory.mktemp("tflite-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(cache.ENV_DIR, str(home))
        patch.delenv(cache.ENV_OFF, raising=False)
        verdicts = [judge(Case(impl, f)).status for f in (fixture, twin)]
    assert verdicts == [Status.PASSED, Status.FAILED]  # the real verdicts, converted from scratch
    return home, impl, fixture, twin


def tflite_entries(fixture) -> dict[str, Path]:
    """The fixture's tflite entries, by their key parts without the fixture (which model: configured, states)."""
    found = {}
    for folder in cache.conversions_dir("tflite").iterdir():
        if not folder.name.startswith("."):
            parts = json.loads((folder / "key.json").read_text())
            if parts.pop("fixture") == cache.fixture_key(fixture):
                found[json.dumps(parts, sort_keys=True)] = folder
    return found


@pytest.fixture
def tflite_run(tflite_cache, tmp_path, monkeypatch):
    home, impl, fixture, twin = tflite_cache
    shutil.copytree(home, tmp_path / "cache")
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_OFF, raising=False)
    from conformance.suite import Case, judge

    def verdict(which):
        """The verdict, and the cache's warnings while reaching it."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = judge(Case(impl, which)).status
        return status, cache_warnings(caught)
    return fixture, twin, verdict


def test_another_fixtures_converted_files_do_not_pass_a_failing_port(tflite_run):
    from conformance.verdict import Status
    fixture, twin, verdict = tflite_run
    good, bad = tflite_entries(fixture), tflite_entries(twin)
    assert good.keys() == bad.keys() and good
    for which, folder in bad.items():  # the twin's entries now hold lstm-basic's conversion, manifest kept
        for name in ("model.tflite", "details.json"):
            shutil.copyfile(good[which] / name, folder / name)
    status, said = verdict(twin)
    assert status == Status.FAILED
    assert len(said) == len(bad) and all(re.search(r"tflite entry .* does not match its sha256", m) for m in said)


def test_another_fixtures_whole_entry_does_not_pass_a_failing_port(tflite_run):
    from conformance.verdict import Status
    fixture, twin, verdict = tflite_run
    good, bad = tflite_entries(fixture), tflite_entries(twin)
    for which, folder in bad.items():  # the twin's entries replaced by copies of lstm-basic's, manifest and all
        shutil.rmtree(folder)
        shutil.copytree(good[which], folder)
    status, said = verdict(twin)
    assert status == Status.FAILED
    copied = r"tflite entry .*belongs to the .tflite. entry .*copied from another conversion"
    assert len(said) == len(bad) and all(re.search(copied, m) for m in said)


@pytest.mark.parametrize("damage, reason", [
    (lambda f: (f / "model.tflite").write_bytes((f / "model.tflite").read_bytes()[:2000]), r"model\.tflite is 2000"),
    (lambda f: (f / "details.json").unlink(), r"details\.json is missing"),
    (lambda f: (f / cache.COMPLETE).write_text(""), r"manifest \(\.complete\) is empty"),
], ids=["truncated", "deleted", "old-empty-marker"])
def test_a_damaged_tflite_entry_is_converted_again(tflite_run, damage, reason):
    """Truncated or half-deleted, an entry used to fail the fixture on every run with no hint to clear it."""
    from conformance.verdict import Status
    fixture, twin, verdict = tflite_run
    entries = tflite_entries(fixture)
    for folder in entries.values():
        damage(folder)
    status, said = verdict(fixture)
    assert status == Status.PASSED
    assert sorted(said) == sorted(m for m in said if re.search(reason, m)) and len(said) == len(entries), said
