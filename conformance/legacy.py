"""Keras 2 model files: ``model.h5`` saved by tf.keras 2.15 beside some fixtures, listed in one manifest.

A fixture's digest covers everything it lists (SPEC 4.1) and fixtures are cited as ``id@digest``, so
these files are not in any ``fixture.yaml``: the gallery-level manifest ``keras2-h5.yaml`` lists them,
each entry bound to the digest of the fixture it was made from (SPEC 12). Reading the manifest needs
only pyyaml; ``keras-load-h5`` (``conformance.adapters.keras_load_h5``) loads the files with the
installed Keras, and ``generate_fixtures.py --keras2-h5`` (``generate_command``) writes and checks them
under tf.keras 2.15. Which fixtures get a file is data: ``catalog/legacy/keras2-h5.yaml``.

HDF5 written by Keras 2 is not byte-reproducible across h5py/HDF5 builds, so ``--check`` never compares
bytes: it checks what each committed file loads to (the fixture's weights, bit for bit, and its
expected outputs within the fixture's tolerance) and that the manifest is bound to the current digests.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import FixtureError, NotApplicable
from .fixtures import PLAIN_FILE_NAME, Fixture, list_fixtures, read_safe_yaml, short_digest

MANIFEST_NAME = "keras2-h5.yaml"
FORMAT_VERSION = 1
SELECTION = Path("legacy") / "keras2-h5.yaml"  # under the catalog folder
KERAS2 = "2.15"  # the tf.keras that writes the files (the last TensorFlow whose tf.keras is Keras 2)
ENTRY_KEYS = ("file", "sha256", "fixture_digest", "inputs", "outputs", "generated_by")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REGENERATE = "tox -e generate-keras2"
HEADER = f"""\
# Keras 2 model files of some fixtures: HDF5 (model.h5) saved by tf.keras {KERAS2}, beside the Keras 3 model.keras.
# Written by `{REGENERATE}` (generate_fixtures.py --keras2-h5); the selection is catalog/legacy/keras2-h5.yaml.
# Not part of any fixture's digest: each entry is bound to the digest of the fixture it was made from
# (fixture_digest), and a fixture whose digest differs makes its entry stale. See SPEC.md section 12.
"""


# -- reading the manifest (no Keras needed) ------------------------------------------------------

def manifest_path(gallery: Path) -> Path:
    return Path(gallery) / MANIFEST_NAME


def read_manifest(gallery: Path) -> dict | None:
    """The manifest's ``fixtures`` mapping (id -> entry, entries not yet checked); None when the gallery has none.

    A manifest that is unreadable as a whole (bad YAML, a link, wrong format_version, not a mapping of
    ids) is a FixtureError naming it.
    """
    where = manifest_path(gallery)
    if not where.exists() and not where.is_symlink():
        return None
    data = read_safe_yaml(where)  # read per case: 2 ms, and a tampered manifest is never served from memory
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise FixtureError(where, f"expected a mapping with 'format_version: {FORMAT_VERSION}' and 'fixtures'")
    entries = data.get("fixtures") or {}
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise FixtureError(where, "'fixtures' must map fixture ids to entries")
    return entries


def check_entry(fixture: Fixture, raw, where: Path) -> dict:
    """One manifest entry, checked against the fixture it names; FixtureError naming the manifest otherwise."""
    fid = fixture.id
    if not isinstance(raw, dict):
        raise FixtureError(where, f"entry {fid!r} is a {type(raw).__name__}, expected a mapping with keys "
                                  f"{', '.join(ENTRY_KEYS)}")
    missing = [k for k in ENTRY_KEYS if k not in raw]
    if missing:
        raise FixtureError(where, f"entry {fid!r}: missing key(s) {', '.join(missing)}")
    file = raw["file"]
    folder, _, name = file.partition("/") if isinstance(file, str) else ("", "", "")
    if folder != fid or not PLAIN_FILE_NAME.fullmatch(name):
        raise FixtureError(where, f"entry {fid!r}: file {file!r} is not '{fid}/<plain file name>': a listed file "
                                  "lies in its own fixture's folder (no other folder, no '..', no absolute path)")
    if not isinstance(raw["sha256"], str) or not SHA256.fullmatch(raw["sha256"]):
        raise FixtureError(where, f"entry {fid!r}: sha256 must be 64 lowercase hex digits")
    if not isinstance(raw["fixture_digest"], str) or not DIGEST.fullmatch(raw["fixture_digest"]):
        raise FixtureError(where, f"entry {fid!r}: fixture_digest must be sha256:<64 hex digits>")
    for key in ("inputs", "outputs"):
        names = raw[key]
        wanted = fixture.meta["inputs" if key == "inputs" else "outputs"]
        if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                or sorted(names) != sorted(wanted) or len(set(names)) != len(names)):
            raise FixtureError(where, f"entry {fid!r}: {key} {names!r} are not the fixture's {key} {list(wanted)} "
                                      "(in the model's order)")
    if not isinstance(raw["generated_by"], dict):
        raise FixtureError(where, f"entry {fid!r}: generated_by must be a mapping")
    if raw["fixture_digest"] != fixture.digest:
        raise FixtureError(where, f"entry {fid!r} is stale: it was made from {fid}@{short_digest(raw['fixture_digest'])}, "
                                  f"the gallery's fixture is {fixture.citation}; regenerate it ({REGENERATE})")
    return raw


def entry_for(fixture: Fixture) -> dict:
    """The fixture's checked manifest entry; NotApplicable when the gallery lists no Keras 2 file for it."""
    gallery = Path(fixture.path).parent
    entries = read_manifest(gallery)
    if entries is None:
        raise NotApplicable(f"this gallery has no Keras 2 model files ({MANIFEST_NAME})")
    if fixture.id not in entries:
        raise NotApplicable(f"no Keras 2 model file is listed for this fixture in {MANIFEST_NAME}")
    return check_entry(fixture, entries[fixture.id], manifest_path(gallery))


