"""The catalogue of broken and hostile fixtures: each is refused with an error naming it, nothing else suffers.

Every case starts from a copy of a real gallery fixture and breaks one thing. Each is
checked twice: at the loader (the exact FixtureError: which file, what is wrong, within
bounded time and memory, nothing executed) and through the suite as a user runs it
(``pytest --pyargs conformance --fixtures-dir DIR`` next to two good fixtures: the good
ones pass, the broken one is an error naming it, the exit status is non-zero).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

import hostile
from conformance import fixtures as loader
from conformance.errors import FixtureError
from conformance.fixtures import ARRAYS_NAME, YAML_NAME, list_fixtures

SECONDS = 5.0          # a refusal is quick, whatever the input
PEAK_BYTES = 16 << 20  # and takes little memory (the zip bombs below inflate to 128 MiB)


@dataclasses.dataclass(frozen=True)
class Bad:
    """One broken fixture: how to build it, where the loader refuses it, and what the error must say."""
    name: str                                 # its folder under the fixtures dir
    build: Callable[[Path, Path, Path], None]  # (folder, outside dir, marker file) -> None
    stage: str                                # "listing" (fixture.yaml) or "arrays" (opening the fixture)
    says: str                                 # regex the error detail must match
    file: str | None = YAML_NAME              # the file the error names (None: the folder itself)

    def __str__(self):
        return self.name


def _copy(folder: Path) -> Path:
    return hostile.copy_fixture(folder.parent, hostile.SOURCE, folder.name)


def _append_yaml(text: str):
    def build(folder, outside, marker):
        _copy(folder)
        with open(folder / YAML_NAME, "a") as handle:
            handle.write(text.replace("MARKER", str(marker)))
    return build


def _write_yaml(data: bytes):
    def build(folder, outside, marker):
        _copy(folder)
        (folder / YAML_NAME).write_bytes(data)
    return build


def _meta(change, keep_digest=False):
    def build(folder, outside, marker):
        hostile.edit_meta(_copy(folder), change, keep_digest)
    return build


def _set_id(value):
    return _meta(lambda meta: meta.update(id=value))


def _arrays(change, update_yaml=False):
    def build(folder, outside, marker):
        hostile.edit_arrays(_copy(folder), change, update_yaml)
    return build


def _npz_bytes(transform):
    def build(folder, outside, marker):
        path = _copy(folder) / ARRAYS_NAME
        path.write_bytes(transform(path.read_bytes()))
    return build


def _members(transform):
    """Rewrite the npz as a valid zip whose ``.npy`` members were transformed (CRCs stay right)."""
    def build(folder, outside, marker):
        members = hostile.npy_members(_copy(folder))
        transform(members, marker)
        hostile.write_members(folder, members)
    return build


def _pickled(members, marker):
    members["kernel.npy"] = hostile.npy_bytes(np.array([hostile.CreatesFile(marker)], dtype=object),
                                              allow_pickle=True)


def _set(name, index, value):
    def change(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name][index] = value
    return change


def _billion_laughs() -> str:
    lines = ['lol0: ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]" for k in range(1, 10)]
    return "\n".join(lines).replace("lol0:", "lol0: &l0", 1) + "\n"


@functools.lru_cache(maxsize=None)
def _deflated_zeros(mebibytes: int) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = b"\0" * (1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(mebibytes)) + compressor.flush()


def _zip_bomb(honest_header: bool):
    """A deflated ``bias.npy`` of 128 MiB of zeros (under 1 MB on disk); optionally lying about its size."""
    def transform(raw: bytes) -> bytes:
        size = (128 << 20) if honest_header else 64
        return hostile.raw_zip("bias.npy", _deflated_zeros(128), size, method=zipfile.ZIP_DEFLATED)
    return _npz_bytes(transform)


def _symlinked_folder(folder, outside, marker):
    real = hostile.copy_fixture(outside, hostile.SOURCE, folder.name)
    folder.symlink_to(real, target_is_directory=True)


def _symlinked_file(name):
    def build(folder, outside, marker):
        _copy(folder)
        real = outside / name
        (folder / name).replace(real)
        (folder / name).symlink_to(real)
    return build


def _yaml_dir(folder, outside, marker):
    _copy(folder)
    (folder / YAML_NAME).unlink()
    (folder / YAML_NAME).mkdir()


def _no_yaml(folder, outside, marker):
    (_copy(folder) / YAML_NAME).unlink()


def _no_npz(folder, outside, marker):
    (_copy(folder) / ARRAYS_NAME).unlink()


def _tampered_table(folder, outside, marker):
    """The data edited and its sha256 updated in the YAML, but the digest left: the digest covers the table."""
    hostile.edit_arrays(_copy(folder), _set("output", (0, 0), 0.5))
    arrays = hostile.read_arrays(folder)
    hostile.edit_meta(folder, lambda m: m["arrays"]["output"].update(
        sha256=hostile.array_entries(arrays)["output"]["sha256"]), keep_digest=True)


def _deep(opening: str, closing: str, depth: int) -> str:
    return "deep: " + opening * depth + "1" + closing * depth + "\n"


def _declare(shapes):
    """Only the YAML's declared shapes changed (digest recomputed): the npz is never reached."""
    return _meta(lambda m: [m["arrays"][name].update(shape=shape) for name, shape in shapes.items()])


