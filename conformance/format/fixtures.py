"""Load fixtures from disk: YAML when listing, arrays on first use, digests verified.

Imports numpy and pyyaml only, so a port can be checked without TensorFlow.
Nothing here executes code from data: YAML goes through a safe loader (``yaml.safe_load``'s) and
arrays through numpy's ``.npy`` header reader, an object dtype refused before any data is read (what
``np.load(allow_pickle=False)`` does, without its extra copies).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np
import yaml

from ..errors import FixtureError

FORMAT_VERSION = 2   # the newest this loader reads; a fixture carries the lowest that fits (``needed_version``)
FORMAT_VERSIONS = (1, 2)
YAML_NAME = "fixture.yaml"
ARRAYS_NAME = "arrays.npz"
SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
MAX_YAML_BYTES = 1 << 20
NPY_MAGIC = b"\x93NUMPY"
NPY_HEADER_LIMIT = 1 << 16  # bytes allowed in an .npy member beyond its data (numpy's headers are < 10 kB)
# Declared sizes (elements x itemsize in fixture.yaml's arrays table), refused at listing before anything is read
# (SPEC 13.3). The gallery's largest array is 786 kB, its largest fixture 909 kB (scale-gru-256u-100t).
MAX_ARRAY_BYTES = 64 << 20
MAX_FIXTURE_BYTES = 256 << 20
# The dtypes an array may have (SPEC 3.2, 5.13): a mask is bool, every other array a float.
VALUE_DTYPES = ("float16", "float32", "float64")
MASK_DTYPES = ("bool",)
TOKEN_DTYPES = ("int32",)   # a Model's inputs only (an Embedding's token ids)
READ_CHUNK = 1 << 20  # an .npy member is copied into its array this many bytes at a time
# a file named in fixture.yaml (model_file.name): a plain name inside the fixture folder, never a path
PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
MAX_YAML_DEPTH = 32  # a fixture nests 5 levels; the limit keeps PyYAML's pure-Python parser fast
# yaml.safe_load's loader, with libyaml's parser when PyYAML has it (ten times faster at listing).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
REQUIRED_FIELDS = ("format_version", "id", "description", "layer", "config", "activations",
                   "gates", "inputs", "outputs", "arrays", "tolerance", "tags", "digest")
# Excluded from the digest: the digest itself, and provenance, which changes with
# the machine that regenerated a fixture without changing what it asserts.
UNDIGESTED_FIELDS = ("digest", "generated_by")


def gallery_dir() -> Path:
    """The gallery shipped with the package (wheel), else the repository's ``fixtures/``."""
    here = Path(__file__).resolve().parent.parent  # the package folder (the wheel keeps fixtures/ there)
    for candidate in (here / "fixtures", here.parent / "fixtures"):
        if candidate.is_dir():
            return candidate
    return here / "fixtures"


def array_sha256(array: np.ndarray) -> str:
    """sha256 of the raw little-endian, C-order data bytes (shape and dtype are recorded apart)."""
    array = np.asarray(array)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))  # no copy when already so
    return hashlib.sha256(data.reshape(-1).view(np.uint8)).hexdigest()  # hashed in place, not via tobytes()


def canonical_json(meta: Mapping) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def compute_digest(meta: Mapping) -> str:
    """The citation digest: sha256 over the canonical JSON of the YAML minus undigested fields."""
    content = {k: v for k, v in meta.items() if k not in UNDIGESTED_FIELDS}
    return "sha256:" + hashlib.sha256(canonical_json(content).encode()).hexdigest()


