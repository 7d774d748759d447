"""JSON export: every gallery fixture round-trips bit for bit, and the bytes are deterministic."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from conformance import FixtureError, list_fixtures
from conformance.export import (array_from_json, array_to_json, dumps, export_json, fixture_from_json,
                                fixture_to_json)


@pytest.fixture(scope="module")
def gallery():
    listing = list_fixtures()
    assert listing.fixtures and not listing.errors, listing.errors
    return listing.fixtures


@pytest.fixture(scope="module")
def exported(gallery, tmp_path_factory):
    out = tmp_path_factory.mktemp("json")
    return out, export_json(gallery, out)


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bit patterns: distinguishes -0.0 from 0.0, unlike ==."""
    return array.view(np.uint32) if array.dtype == np.float32 else array


def test_one_file_per_fixture(gallery, exported):
    out, paths = exported
    assert [p.name for p in paths] == [f"{f.id}.json" for f in gallery]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_round_trip_is_bit_exact(gallery, exported):
    _, paths = exported
    for fixture, path in zip(gallery, paths):
        back = fixture_from_json(path)  # also verifies each array's sha256 from the YAML
        assert back.meta == fixture.meta, f"{fixture.id}: metadata changed in the round trip"
        assert sorted(back.arrays) == sorted(fixture.arrays), f"{fixture.id}: arrays missing after export"
        for name, want in fixture.arrays.items():
            got = back.arrays[name]
            assert got.dtype == want.dtype and got.shape == want.shape, f"{fixture.id}/{name}"
            assert np.array_equal(bits(got), bits(want)), f"{fixture.id}/{name}: values changed in the round trip"


def test_every_value_text_round_trips_float32(gallery):
    """The documented encoding: repr of the exactly widened float64 reads back to the same float32 bits."""
    checked = 0
    for fixture in gallery:
        for name, array in fixture.arrays.items():
            if array.dtype != np.float32:
                continue
            texts = [repr(float(np.float32(v))) for v in array.ravel()]
            back = np.array([float(t) for t in texts], np.float64).astype(np.float32)
            assert np.array_equal(bits(back), bits(array.ravel())), f"{fixture.id}/{name}"
            checked += len(texts)
    assert checked > 10_000


def test_masks_are_json_booleans(gallery):
    masked = [f for f in gallery if "mask" in f.arrays]
    assert masked, "the gallery should have masked fixtures"
    for fixture in masked:
        entry = fixture_to_json(fixture)["arrays"]["mask"]
        flat = np.array(entry["data"], dtype=object).ravel()
        assert entry["dtype"] == "bool" and all(isinstance(v, bool) for v in flat), fixture.id
        assert entry["shape"] == list(fixture.arrays["mask"].shape)


def test_bytes_are_deterministic(gallery, exported, tmp_path):
    _, first = exported
    reloaded = list_fixtures().fixtures  # fresh objects, freshly loaded arrays
    second = export_json(reloaded, tmp_path)
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: two exports differ"
    text = first[0].read_text()
    assert text == dumps(json.loads(text)), "the export is not in canonical form (sorted keys, compact)"


def test_a_changed_value_is_caught(exported, tmp_path):
    """The reader checks sha256, so the round-trip test above cannot pass on silently altered data."""
    _, paths = exported
    document = json.loads(paths[0].read_text())
    name = next(n for n, a in sorted(document["arrays"].items()) if a["dtype"] == "float32")
    row = document["arrays"][name]["data"]
    while isinstance(row[0], list):
        row = row[0]
    row[0] = float(np.nextafter(np.float32(row[0]), np.float32(np.inf)))  # one ulp up
    tampered = tmp_path / paths[0].name
    tampered.write_text(json.dumps(document))
    with pytest.raises(FixtureError, match=f"'{name}' does not match"):
        fixture_from_json(tampered)


def test_negative_zero_and_extremes_survive():
    values = np.array([-0.0, 0.0, np.finfo(np.float32).tiny, np.finfo(np.float32).max,
                       np.float32(1) / np.float32(3), -np.finfo(np.float32).smallest_subnormal], np.float32)
    text = json.dumps(array_to_json(values))
    assert np.array_equal(bits(array_from_json(json.loads(text))), bits(values))


@pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed")
def test_javascript_reads_the_same_float32_bits(gallery, exported):
    """Another language's JSON parser gives the same float32 bit patterns (Math.fround is exact on them)."""
    out, paths = exported
    script = r"""
const fs = require('fs');
const flat = (d) => (Array.isArray(d) ? d.flatMap(flat) : [d]);
const result = {};
for (const file of process.argv.slice(1)) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const [name, a] of Object.entries(doc.arrays)) {
    if (a.dtype !== 'float32') continue;
    const values = flat(a.data);
    if (values.some((v) => Math.fround(v) !== v)) throw new Error(`${file} ${name}: not exactly float32`);
    result[`${doc.meta.id}/${name}`] = Array.from(new Uint32Array(Float32Array.from(values).buffer));
  }
}
process.stdout.write(JSON.stringify(result));
"""
    done = subprocess.run(["node", "-e", script, *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from_js = json.loads(done.stdout)
    for fixture in gallery:
        for name, array in fixture.arrays.items():
            if array.dtype == np.float32:
                assert from_js[f"{fixture.id}/{name}"] == bits(array).ravel().tolist(), f"{fixture.id}/{name}"
