"""Write fixtures byte-for-byte reproducibly and atomically.

Used by ``generate_fixtures.py``; kept in the package (numpy + pyyaml only) so a
user can write fixtures of their own in the same format.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import yaml

from .fixtures import ARRAYS_NAME, YAML_NAME, array_sha256, compute_digest, needed_version

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamp: the same arrays give the same bytes


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (stored, sorted, fixed timestamps) that ``np.load`` reads."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def array_entries(arrays: Mapping[str, np.ndarray]) -> dict:
    return {name: {"shape": list(a.shape), "dtype": a.dtype.name, "sha256": array_sha256(a)}
            for name, a in sorted(arrays.items())}


def finish_meta(meta: Mapping, arrays: Mapping[str, np.ndarray]) -> dict:
    """Add ``format_version``, the ``arrays`` table and the ``digest`` to a fixture's metadata."""
    full = {"format_version": needed_version(meta)[0], **meta, "arrays": array_entries(arrays)}
    full.pop("digest", None)
    full["digest"] = compute_digest(full)
    return full


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated values out in full: the loader refuses aliases (they enable YAML bombs)."""

    def ignore_aliases(self, data):
        return True


def yaml_text(meta: Mapping, width: int = 100) -> str:
    return yaml.dump(dict(meta), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=None,
                     width=width, allow_unicode=False)


def write_fixture(root: Path, meta: Mapping, arrays: Mapping[str, np.ndarray],
                  files: Mapping[str, bytes] | None = None, keep: Iterable[str] = ()) -> Path:
    """Write ``root/<id>/`` atomically: build in a temporary sibling folder, then swap it in.

    An interrupted run leaves either the old fixture or the new one, never half of each.
    ``files``: extra files by plain name (a saved model), listed with their sha256 in ``meta``.
    ``keep``: plain names of files in the old folder that no digest covers but something else lists (the
    Keras 2 ``model.h5``, in keras2-h5.yaml), carried into the new folder; the swap would delete them.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / meta["id"]
    staging = Path(tempfile.mkdtemp(prefix=f".{meta['id']}.", dir=root))
    try:
        (staging / ARRAYS_NAME).write_bytes(npz_bytes(arrays))
        (staging / YAML_NAME).write_text(yaml_text(meta), encoding="ascii")
        for name, data in (files or {}).items():
            if Path(name).name != name or name in (ARRAYS_NAME, YAML_NAME) or name.startswith("."):
                raise ValueError(f"fixture {meta['id']!r}: extra file name {name!r} is not a plain new file name")
            (staging / name).write_bytes(data)
        for name in keep:
            old = target / name
            if Path(name).name == name and not (staging / name).exists() and old.is_file() and not old.is_symlink():
                shutil.copy2(old, staging / name)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{meta['id']}.old.", dir=root))
            os.replace(target, retired / "x")
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(retired / "x", target)  # put the old fixture back: a failed swap loses nothing
                retired.rmdir()
                raise
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