def short_digest(digest: str) -> str:
    return digest[: len("sha256:") + 8]


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class Fixture:
    """One fixture: metadata from ``fixture.yaml``; arrays loaded, checked and frozen on first use.

    The object handed to implementations is read-only: mappings are proxies and
    arrays are not writeable, so one implementation cannot corrupt the next.
    """

    timeout: float | None = None  # the seconds this case's run() has; the suite sets it on each case's copy

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta
        self._arrays: Mapping[str, np.ndarray] | None = None
        self._scratch: list[Path] = []

    @classmethod
    def from_memory(cls, meta: Mapping, arrays: Mapping[str, np.ndarray], path: Path | None = None) -> "Fixture":
        """A fixture built in memory (the fuzzer's), held to every check a folder on disk passes.

        ``meta`` is complete (``writer.finish_meta`` adds the ``arrays`` table and the digest). Checked as
        listing and opening check a folder: format version, required fields, id, digest, the JSON Schema,
        and every array's shape, dtype, sha256 and finiteness, none missing and none unlisted. ``path``
        (default ``<memory>/<id>``) is where it would lie; nothing is read from there. The arrays are
        private read-only copies.
        """
        meta = copy.deepcopy(meta)
        fid = meta.get("id") if isinstance(meta, Mapping) else None
        folder = Path(path) if path is not None else Path("<memory>") / str(fid)
        where = folder / YAML_NAME
        _check_meta(meta, where)
        from .schema import validate_meta
        validate_meta(meta, where)
        checked = {}
        for name, spec in meta["arrays"].items():
            if name not in arrays:
                raise FixtureError(where, f"fixture {meta['id']!r}: array {name!r} listed in its metadata is missing")
            checked[name] = check_array(where, meta["id"], name, spec, np.array(arrays[name]))
        extra = sorted(set(arrays) - set(meta["arrays"]))
        if extra:
            raise FixtureError(where, f"fixture {meta['id']!r}: arrays not listed in its metadata: {', '.join(extra)}")
        fixture = cls(folder, meta)
        fixture._arrays = MappingProxyType(checked)
        return fixture

    # -- metadata -------------------------------------------------------------
    id = property(lambda self: self.meta["id"])
    digest = property(lambda self: self.meta["digest"])
    layer = property(lambda self: self.meta["layer"])
    config = property(lambda self: self.meta["config"])
    gates = property(lambda self: self.meta["gates"])
    activations = property(lambda self: self.meta["activations"])
    tags = property(lambda self: tuple(self.meta.get("tags", ())))
    tolerance = property(lambda self: self.meta["tolerance"])
    description = property(lambda self: self.meta["description"])

    @property
    def citation(self) -> str:
        return f"{self.id}@{short_digest(self.digest)}"

    @property
    def weight_names(self) -> list[str]:
        return list(self.meta.get("weights", []))

    # -- arrays ---------------------------------------------------------------
    @property
    def arrays(self) -> Mapping[str, np.ndarray]:
        """Every array, checked; opening a fixture also checks its YAML against the JSON Schema.

        Listing only does the cheap checks (format, fields, id, digest), so collecting a
        thousand fixtures stays fast; no implementation sees a fixture that fails the schema.
        """
        if self._arrays is None:
            from .schema import validate_meta  # imports jsonschema on first use only
            validate_meta(self.meta, self.path / YAML_NAME)
            self._arrays = MappingProxyType(load_arrays(self.path, self.meta))
        return self._arrays

    def _select(self, names: Iterable[str]) -> Mapping[str, np.ndarray]:
        arrays = self.arrays
        return MappingProxyType({n: arrays[n] for n in names if n in arrays})

    @property
    def weights(self) -> Mapping[str, np.ndarray]:
        return self._select(self.weight_names)

    @property
    def inputs(self) -> Mapping[str, np.ndarray]:
        return self._select(self.meta["inputs"])

    @property
    def expected(self) -> Mapping[str, np.ndarray]:
        """Expected outputs. For diagnosis only: an implementation that reads this is cheating."""
        return self._select(self.meta["outputs"])

    @property
    def trace(self) -> Mapping[str, np.ndarray]:
        return MappingProxyType({k[len("trace/"):]: v for k, v in self.arrays.items()
                                 if k.startswith("trace/")})

    def isolated(self) -> "Fixture":
        """A private copy for one implementation call: fresh read-only arrays, a deep-copied ``meta``.

        Whatever an implementation does to what it is handed, the next one sees pristine data.
        """
        twin = Fixture(self.path, copy.deepcopy(self.meta))
        twin._arrays = MappingProxyType({k: _readonly(v.copy()) for k, v in self.arrays.items()})
        return twin

    # -- files ----------------------------------------------------------------
    def model_file(self) -> tuple[dict, bytes] | None:
        """The ``model_file`` entry and the file's bytes, checked present and against its sha256; None if none is listed.

        The one check of a fixture's model file: ``verify`` and the ``keras-load`` implementation both use it.
        """
        entry = self.meta.get("model_file")
        if not entry:
            return None
        listed = self.path / YAML_NAME
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise FixtureError(listed, f"fixture {self.id!r}: model_file must be a mapping with a name and a sha256")
        name = entry.get("name")
        if not isinstance(name, str) or not PLAIN_FILE_NAME.fullmatch(name):
            raise FixtureError(listed, f"fixture {self.id!r}: model_file name {name!r} is not a plain file name")
        where = self.path / name
        if where.is_symlink() or not where.is_file():
            raise FixtureError(where, f"fixture {self.id!r}: model file {name} is missing (or not a regular file)")
        data = where.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise FixtureError(where, f"fixture {self.id!r}: model file {name} does not match its sha256 "
                                      "(changed after generation)")
        return entry, data

    def model_path(self) -> Path | None:
        """A private scratch copy of the (sha256-checked) model file, in a temporary folder of its own.

        Converters read and sometimes write beside their input (unpacked archives, IR files); they
        get this copy, never the gallery's file. The folder is removed by ``release()``, which the
        suite calls after each case. None if the fixture lists no model file.
        """
        found = self.model_file()
        if found is None:
            return None
        entry, data = found
        return self.scratch_copy(entry["name"], data)

    def scratch_copy(self, name: str, data: bytes) -> Path:
        """``data`` written as ``name`` in a private temporary folder, removed by ``release()``."""
        folder = Path(tempfile.mkdtemp(prefix=f"lstm-conformance-{self.id[:40]}-"))
        self._scratch.append(folder)
        path = folder / name
        path.write_bytes(data)
        return path

    def release(self) -> None:
        """Remove the scratch folders ``model_path`` made for this copy."""
        while self._scratch:
            shutil.rmtree(self._scratch.pop(), ignore_errors=True)

    def verify_files(self) -> list[str]:
        """Check every file fixture.yaml lists: each array in ``arrays.npz`` and the model file, if any.

        Listing checks only the YAML; this is what ``verify`` adds. Returns the names of the files
        checked; raises FixtureError naming the first bad one.
        """
        self.arrays  # noqa: B018 - shape, dtype, sha256 of every array (cached after the first check)
        model = self.model_file()
        return [ARRAYS_NAME, *([model[0]["name"]] if model else [])]

    def __repr__(self) -> str:
        return f"<Fixture {self.citation} {self.layer}>"