def read_h5(fixture: Fixture, entry: Mapping) -> bytes:
    """The listed file's bytes, checked: a regular file in the fixture's folder, matching its sha256."""
    where = Path(fixture.path).parent / entry["file"]
    if where.is_symlink() or not where.is_file():
        raise FixtureError(where, f"fixture {fixture.id!r}: {entry['file']}, listed in {MANIFEST_NAME}, is missing "
                                  "(or not a regular file)")
    data = where.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise FixtureError(where, f"fixture {fixture.id!r}: {entry['file']} does not match its sha256 in "
                                  f"{MANIFEST_NAME} (changed after generation)")
    return data


def h5_file(fixture: Fixture) -> tuple[dict, bytes]:
    """The fixture's Keras 2 model file: (checked entry, sha256-checked bytes). NotApplicable when unlisted."""
    entry = entry_for(fixture)
    return entry, read_h5(fixture, entry)


# -- which fixtures (the selection, checked against what a Keras 2 .h5 can hold) -----------------

def read_selection(path: Path) -> tuple[list[str], str]:
    """(id globs, file name) from ``catalog/legacy/keras2-h5.yaml``."""
    data = read_safe_yaml(path)
    if (not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION
            or not isinstance(data.get("fixtures"), list) or not data["fixtures"]):
        raise FixtureError(path, f"expected a mapping with 'format_version: {FORMAT_VERSION}' and a non-empty list "
                                 "'fixtures' (fixture ids or globs)")
    name = data.get("file", "model.h5")
    if not isinstance(name, str) or not PLAIN_FILE_NAME.fullmatch(name) or not name.endswith(".h5"):
        raise FixtureError(path, f"'file' {name!r} must be a plain file name ending in .h5")
    return [str(p) for p in data["fixtures"]], name


def ineligible(fixture: Fixture) -> str | None:
    """Why a Keras 2 ``.h5`` of this fixture would not test loading a plain Keras 2 layer, or None."""
    from .applicability import not_applicable
    cfg = fixture.config
    if fixture.layer not in ("LSTM", "GRU", "SimpleRNN"):
        return f"layer {fixture.layer} (only single LSTM, GRU and SimpleRNN layers get a Keras 2 file)"
    if not fixture.meta.get("model_file"):
        return "it has no Keras 3 model file to stand beside"
    if fixture.meta.get("calls") or cfg.get("stateful"):
        return "stateful (calls)"
    for key in ("time_major", "cell_wrapper"):
        if cfg.get(key):
            return f"it sets {key}"
    if any(a.get("name") == "hard_sigmoid" for a in fixture.activations.values()):
        return "hard_sigmoid differs between Keras 2 and 3"
    reason = not_applicable(fixture.meta, f"{KERAS2}.0", "tensorflow")
    return f"it does not apply to Keras 2: {reason}" if reason else None


# -- writing and checking (tf.keras 2.15) --------------------------------------------------------