def _as_dtype(name, dtype):
    """Array ``name`` stored in another dtype, the YAML's table and digest updated to match: consistent data."""
    def change(arrays):
        value = arrays[name]
        if np.dtype(dtype).names:  # structured: two float32 fields
            converted = np.zeros(value.shape, dtype)
            converted["a"] = value
        else:
            converted = value.astype(dtype)
        arrays[name] = converted
    return _arrays(change, update_yaml=True)


FLOATS = 4  # bytes per float32
OVER_ARRAY = loader.MAX_ARRAY_BYTES // FLOATS + 1             # elements: one float32 past the per-array cap
PER_ARRAY = loader.MAX_ARRAY_BYTES // FLOATS                  # exactly at the per-array cap
FIXTURE_ARRAYS = loader.MAX_FIXTURE_BYTES // loader.MAX_ARRAY_BYTES + 1  # that many arrays at the cap: over it


NAN = float("nan")
CATALOGUE = [
    # -- code in data: refused, never executed ----------------------------------------------
    Bad("yaml-python-apply", _append_yaml('exploit: !!python/object/apply:os.system ["touch MARKER"]\n'),
        "listing", r"not valid safe YAML: .*constructor for the tag .*python/object/apply:os\.system"),
    Bad("yaml-python-name", _append_yaml("exploit: !!python/name:os.system\n"),
        "listing", r"not valid safe YAML: .*python/name:os\.system"),
    Bad("npz-pickled-object-array", _members(_pickled),
        "arrays", r"array 'kernel' is an object \(pickled\) array; refused, never unpickled", ARRAYS_NAME),
    # -- bombs: bounded time and memory -----------------------------------------------------
    Bad("yaml-alias-bomb", _append_yaml(_billion_laughs()),
        "listing", r"YAML aliases are not allowed"),
    Bad("yaml-deep-flow-sequence", _append_yaml(_deep("[", "]", 50_000)),
        "listing", r"nest"),
    Bad("yaml-deep-flow-mapping", _append_yaml(_deep("{a: ", "}", 50_000)),
        "listing", r"nest"),
    Bad("yaml-nested-600", _append_yaml(_deep("[", "]", 600)),
        "listing", r"YAML nests deeper than 32 levels"),
    Bad("yaml-compact-sequences", _append_yaml("deep:\n  " + "- " * 200_000 + "1\n"),
        "listing", r"nest"),
    Bad("yaml-oversized", _append_yaml("padding: '" + "x" * (1 << 20) + "'\n"),
        "listing", r"fixture\.yaml is \d+ bytes, over the 1048576-byte limit"),
    Bad("npz-zip-bomb", _zip_bomb(honest_header=True),
        "arrays", r"array 'bias' inflates to more than \d+ bytes.*zip bomb", ARRAYS_NAME),
    Bad("npz-zip-bomb-lying-size", _zip_bomb(honest_header=False),
        "arrays", r"not a readable npz archive \(BadZipFile: Bad CRC-32 for file 'bias\.npy'\)", ARRAYS_NAME),
    # -- declared sizes: refused from the YAML alone (SPEC 13.3) ---------------------------
    Bad("array-declared-over-array-cap", _declare({"output": [OVER_ARRAY]}), "listing",
        rf"array 'output' declares {OVER_ARRAY * FLOATS} bytes \(shape \[{OVER_ARRAY}\], float32\), over the "
        rf"{loader.MAX_ARRAY_BYTES}-byte limit per array; refused before reading it"),
    Bad("array-declared-2gib", _declare({"x": [2, 1 << 28]}), "listing",
        rf"array 'x' declares {2 << 30} bytes \(shape \[2, {1 << 28}\], float32\), over the "
        rf"{loader.MAX_ARRAY_BYTES}-byte limit per array"),
    Bad("arrays-declared-over-fixture-cap",
        _declare(dict.fromkeys(["x", "kernel", "recurrent_kernel", "bias", "output", "state_h",
                                "state_c"][:FIXTURE_ARRAYS], [PER_ARRAY])), "listing",
        r"its arrays declare \d+ bytes in all, over the "
        rf"{loader.MAX_FIXTURE_BYTES}-byte limit per fixture; refused before reading them"),
    # -- dtypes the format does not have (SPEC 3.2) -----------------------------------------
    Bad("dtype-int64-output", _as_dtype("output", np.int64), "listing",
        r"array 'output' has dtype 'int64'; an array other than a mask must be float16 or float32 or float64"),
    Bad("dtype-complex-input", _as_dtype("x", np.complex128), "listing", r"array 'x' has dtype 'complex128'"),
    Bad("dtype-string-output", _as_dtype("output", str), "listing", r"array 'output' has dtype 'str\d+'"),
    Bad("dtype-structured-kernel", _as_dtype("kernel", [("a", "<f4"), ("b", "<f4")]), "listing",
        r"array 'kernel' has dtype 'void64'"),
    Bad("dtype-bool-output", _as_dtype("output", np.bool_), "listing", r"array 'output' has dtype 'bool'"),
    # -- what the YAML parser itself raises -------------------------------------------------
    Bad("yaml-huge-integer", _append_yaml("seed_digits: " + "9" * 5000 + "\n"), "listing",
        r"not valid safe YAML: ValueError: Exceeds the limit \(4300 digits\) for integer string conversion"),
    # -- not YAML, not a fixture ------------------------------------------------------------
    Bad("yaml-binary-garbage", _write_yaml(bytes(range(256)) * 4), "listing", r"not valid safe YAML: "),
    Bad("yaml-empty", _write_yaml(b""), "listing", r"expected a mapping at the top level, got NoneType"),
    Bad("yaml-a-list", _write_yaml(b"- format_version\n- 1\n"), "listing",
        r"expected a mapping at the top level, got list"),
    Bad("yaml-is-a-folder", _yaml_dir, "listing", r"no fixture\.yaml \(or it is not a regular file\)"),
    Bad("no-yaml", _no_yaml, "listing", r"no fixture\.yaml"),
    Bad("format-version-3", _meta(lambda m: m.update(format_version=3)),
        "listing", r"unknown format_version 3 \(this loader reads 1 and 2\)"),
    Bad("format-version-1-conv-lstm3d", _meta(lambda m: m.update(layer="ConvLSTM3D")),
        "listing", r"format_version 1 does not describe a ConvLSTM3D layer; a fixture with it is format_version 2"),
    Bad("format-version-1-stateful-bidirectional", _meta(lambda m: m.update(
        layer="Bidirectional", calls={"steps": [1, 1]})), "listing",
        r"format_version 1 does not describe calls on a Bidirectional \(a stateful wrapper\); a fixture with it is "
        r"format_version 2"),
    Bad("format-version-string", _meta(lambda m: m.update(format_version="1")),
        "listing", r"unknown format_version '1'"),
    Bad("missing-field-tolerance", _meta(lambda m: m.pop("tolerance")),
        "listing", r"missing required field\(s\): tolerance$"),
    Bad("yaml-bool-key", _append_yaml("true: 1\n"), "listing",
        r"not plain JSON data \(string keys, no dates or other YAML types\): .*not supported between"),
    Bad("yaml-date-value", _append_yaml("generated_on: 2001-12-14\n"), "listing",
        r"not plain JSON data .*Object of type date is not JSON serializable"),
    Bad("arrays-table-a-list", _meta(lambda m: m.update(arrays=sorted(m["arrays"]))),
        "listing", r"field 'arrays' must map array names to \{shape, dtype, sha256\}"),
    # -- unsafe ids -------------------------------------------------------------------------
    Bad("id-dotdot", _set_id(".."), "listing", r"id '\.\.' is not a safe folder name"),
    Bad("id-parent-path", _set_id("../lstm-basic"), "listing", r"id '\.\./lstm-basic' is not a safe folder name"),
    Bad("id-absolute", _set_id("/etc/passwd"), "listing", r"id '/etc/passwd' is not a safe folder name"),
    Bad("id-slash", _set_id("lstm/basic"), "listing", r"id 'lstm/basic' is not a safe folder name"),
    Bad("id-backslash", _set_id("lstm\\basic"), "listing", r"id 'lstm\\\\basic' is not a safe folder name"),
    Bad("id-nul", _set_id("lstm\0basic"), "listing", r"id 'lstm\\x00basic' is not a safe folder name"),
    Bad("id-space", _set_id("lstm basic"), "listing", r"id 'lstm basic' is not a safe folder name"),
    Bad("id-hidden", _set_id(".lstm"), "listing", r"id '\.lstm' is not a safe folder name"),
    Bad("id-uppercase", _set_id("LSTM-Basic"), "listing", r"id 'LSTM-Basic' is not a safe folder name"),
    Bad("id-trailing-newline", _set_id("id-trailing-newline\n"), "listing",
        r"id 'id-trailing-newline\\n' is not a safe folder name"),
    Bad("id-too-long", _set_id("a" * 81), "listing", r"id 'a{81}' is not a safe folder name"),
    Bad("id-a-number", _set_id(42), "listing", r"id 42 is not a safe folder name"),
    Bad("id-not-folder", _set_id("lstm-basic"), "listing",
        r"id 'lstm-basic' does not match its folder name 'id-not-folder'"),
    # -- tampering: the digests catch it ----------------------------------------------------
    Bad("yaml-edited", _meta(lambda m: m["tolerance"].update(atol=1.0), keep_digest=True),
        "listing", r"digest mismatch: the file says sha256:[0-9a-f]{64}, its content hashes to sha256:[0-9a-f]{64}"),
    Bad("array-data-edited", _arrays(_set("output", (0, 0), 0.5)),
        "arrays", r"array 'output' does not match its sha256 \(the data was changed after generation\)", ARRAYS_NAME),
    Bad("array-and-sha-edited", _tampered_table, "listing", r"digest mismatch"),
    # -- arrays that disagree with the YAML -------------------------------------------------
    Bad("npz-truncated", _npz_bytes(lambda raw: raw[: len(raw) // 2]),
        "arrays", r"not a readable npz archive \(BadZipFile", ARRAYS_NAME),
    Bad("npz-not-a-zip", _npz_bytes(lambda raw: b"#!/bin/sh\nrm -rf ~\n"),
        "arrays", r"not a readable npz archive \(BadZipFile: File is not a zip file\)", ARRAYS_NAME),
    Bad("npz-empty", _npz_bytes(lambda raw: b""), "arrays", r"not a readable npz archive", ARRAYS_NAME),
    Bad("npz-missing", _no_npz, "arrays", r"arrays\.npz is missing", ARRAYS_NAME),
    Bad("npy-truncated", _members(lambda m, _: m.update({"kernel.npy": m["kernel.npy"][:-5]})),
        "arrays", r"array 'kernel' is corrupt \(.*EOF", ARRAYS_NAME),
    Bad("npy-bad-magic", _members(lambda m, _: m.update({"kernel.npy": b"NOTNUMPY" + m["kernel.npy"][8:]})),
        "arrays", r"array 'kernel' is corrupt", ARRAYS_NAME),
    Bad("array-missing", _arrays(lambda a: a.pop("state_c")),
        "arrays", r"array 'state_c' listed in fixture\.yaml is missing", ARRAYS_NAME),
    Bad("array-extra", _arrays(lambda a: a.update(payload=np.zeros(3, np.float32))),
        "arrays", r"arrays not listed in fixture\.yaml: payload$", ARRAYS_NAME),
    Bad("array-shape-differs", _arrays(lambda a: a.update(output=a["output"].reshape(-1))),
        "arrays", r"array 'output' has shape \[4\], fixture\.yaml says \[2, 2\]", ARRAYS_NAME),
    Bad("array-dtype-differs", _arrays(lambda a: a.update(output=a["output"].astype(np.float64))),
        "arrays", r"array 'output' has dtype float64, fixture\.yaml says float32", ARRAYS_NAME),
    Bad("yaml-shape-differs", _meta(lambda m: m["arrays"]["output"].update(shape=[2, 3])),
        "arrays", r"array 'output' has shape \[2, 2\], fixture\.yaml says \[2, 3\]", ARRAYS_NAME),
    Bad("nan-in-expected", _arrays(_set("output", (1, 0), NAN), update_yaml=True),
        "arrays", r"array 'output' contains NaN or Inf", ARRAYS_NAME),
    Bad("inf-in-input", _arrays(_set("x", (0, 1, 0), np.inf), update_yaml=True),
        "arrays", r"array 'x' contains NaN or Inf", ARRAYS_NAME),
    # -- links out of the fixtures folder ---------------------------------------------------
    Bad("symlinked-folder", _symlinked_folder, "listing",
        r"symlink points outside the fixtures folder; refused", None),
    Bad("symlinked-yaml", _symlinked_file(YAML_NAME), "listing", r"fixture\.yaml is a symbolic link; refused"),
    Bad("symlinked-npz", _symlinked_file(ARRAYS_NAME), "arrays",
        r"arrays\.npz is a symbolic link; refused", ARRAYS_NAME),
]
assert len({bad.name for bad in CATALOGUE}) == len(CATALOGUE)


def _build(bad: Bad, base: Path) -> tuple[Path, Path]:
    """Build ``bad`` under ``base/fixtures``; returns (fixtures root, marker path that must never appear)."""
    root, outside = base / "fixtures", base / "outside"
    root.mkdir(exist_ok=True)
    (outside / bad.name).mkdir(parents=True)
    marker = outside / bad.name / "EXECUTED"
    bad.build(root / bad.name, outside / bad.name, marker)
    return root, marker


@pytest.mark.parametrize("bad", CATALOGUE, ids=str)
def test_loader_refuses(bad, tmp_path):
    """The loader names the file and the problem, quickly, in little memory, without running anything."""
    root, marker = _build(bad, tmp_path)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        listing = list_fixtures(root)
        if bad.stage == "listing":
            assert listing.fixtures == [], f"{bad.name} was listed as a good fixture"
            assert len(listing.errors) == 1, listing.errors
            error = listing.errors[0]
        else:
            assert [f.id for f in listing.fixtures] == [bad.name] and listing.errors == [], listing.errors
            with pytest.raises(FixtureError) as caught:
                listing.fixtures[0].arrays  # noqa: B018 - opening it is the action under test
            error = caught.value
        elapsed, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    folder = root / bad.name
    assert error.where == str(folder / bad.file if bad.file else folder), f"the error names {error.where}"
    assert bad.name in str(error), f"the message does not name the fixture folder: {error}"
    assert re.search(bad.says, error.detail), f"{bad.name}: {error.detail!r} does not match {bad.says!r}"
    assert "\n" not in str(error), f"the message should be one line: {error}"
    assert elapsed < SECONDS, f"{bad.name}: refusing it took {elapsed:.1f} s"
    assert peak < PEAK_BYTES, f"{bad.name}: refusing it took {peak / 2**20:.0f} MiB"
    assert not marker.exists(), f"{bad.name}: code from the data ran (it created {marker})"


def test_hostile_payloads_are_live(tmp_path):
    """The code-in-data cases would run if loaded unsafely, so their refusal above proves something."""
    marker = tmp_path / "pickle-ran"
    hostile.write_members(tmp_path, {"kernel.npy": hostile.npy_bytes(
        np.array([hostile.CreatesFile(marker)], dtype=object), allow_pickle=True)})
    np.load(tmp_path / ARRAYS_NAME, allow_pickle=True)["kernel"]
    assert marker.exists()
    marker = tmp_path / "yaml-ran"
    yaml.unsafe_load(f'exploit: !!python/object/apply:os.system ["touch {marker}"]')
    assert marker.exists()


@pytest.mark.parametrize("depth", [2_000, 50_000])
def test_deep_yaml_is_quick_with_the_pure_python_parser(depth, tmp_path, monkeypatch):
    """Without libyaml, PyYAML's parser takes minutes on a few thousand ``[``: the loader stops early."""
    monkeypatch.setattr(loader, "SAFE_LOADER", yaml.SafeLoader)
    folder = hostile.copy_fixture(tmp_path, hostile.SOURCE, "deep")
    with open(folder / YAML_NAME, "a") as handle:
        handle.write(_deep("[", "]", depth))
    started = time.perf_counter()
    with pytest.raises(FixtureError, match=r"YAML nests deeper than 32 levels"):
        loader.read_meta(folder)
    assert time.perf_counter() - started < SECONDS


def test_pure_python_parser_reads_the_gallery(monkeypatch):
    """The depth and alias scan of the fallback parser accepts real fixtures (every third: it is slow)."""
    monkeypatch.setattr(loader, "SAFE_LOADER", yaml.SafeLoader)
    folders = sorted(p for p in loader.gallery_dir().iterdir() if p.is_dir())[::3]
    assert len(folders) >= 10
    for folder in folders:
        assert loader.read_meta(folder)["id"] == folder.name


def test_empty_fixtures_folder(tmp_path):
    root = tmp_path / "fixtures"
    root.mkdir()
    listing = list_fixtures(root)
    assert listing.fixtures == [] and listing.errors == []
    run = hostile.run_suite(root)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.output[-2000:]  # nothing to run is bad usage
    assert f"ERROR: no fixtures in {root}" in run.output


def test_missing_fixtures_folder(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(FixtureError, match="fixtures folder does not exist") as caught:
        list_fixtures(root)
    assert caught.value.where == str(root)
    run = hostile.run_suite(root)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.output[-2000:]
    assert f"ERROR: fixtures folder {root} does not exist" in run.output


# -- through the suite: every broken fixture in one run, next to good ones -----------------------

@pytest.fixture(scope="module")
def catalogue_run(tmp_path_factory):
    """One ``pytest --pyargs conformance`` run over the whole catalogue plus the good fixtures."""
    base = tmp_path_factory.mktemp("catalogue")
    markers = [_build(bad, base)[1] for bad in CATALOGUE]
    good = hostile.good_fixtures(base / "fixtures")
    run = hostile.run_suite(base / "fixtures", timeout=300)
    return run, good, markers, base / "fixtures"


def test_catalogue_run_good_fixtures_pass(catalogue_run):
    run, good, markers, _ = catalogue_run
    assert run.returncode == 1, run.output[-3000:]
    statuses = run.statuses()
    assert {fid: statuses.get(fid) for fid in good} == {fid: "passed" for fid in good}, run.output[-3000:]
    assert len(statuses) == len(CATALOGUE) + len(good), sorted(statuses)
    assert not [m for m in markers if m.exists()], "code from a hostile fixture ran during the suite"


@pytest.mark.parametrize("bad", CATALOGUE, ids=str)
def test_catalogue_run_reports(bad, catalogue_run):
    """The broken fixture's case errors with a message naming it and the problem; pytest prints it."""
    run, _, _, root = catalogue_run
    case = run.case(bad.name)
    assert case["status"] == "error", case
    assert case["message"].startswith(f"broken fixture {bad.name!r}: "), case["message"]
    assert str(root / bad.name) in case["message"]
    assert re.search(bad.says, case["message"]), f"{case['message']!r} does not match {bad.says!r}"
    assert f"broken fixture {bad.name!r}" in run.failed_line(f"numpy-reference-{bad.name}")


# -- through the suite, one at a time: the exit status is this fixture's doing -------------------

@pytest.mark.parametrize("bad", CATALOGUE, ids=str)
def test_suite_one_broken_fixture(bad, pytester, monkeypatch):
    """A folder with only this broken fixture and two good ones: 2 passed, 1 error (as the table counts it),
    exit status 1."""
    for name in [n for n in os.environ if n.startswith("LSTM_CONFORMANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "1000")
    root, marker = _build(bad, pytester.path)
    hostile.good_fixtures(root)
    result = pytester.runpytest("-p", "no:cacheprovider", "--pyargs", "conformance", "--impl", "numpy-reference",
                                "--fixtures-dir", str(root), "-rfE")
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret == 1
    name = re.escape(bad.name)
    result.stdout.re_match_lines([rf"ERROR .*\[numpy-reference-{name}\] - Failed: broken fixture '{name}': .*"])
    result.stdout.re_match_lines([r"numpy-reference +2 +0 +0 +1 +0 +0 +0$"])  # the table says error too
    assert not marker.exists()