def needed_version(meta: Mapping) -> tuple[int, str | None]:
    """The lowest format_version that describes a fixture, and what in it needs more than format 1 (SPEC 2.2).

    Format 2 adds ``calls`` on a Bidirectional or a Stacked (stateful wrappers), the ConvLSTM3D layer and a
    Model (``layer: Model``, SPEC 5.15). A
    format-1 reader must refuse those (it reads format_version 1 only) rather than run them as it knows
    how: every other fixture stays format 1, so its digest and citation never change.
    """
    layer, config = meta.get("layer"), meta.get("config")
    if layer == "Model":
        return 2, "a Model"
    if meta.get("calls") and layer in ("Bidirectional", "Stacked"):
        return 2, f"calls on a {layer} (a stateful wrapper)"
    config = config if isinstance(config, Mapping) else {}
    subs = [sub.get("layer") for sub in config.get("layers", ()) if isinstance(sub, Mapping)] \
        if isinstance(config.get("layers"), list) else []
    if "ConvLSTM3D" in (layer, config.get("wrapped"), *subs):
        return 2, "a ConvLSTM3D layer"
    return 1, None


def _check_meta(meta, where: Path) -> dict:
    if not isinstance(meta, dict):
        raise FixtureError(where, f"expected a mapping at the top level, got {type(meta).__name__}")
    version = meta.get("format_version")
    if type(version) is not int or version not in FORMAT_VERSIONS:
        raise FixtureError(where, f"unknown format_version {version!r} (this loader reads "
                                  f"{' and '.join(map(str, FORMAT_VERSIONS))})")
    needed, feature = needed_version(meta)
    if version < needed:
        raise FixtureError(where, f"format_version {version} does not describe {feature}; a fixture with it is "
                                  f"format_version {needed} (SPEC 2.2)")
    missing = [f for f in REQUIRED_FIELDS if f not in meta]
    if missing:
        raise FixtureError(where, f"missing required field(s): {', '.join(missing)}")
    fid = meta["id"]
    if not isinstance(fid, str) or not SAFE_ID.fullmatch(fid):  # fullmatch: `$` would allow a final newline
        raise FixtureError(where, f"id {fid!r} is not a safe folder name (allowed: {SAFE_ID.pattern})")
    if fid != where.parent.name:
        raise FixtureError(where, f"id {fid!r} does not match its folder name {where.parent.name!r}")
    if not isinstance(meta["arrays"], dict) or not all(isinstance(v, dict) for v in meta["arrays"].values()):
        raise FixtureError(where, "field 'arrays' must map array names to {shape, dtype, sha256}")
    try:
        actual = compute_digest(meta)
    except (TypeError, ValueError) as exc:  # e.g. a `true:` or `1:` key, a YAML date: not JSON data
        raise FixtureError(where, f"not plain JSON data (string keys, no dates or other YAML types): {exc}") from None
    if meta["digest"] != actual:
        raise FixtureError(where, f"digest mismatch: the file says {meta['digest']}, its content hashes to {actual}"
                                  " (the fixture was edited after generation)")
    _check_declared(meta, where)
    return meta


