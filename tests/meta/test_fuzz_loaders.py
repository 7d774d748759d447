"""Fuzz the YAML and npz loaders: every input gives a valid load or a FixtureError, quickly; nothing else.

Deterministic (``derandomize=True``) and bounded, so the suite stays fast and repeatable.
Mutations start from a real fixture, where the interesting bugs live (a valid zip with a
broken member, YAML one character away from valid), as well as from random bytes.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from conformance.errors import FixtureError
from conformance.fixtures import ARRAYS_NAME, YAML_NAME, load_arrays, read_meta

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SECONDS = 2.0  # per input: no hang
YAML_TOKENS = [b"&a ", b"*a", b"!!python/object/apply:os.system [ls]", b"!!binary ", b"[", b"]", b"{", b"}",
               b": ", b"- ", b"\t", b"\n", b"'", b'"', b"%YAML 1.1\n", b"---\n", b"...\n", b"\x00", b"\xff",
               b"? ", b"|\n", b">-\n", b"!!float .nan", b"2001-12-14", b"<<: ", b"#", b"\\u0000", b"1e400"]


@pytest.fixture(scope="module")
def pristine():
    """A real fixture copied to a private folder, and its original files and metadata."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = hostile.copy_fixture(Path(tmp), hostile.SOURCE)
        yield folder, {"yaml": (folder / YAML_NAME).read_bytes(), "npz": (folder / ARRAYS_NAME).read_bytes(),
                       "members": hostile.npy_members(folder), "meta": read_meta(folder)}


@pytest.fixture
def folder(pristine):
    """The fixture folder, both files restored: each example then overwrites one of them."""
    folder, originals = pristine
    (folder / YAML_NAME).write_bytes(originals["yaml"])
    (folder / ARRAYS_NAME).write_bytes(originals["npz"])
    return folder


@pytest.fixture
def originals(pristine):
    return pristine[1]


def _valid_or_fixture_error(call):
    """Run ``call``; only a result or a FixtureError may come out, within SECONDS."""
    started = time.perf_counter()
    try:
        result = call()
    except FixtureError as exc:
        assert str(exc) and exc.where, "a FixtureError must say where and what"
        result = None
    assert time.perf_counter() - started < SECONDS
    return result


@st.composite
def mutated(draw, original: bytes, tokens=()):
    """``original`` with a few random edits: flips, deletions, insertions (of tokens), truncation."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at: at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(tokens)) if tokens and draw(st.booleans()) else draw(st.binary(min_size=1, max_size=16))
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at: at + draw(st.integers(1, 200))]
    return bytes(data)


def _read_yaml(folder, data: bytes):
    (folder / YAML_NAME).write_bytes(data)
    return _valid_or_fixture_error(lambda: read_meta(folder))


@FUZZ
@given(data=st.binary(max_size=2048))
def test_read_meta_random_bytes(folder, data):
    assert _read_yaml(folder, data) is None  # random bytes are never a valid fixture (digest)


@FUZZ
@given(data=st.data())
def test_read_meta_mutated_yaml(folder, originals, data):
    text = data.draw(mutated(originals["yaml"], YAML_TOKENS))
    meta = _read_yaml(folder, text)
    if meta is not None:  # a harmless edit (whitespace, a comment): it must still be the same fixture
        assert meta == originals["meta"]


def _load(folder, originals, npz: bytes):
    (folder / ARRAYS_NAME).write_bytes(npz)
    return _valid_or_fixture_error(lambda: load_arrays(folder, originals["meta"]))


def _deflated(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_load_arrays_mutated_npz_bytes(folder, originals, data):
    """Raw byte edits of the archive, stored (as written) or deflated (zlib's errors too)."""
    base = originals["npz"] if data.draw(st.booleans()) else _deflated(originals["members"])
    arrays = _load(folder, originals, data.draw(mutated(base)))
    if arrays is not None:  # only possible if the edit missed every checked byte
        assert set(arrays) == set(originals["meta"]["arrays"])


@FUZZ
@given(data=st.data())
def test_load_arrays_mutated_npy_members(folder, originals, data):
    """A valid zip (right CRCs) whose ``.npy`` members were mutated: exercises numpy's parser, not zipfile's."""
    members = dict(originals["members"])
    for name in data.draw(st.lists(st.sampled_from(sorted(members)), min_size=1, max_size=3, unique=True)):
        members[name] = data.draw(mutated(members[name], [b"|O", b"'descr': '|O'", b"(9999999999,)",
                                                         b"'fortran_order': True", b"<f8", b"\x00" * 8]))
    if data.draw(st.booleans()):
        members[data.draw(st.sampled_from(["extra.npy", "../escape.npy", "kernel.npy.npy", "dir/"]))] = b"\x93NUMPY"
    buffer = io.BytesIO()
    compression = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    arrays = _load(folder, originals, buffer.getvalue())
    if arrays is not None:
        assert set(arrays) == set(originals["meta"]["arrays"])
