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
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import FixtureError
from ..format.fixtures import Fixture, list_fixtures
from ..format.keras2_h5 import (FORMAT_VERSION, KERAS2, MANIFEST_NAME, REGENERATE, SELECTION, check_entry,
                                ineligible, manifest_path, read_h5, read_manifest, read_selection)

HEADER = f"""\
# Keras 2 model files of some fixtures: HDF5 (model.h5) saved by tf.keras {KERAS2}, beside the Keras 3 model.keras.
# Written by `{REGENERATE}` (generate_fixtures.py --keras2-h5); the selection is catalog/legacy/keras2-h5.yaml.
# Not part of any fixture's digest: each entry is bound to the digest of the fixture it was made from
# (fixture_digest), and a fixture whose digest differs makes its entry stale. See SPEC.md section 12.
"""


# -- writing and checking (tf.keras 2.15) --------------------------------------------------------

def provenance() -> dict:
    import h5py
    import tensorflow as tf
    from ..adapters.keras import keras_version
    return {"tensorflow": tf.__version__, "keras": keras_version(), "h5py": h5py.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def loads_to_fixture(fixture: Fixture, entry: Mapping, data: bytes) -> list[str]:
    """Problems with what ``data`` loads to in this Keras: it must hold the fixture's weights bit for bit
    and compute its expected outputs within the fixture's tolerance. Empty when it does."""
    from ..adapters.keras_load_h5 import compute
    try:
        got = compute(fixture, entry, data)
    except FixtureError as exc:  # the weights differ
        return [exc.detail]
    except Exception as exc:  # noqa: BLE001 - a file this Keras cannot load or call is a problem of that file
        return [f"{type(exc).__name__}: {exc}"]
    from ..semantics.tolerance import close
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
    from ..adapters.keras_load import contract_model
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
    from ..format.writer import yaml_text  # no aliases (the reader refuses them): shared provenance is written out each time
    body = {"format_version": FORMAT_VERSION, "fixtures": {k: entries[k] for k in sorted(entries)}}
    _write_atomic(manifest_path(gallery), (HEADER + yaml_text(body, width=120)).encode("ascii"))


def generate_command(gallery: Path, catalog: Path, only=(), check: bool = False, update: bool = False) -> int:
    """``generate_fixtures.py --keras2-h5``: write (or, with ``check``, verify) the Keras 2 files and manifest."""
    started = time.perf_counter()
    import tensorflow as tf
    from ..adapters.keras import keras_version
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
