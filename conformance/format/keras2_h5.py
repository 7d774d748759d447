"""The Keras 2 model files' manifest (``keras2-h5.yaml``): reading and checking it needs only pyyaml.

The files are written under tf.keras 2.15 by ``conformance.generate.legacy``; ``keras-load-h5`` reads them
through ``h5_file``. See SPEC.md section 12.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Mapping

from ..errors import FixtureError, NotApplicable
from .fixtures import PLAIN_FILE_NAME, Fixture, read_safe_yaml, short_digest

MANIFEST_NAME = "keras2-h5.yaml"
FORMAT_VERSION = 1
SELECTION = Path("legacy") / "keras2-h5.yaml"  # under the catalog folder
KERAS2 = "2.15"  # the tf.keras that writes the files (the last TensorFlow whose tf.keras is Keras 2)
ENTRY_KEYS = ("file", "sha256", "fixture_digest", "inputs", "outputs", "generated_by")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REGENERATE = "tox -e generate-keras2"


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
    from ..semantics.applicability import not_applicable
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