def allowed_dtypes(name: str, meta: Mapping | None = None) -> tuple[str, ...]:
    """The dtypes array ``name`` may have: bool for a mask (``mask``, ``forward/mask``...), a float otherwise;
    an input of a Model (token ids for its Embedding, SPEC 5.15) may also be int32."""
    if name.rpartition("/")[2] == "mask":
        return MASK_DTYPES
    if meta is not None and meta.get("layer") == "Model" and name in (meta.get("inputs") or ()):
        return (*VALUE_DTYPES, *TOKEN_DTYPES)
    return VALUE_DTYPES


def declared_bytes(spec) -> int | None:
    """Elements x itemsize as fixture.yaml declares them; None when the shape is malformed (the schema says why)."""
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return None
    return math.prod(shape) * np.dtype(spec["dtype"]).itemsize


def _check_declared(meta: Mapping, where: Path) -> None:
    """Every array's declared dtype is one a fixture may use, and its declared size is under the caps (SPEC 13.3).

    Checked when listing, from the YAML alone, so a small folder declaring gigabytes is refused before a byte
    of its arrays is read or allocated.
    """
    fid, total = meta["id"], 0
    for name, spec in meta["arrays"].items():
        allowed = allowed_dtypes(str(name), meta)
        if spec.get("dtype") not in allowed:
            kind = "a mask" if allowed == MASK_DTYPES else "an array other than a mask"
            raise FixtureError(where, f"fixture {fid!r}: array {name!r} has dtype {spec.get('dtype')!r}; "
                                      f"{kind} must be {' or '.join(allowed)} (SPEC 3.2)")
        size = declared_bytes(spec)
        if size is None:
            continue
        if size > MAX_ARRAY_BYTES:
            raise FixtureError(where, f"fixture {fid!r}: array {name!r} declares {size} bytes (shape {spec['shape']}, "
                                      f"{spec['dtype']}), over the {MAX_ARRAY_BYTES}-byte limit per array; refused "
                                      "before reading it")
        total += size
    if total > MAX_FIXTURE_BYTES:
        raise FixtureError(where, f"fixture {fid!r}: its arrays declare {total} bytes in all, over the "
                                  f"{MAX_FIXTURE_BYTES}-byte limit per fixture; refused before reading them")