def provenance() -> dict:
    import h5py
    import tensorflow as tf
    from .adapters.keras import keras_version
    return {"tensorflow": tf.__version__, "keras": keras_version(), "h5py": h5py.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def loads_to_fixture(fixture: Fixture, entry: Mapping, data: bytes) -> list[str]:
    """Problems with what ``data`` loads to in this Keras: it must hold the fixture's weights bit for bit
    and compute its expected outputs within the fixture's tolerance. Empty when it does."""
    from .adapters.keras_load_h5 import compute
    try:
        got = compute(fixture, entry, data)
    except FixtureError as exc:  # the weights differ
        return [exc.detail]
    except Exception as exc:  # noqa: BLE001 - a file this Keras cannot load or call is a problem of that file
        return [f"{type(exc).__name__}: {exc}"]
    from .compare import close
    problems = []
    for name, want in fixture.expected.items():
        value = np.asarray(got[name], np.float64)
        if value.shape != want.shape:
            problems.append(f"{name} has shape {list(value.shape)}, expected {list(want.shape)}")
        elif not close(value, want, fixture.tolerance).all():
            problems.append(f"{name} is out of tolerance (max abs error {np.max(np.abs(value - want)):.3g})")
    return problems


def _save_h5(fixture: Fixture, name: str) -> tuple[dict, bytes]:
    """The fixture's contract model (as ``keras-load`` builds it) saved by tf.keras as HDF5: (entry, bytes)."""
    from .adapters.keras_load import contract_model
    model, input_keys, output_keys = contract_model(fixture.layer, fixture.config, fixture.weights, fixture.inputs)
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-h5-") as tmp:
        path = Path(tmp) / name
        model.save(path, save_format="h5", include_optimizer=False)
        data = path.read_bytes()
    entry = {"file": f"{fixture.id}/{name}", "sha256": hashlib.sha256(data).hexdigest(),
             "fixture_digest": fixture.digest, "inputs": list(input_keys), "outputs": list(output_keys)}
    return entry, data


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_manifest(gallery: Path, entries: Mapping[str, dict]) -> None:
    from .writer import yaml_text  # no aliases (the reader refuses them): shared provenance is written out each time
    body = {"format_version": FORMAT_VERSION, "fixtures": {k: entries[k] for k in sorted(entries)}}
    _write_atomic(manifest_path(gallery), (HEADER + yaml_text(body, width=120)).encode("ascii"))


def generate_command(gallery: Path, catalog: Path, only=(), check: bool = False, update: bool = False) -> int:
    """``generate_fixtures.py --keras2-h5``: write (or, with ``check``, verify) the Keras 2 files and manifest."""
    started = time.perf_counter()
    import tensorflow as tf
    from .adapters.keras import keras_version
    if not tf.__version__.startswith(KERAS2 + ".") or not keras_version().startswith(KERAS2 + "."):
        print(f"generate_fixtures.py --keras2-h5: needs TensorFlow {KERAS2} with its tf.keras {KERAS2} (found "
              f"TensorFlow {tf.__version__}, Keras {keras_version()}); run `{REGENERATE}`", file=sys.stderr)
        return 2
    try:  # one thread, as the gallery's generator
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    selection_path = Path(catalog) / SELECTION
    try:
        patterns, name = read_selection(selection_path)
        listing = list_fixtures(gallery)
        manifest = dict(read_manifest(gallery) or {})
    except FixtureError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    by_id = {f.id: f for f in listing.fixtures}
    problems = [f"{selection_path.name}: {p!r} matches no fixture" for p in patterns
                if not fnmatch.filter(by_id, p)]
    selected = sorted(fid for fid in by_id if any(fnmatch.fnmatchcase(fid, p) for p in patterns))
    problems += [f"{fid}: selected in {selection_path.name}, but {why}" for fid in selected
                 if (why := ineligible(by_id[fid]))]
    if problems:
        for problem in problems:
            print(f"REFUSED {problem}", file=sys.stderr)
        return 1
    chosen = [fid for fid in selected if not only or any(fnmatch.fnmatchcase(fid, p) for p in only)]
    where = manifest_path(gallery)
    generated_by = provenance()
    written = unchanged = 0
    for fid in chosen:
        fixture = by_id[fid]
        try:
            entry = check_entry(fixture, manifest[fid], where) if fid in manifest else None
            data = read_h5(fixture, entry) if entry else None
        except FixtureError as exc:
            entry, data, bad = None, None, exc.detail
        else:
            bad = None if entry else f"not listed in {MANIFEST_NAME}"
        if check:
            found = bad and [bad] or loads_to_fixture(fixture, entry, data)
            problems += [f"{fid}: {p}" for p in found]
            unchanged += not found
            continue
        if entry and not update:
            unchanged += 1
            continue
        new, new_data = _save_h5(fixture, name)
        new["generated_by"] = generated_by
        found = loads_to_fixture(fixture, new, new_data)
        if found:
            print(f"ERROR {fid}: the file tf.keras {generated_by['keras']} saved does not load back to the fixture: "
                  + "; ".join(found), file=sys.stderr)
            return 1
        _write_atomic(Path(gallery) / new["file"], new_data)
        manifest[fid] = new
        written += 1
    if check and not only:
        problems += [f"{fid}: listed in {MANIFEST_NAME} but not selected in {selection_path.name}"
                     for fid in sorted(set(manifest) - set(selected))]
    if not check and written:
        write_manifest(gallery, manifest)
    for problem in problems:
        print(f"DIFFERS {problem}", file=sys.stderr)
    files = [Path(gallery) / manifest[f]["file"] for f in selected if f in manifest]
    size = sum(p.stat().st_size for p in files if p.is_file())
    verb = "checked" if check else f"wrote {written},"
    print(f"{verb} {len(chosen)} Keras 2 model files ({unchanged} unchanged, {len(problems)} problems; "
          f"{len(files)} files, {size / 1024:.0f} KiB) in {time.perf_counter() - started:.1f}s with "
          f"tf.keras {generated_by['keras']} / TensorFlow {generated_by['tensorflow']} / h5py {generated_by['h5py']}")
    return 1 if problems else 0
