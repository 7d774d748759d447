"""Fixtures as plain JSON, so an engine in any language can read the gallery without numpy.

One document per fixture::

    {"json_format": 1,
     "meta": {...the whole fixture.yaml...},
     "arrays": {"kernel": {"shape": [3, 16], "dtype": "float32", "data": [[...], ...]}, ...}}

Float encoding: each float32 (or float16, float64) value is widened exactly to float64 and written
as Python's shortest float64 repr (``repr(float(np.float32(v)))``, e.g. ``0.10000000149011612``).
Any correct JSON reader parses that text to the same float64, which converts back to the
array's dtype without rounding, so values round-trip bit for bit (signed zeros included). Fixtures hold
no NaN or Inf (the loader refuses them). Masks are ``true``/``false``; token ids (int32) are integers. Keys are sorted and
separators fixed, so the same fixture always gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from .. import outdir
from ..errors import FixtureError
from .fixtures import Fixture, array_sha256
from ..outdir import OutDirError

JSON_FORMAT = 1
DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "bool": np.bool_,
          "int32": np.int32}   # int32: a Model's token ids (SPEC 5.15), written as JSON integers


def array_to_json(array: np.ndarray) -> dict:
    """``{"shape", "dtype", "data"}`` with nested lists; floats widened exactly to float64."""
    array = np.asarray(array)
    if array.dtype.name not in DTYPES:
        raise TypeError(f"cannot export dtype {array.dtype.name} (supported: {', '.join(DTYPES)})")
    data = array.tolist() if array.dtype in (np.bool_, np.int32) else array.astype(np.float64).tolist()
    return {"shape": list(array.shape), "dtype": array.dtype.name, "data": data}


def array_from_json(entry, where: str = "array") -> np.ndarray:
    """The inverse of ``array_to_json``; ``null`` reads as NaN (JavaScript writes NaN as null).

    ``dtype`` defaults to float32. Raises ValueError naming ``where`` for a malformed entry.
    """
    if not isinstance(entry, Mapping) or "data" not in entry:
        raise ValueError(f"{where}: expected an object with 'shape', 'data' and optional 'dtype', "
                         f"got {_preview(entry)}")
    dtype_name = entry.get("dtype", "float32")
    if dtype_name not in DTYPES:
        raise ValueError(f"{where}: unknown dtype {dtype_name!r} (allowed: {', '.join(DTYPES)})")
    try:
        if dtype_name == "bool":
            array = np.array(entry["data"], dtype=object)
            if not all(isinstance(v, bool) for v in array.ravel()):
                raise ValueError("bool data must be true/false")
            array = array.astype(np.bool_)
        elif dtype_name == "int32":
            array = np.array(entry["data"], dtype=object)
            if not all(type(v) is int and -2**31 <= v < 2**31 for v in array.ravel()):
                raise ValueError("int32 data must be integers in the int32 range")
            array = array.astype(np.int32)
        else:
            array = np.array(_nulls_to_nan(entry["data"]), dtype=np.float64)
            array = array.astype(DTYPES[dtype_name])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: 'data' is not a rectangular nested list of {dtype_name} ({exc})") from None
    shape = entry.get("shape")
    if shape is not None and list(array.shape) != list(shape):
        raise ValueError(f"{where}: 'data' has shape {list(array.shape)}, but 'shape' says {shape}")
    return array


def _nulls_to_nan(data):
    if isinstance(data, list):
        return [_nulls_to_nan(v) for v in data]
    if data is None:
        return float("nan")
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        raise TypeError(f"{data!r} is not a number")
    return data


def _preview(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def fixture_to_json(fixture: Fixture, names: Iterable[str] | None = None) -> dict:
    """The JSON document of one fixture: all arrays, or only ``names`` (the protocol sends no answers)."""
    arrays = fixture.arrays
    chosen = sorted(arrays) if names is None else sorted(n for n in names if n in arrays)
    return {"json_format": JSON_FORMAT, "meta": _plain(fixture.meta),
            "arrays": {name: array_to_json(arrays[name]) for name in chosen}}


def _plain(value):
    """Mappings (including read-only proxies) and tuples as plain dicts and lists, for json.dumps."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def dumps(document: Mapping) -> str:
    """Canonical text: sorted keys, compact separators, ASCII, a final newline; NaN is refused."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"


ExportTargetError = OutDirError  # the export's folder is a file, or a non-empty folder without ``force``
EXPORT_REPLACED = "files named <id>.json are replaced, everything else is left as it is"


def check_out_dir(out_dir, force: bool = False) -> None:
    """``lstm-conformance export``'s rule (``outdir.check_out_dir``): a new or empty folder, or any folder
    with ``force``; never a file."""
    outdir.check_out_dir(out_dir, force, "export", EXPORT_REPLACED)


def export_json(fixtures: Iterable[Fixture], out_dir) -> list[Path]:
    """Write ``<out_dir>/<id>.json`` for each fixture (replacing those names); returns the paths written, in order."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fixture in fixtures:
        target = out_dir / f"{fixture.id}.json"
        staging = target.with_name(f".{target.name}.tmp")
        staging.write_text(dumps(fixture_to_json(fixture)), encoding="ascii")
        staging.replace(target)
        written.append(target)
    return written


def fixture_from_json(path) -> Fixture:
    """Read an exported document back into a ``Fixture`` whose arrays are checked against the YAML's sha256.

    Proves the round trip: an array that changed by one bit fails its sha256.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FixtureError(path, f"not a readable JSON document ({exc})") from None
    if not isinstance(document, dict) or document.get("json_format") != JSON_FORMAT:
        raise FixtureError(path, f"not an lstm-conformance JSON document (json_format {JSON_FORMAT} expected)")
    meta = document["meta"]
    arrays = {}
    for name, entry in document["arrays"].items():
        try:
            array = array_from_json(entry, f"array {name!r}")
        except ValueError as exc:
            raise FixtureError(path, str(exc)) from None
        spec = meta["arrays"].get(name, {})
        if array.dtype.name != spec.get("dtype") or array_sha256(array) != spec.get("sha256"):
            raise FixtureError(path, f"array {name!r} does not match the dtype/sha256 in its metadata")
        array.setflags(write=False)
        arrays[name] = array
    fixture = Fixture(path.parent / meta["id"], meta)
    fixture._arrays = MappingProxyType(arrays)
    return fixture