def _scan_events(raw: bytes, where: Path) -> None:
    """Refuse aliases (YAML bombs) and deep nesting before anything is built.

    PyYAML's pure-Python parser slows down sharply with flow nesting (seconds for a
    thousand ``[``, hours for the depth 1 MiB allows), so the scan stops at the first
    level too deep; libyaml stops at depth 1000 on its own and stays fast.
    """
    depth = 0
    for event in yaml.parse(raw, Loader=SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise FixtureError(where, f"YAML aliases are not allowed in {Path(where).name} (they allow YAML bombs)")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise FixtureError(where, f"YAML nests deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _depth(value) -> int:
    """Nesting depth of lists and mappings, without recursion (stops counting past the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_YAML_DEPTH:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_safe_yaml(where: Path):
    """Parse one YAML file of the gallery with the rules of fixture.yaml (SPEC 2.1): a regular file, not a
    link; at most 1 MiB; a safe loader; no aliases; bounded nesting. FixtureError naming the file otherwise."""
    where = Path(where)
    if where.is_symlink():
        raise FixtureError(where, f"{where.name} is a symbolic link; refused (a fixture's files must be regular files)")
    if not where.is_file():
        raise FixtureError(where, f"no {where.name} (or it is not a regular file)")
    raw = where.read_bytes()
    if len(raw) > MAX_YAML_BYTES:
        raise FixtureError(where, f"{where.name} is {len(raw)} bytes, over the {MAX_YAML_BYTES}-byte limit")
    try:
        if b"*" in raw or SAFE_LOADER is yaml.SafeLoader:
            _scan_events(raw, where)
        data = yaml.load(raw, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader: SafeConstructor, libyaml parser
    except yaml.YAMLError as exc:  # one line, but with the reason and position (libyaml splits them)
        raise FixtureError(where, "not valid safe YAML: " + " ".join(str(exc).split())) from None
    except RecursionError:
        raise FixtureError(where, "YAML nests too deeply") from None
    except Exception as exc:  # noqa: BLE001 - e.g. ValueError for a 5000-digit integer: this file's error only
        reason = " ".join(str(exc).split())
        raise FixtureError(where, f"not valid safe YAML: {type(exc).__name__}: {reason[:300]}") from None
    if _depth(data) > MAX_YAML_DEPTH:  # libyaml allows 1000 levels: too deep for json, jsonschema, deepcopy
        raise FixtureError(where, f"YAML nests deeper than {MAX_YAML_DEPTH} levels")
    return data


def read_meta(folder: Path) -> dict:
    """Parse and validate ``fixture.yaml`` of one fixture folder, with safe YAML only."""
    where = Path(folder) / YAML_NAME
    return _check_meta(read_safe_yaml(where), where)


def _npy_size_limit(spec) -> int:
    """The most bytes an ``.npy`` member may inflate to: its data per fixture.yaml plus a header."""
    try:
        return declared_bytes(spec) + NPY_HEADER_LIMIT
    except Exception:  # noqa: BLE001 - a malformed spec: only a header's worth, and the checks below say why
        return NPY_HEADER_LIMIT


def load_arrays(folder: Path, meta: Mapping) -> dict[str, np.ndarray]:
    """Load ``arrays.npz`` and check every array against the YAML's shape, dtype and sha256."""
    where = Path(folder) / ARRAYS_NAME
    if where.is_symlink():
        raise FixtureError(where, f"fixture {meta['id']!r}: arrays.npz is a symbolic link; refused "
                                  "(a fixture's files must be regular files)")
    if not where.is_file():
        raise FixtureError(where, f"fixture {meta['id']!r}: arrays.npz is missing (or not a regular file)")
    arrays = {}
    try:
        with zipfile.ZipFile(where) as archive:
            infos = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
            for name, spec in meta["arrays"].items():
                if name not in infos:
                    raise FixtureError(where, f"fixture {meta['id']!r}: array {name!r} listed in fixture.yaml is missing")
                arrays[name] = check_array(where, meta["id"], name, spec, _read_npy(archive, infos[name], where,
                                                                                      meta["id"], name, spec))
    except FixtureError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2 and lzma raise many kinds for a corrupt archive
        raise FixtureError(where, f"fixture {meta['id']!r}: not a readable npz archive "
                                  f"({type(exc).__name__}: {exc})") from None
    extra = sorted(set(infos) - set(meta["arrays"]))
    if extra:
        raise FixtureError(where, f"fixture {meta['id']!r}: arrays not listed in fixture.yaml: {', '.join(extra)}")
    return arrays


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: Path, fid: str, name: str,
              spec: Mapping) -> np.ndarray:
    """One ``.npy`` member read straight into its array: its header is checked against fixture.yaml first, the
    data is copied in chunks, so loading holds one copy of the array, never the member's bytes besides it.

    A member whose zip header says it inflates past what the YAML declares is refused unread (zipfile never
    inflates past that size: a header that lies fails its CRC).
    """
    corrupt = f"fixture {fid!r}: array {name!r} is corrupt"
    limit = _npy_size_limit(spec)
    if info.file_size > limit:
        raise FixtureError(where, f"fixture {fid!r}: array {name!r} inflates to more than {limit} bytes, more "
                                  "than its shape and dtype in fixture.yaml need (a zip bomb?); refused")
    with archive.open(info) as stream:
        head = stream.read(min(info.file_size, NPY_HEADER_LIMIT))
        if not head.startswith(NPY_MAGIC):  # np.load would take it for a pickle
            raise FixtureError(where, f"{corrupt} (not .npy data)")
        header = io.BytesIO(head)
        try:
            version = np.lib.format.read_magic(header)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            shape, fortran, dtype = read(header, max_header_size=NPY_HEADER_LIMIT)
        except Exception as exc:  # noqa: BLE001 - numpy raises several kinds for a corrupt header
            raise FixtureError(where, f"{corrupt} ({' '.join(str(exc).split())})") from None
        if dtype.hasobject:
            raise FixtureError(where, f"fixture {fid!r}: array {name!r} is an object (pickled) array;"
                                      " refused, never unpickled")
        _check_kind(where, fid, name, spec, shape, dtype)  # before allocating: the header may claim anything
        flat = np.empty(math.prod(shape), dtype)
        target, data = flat.view(np.uint8), head[header.tell():]
        filled = min(len(data), target.size)
        target[:filled] = np.frombuffer(data, np.uint8, filled)
        while filled < target.size:
            chunk = stream.read(min(READ_CHUNK, target.size - filled))
            if not chunk:
                raise FixtureError(where, f"{corrupt} (EOF: {target.size} data bytes expected, {filled} found)")
            target[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
            filled += len(chunk)
        stream.read()  # the rest, at most a header's worth: reading to the end makes zipfile check the CRC
    array = flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
    return np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))  # a copy only for Fortran order or byte swaps


def _check_kind(where, fid: str, name: str, spec: Mapping, shape, dtype: np.dtype) -> None:
    if list(shape) != list(spec.get("shape", [])):
        raise FixtureError(where, f"fixture {fid!r}: array {name!r} has shape {list(shape)},"
                                  f" fixture.yaml says {spec.get('shape')}")
    if dtype.name != spec.get("dtype"):
        raise FixtureError(where, f"fixture {fid!r}: array {name!r} has dtype {dtype.name},"
                                  f" fixture.yaml says {spec.get('dtype')}")


def check_array(where, fid: str, name: str, spec: Mapping, array: np.ndarray) -> np.ndarray:
    """``array`` read-only, if it has the shape, dtype and sha256 the metadata lists and is finite."""
    _check_kind(where, fid, name, spec, array.shape, array.dtype)
    if array_sha256(array) != spec.get("sha256"):
        raise FixtureError(where, f"fixture {fid!r}: array {name!r} does not match its sha256"
                                  " (the data was changed after generation)")
    # min and max are NaN or infinite exactly when an element is: no temporary mask as large as the array
    if array.dtype.kind == "f" and array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise FixtureError(where, f"fixture {fid!r}: array {name!r} contains NaN or Inf")
    return _readonly(array)


def load_fixture(folder: Path) -> Fixture:
    """The fixture in ``folder``; its path is made absolute here, so a later ``os.chdir`` (a plug-in's) cannot
    make its lazily loaded arrays or model file point elsewhere. Not resolved: a link keeps its name."""
    folder = Path(os.path.abspath(folder))
    return Fixture(folder, read_meta(folder))


class Listing:
    """The result of scanning a fixtures folder: good fixtures and per-folder errors."""

    def __init__(self, root: Path, fixtures: list[Fixture], errors: list[FixtureError]):
        self.root, self.fixtures, self.errors = root, fixtures, errors

    @property
    def set_digest(self) -> str:
        """sha256 over the sorted ``id@digest`` lines: names the whole fixture set in a report header."""
        lines = "\n".join(sorted(f"{f.id}@{f.digest}" for f in self.fixtures))
        return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def list_fixtures(root: Path | None = None) -> Listing:
    """Scan ``root`` (default: the shipped gallery). A broken fixture becomes an error entry, not a crash."""
    root = Path(root) if root is not None else gallery_dir()
    if not root.is_dir():
        raise FixtureError(root, "fixtures folder does not exist")
    resolved_root = root.resolve()
    fixtures, errors = [], []
    for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            continue
        if folder.is_symlink() and not folder.resolve().is_relative_to(resolved_root):
            errors.append(FixtureError(folder, "symlink points outside the fixtures folder; refused"))
            continue
        try:
            fixtures.append(load_fixture(folder))
        except FixtureError as exc:
            errors.append(exc)
    return Listing(root, fixtures, errors)


def select(fixtures: Iterable[Fixture], patterns: Iterable[str] = (), tags: Iterable[str] = ()) -> list[Fixture]:
    """Fixtures whose id matches any glob in ``patterns`` (all if none) and that carry every tag (either
    spelling: ``mask_trailing`` is ``mask-trailing``, ``conformance/tags.py``)."""
    from .tags import canonical
    patterns, wanted = list(patterns), {canonical(t) or t for t in tags}
    return [f for f in fixtures
            if (not patterns or any(fnmatch.fnmatchcase(f.id, p) for p in patterns))
            and wanted <= set(f.tags)]


def resolve_citation(fixtures: Iterable[Fixture], citation: str) -> Fixture:
    """Find ``id``, ``id@sha256:PREFIX`` or ``id@PREFIX`` (the bare hex people paste); PREFIX is any number
    of leading hex digits of the digest. A digest that does not match is an error, not a guess."""
    fid, at, cited = citation.partition("@")
    prefix = re.fullmatch(r"(?:sha256:)?([0-9a-fA-F]{1,64})", cited)
    if at and not prefix:
        raise FixtureError(fid, f"cited digest {cited!r} is not a digest: cite as {fid}@sha256:<hex digits> "
                                f"or {fid}@<hex digits>")
    for fixture in fixtures:
        if fixture.id == fid:
            if prefix and not fixture.digest.startswith("sha256:" + prefix.group(1).lower()):
                raise FixtureError(fid, f"cited digest {cited} does not match this gallery's "
                                        f"{short_digest(fixture.digest)} (the cited fixture has other content)")
            return fixture
    raise FixtureError(fid, "no fixture with this id")
