"""The Keras 2 model files' manifest (``fixtures/keras2-h5.yaml``): bound to fixture digests, sha256-checked,
confined to each fixture's folder; a bad entry is an error of that fixture's case only.

Every test works on a copy of real gallery folders and the real manifest (no Keras is imported:
the checks come before any load). ``keras-load-h5`` is judged through the suite's own ``judge``.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from conformance import NotApplicable, registry
from conformance.adapters import keras_load_h5
from conformance.errors import FixtureError
from conformance.fixtures import list_fixtures
from conformance.legacy import (MANIFEST_NAME, SELECTION, entry_for, h5_file, ineligible, read_manifest,
                                read_selection)
from conformance.suite import Case, judge

from helpers.repo import REPO

LISTED = ("lstm-seed-question", "gru-reset-before-basic")
UNLISTED = "lstm-basic"
SIZE_LIMIT = 400_000  # bytes: the whole set of .h5 files (issue 14)


@pytest.fixture
def gallery(tmp_path):
    """Three real fixture folders (two with a Keras 2 file) and the real manifest, cut to those two."""
    for fid in (*LISTED, UNLISTED):
        shutil.copytree(REPO / "fixtures" / fid, tmp_path / fid)
    manifest = yaml.safe_load((REPO / "fixtures" / MANIFEST_NAME).read_text())
    manifest["fixtures"] = {k: v for k, v in manifest["fixtures"].items() if k in LISTED}
    write(tmp_path, manifest)
    return tmp_path


def write(root, manifest) -> None:
    (root / MANIFEST_NAME).write_text(yaml.safe_dump(manifest, sort_keys=False))


def edit(root, fid, **changes):
    manifest = yaml.safe_load((root / MANIFEST_NAME).read_text())
    manifest["fixtures"][fid].update(changes)
    write(root, manifest)


def fixture(root, fid):
    return next(f for f in list_fixtures(root).fixtures if f.id == fid)


IMPL = registry.Implementation("keras-load-h5", "conformance.adapters.keras_load_h5:run",
                               _loader=lambda: keras_load_h5.run)


# -- the shipped gallery -------------------------------------------------------------------------

def test_every_listed_file_is_bound_to_its_fixture_and_matches_its_sha256():
    listing = list_fixtures(REPO / "fixtures")
    manifest = read_manifest(REPO / "fixtures")
    by_id = {f.id: f for f in listing.fixtures}
    assert set(manifest) <= set(by_id), f"manifest lists unknown fixtures: {sorted(set(manifest) - set(by_id))}"
    for fid in manifest:
        entry, data = h5_file(by_id[fid])  # raises, naming the fixture, if stale or tampered
        assert entry["file"] == f"{fid}/model.h5" and data[:8] == b"\x89HDF\r\n\x1a\n", fid


def test_the_manifest_lists_exactly_the_selection_and_every_selected_fixture_is_eligible():
    patterns, name = read_selection(REPO / "catalog" / SELECTION)
    manifest = read_manifest(REPO / "fixtures")
    assert sorted(manifest) == sorted(patterns), "regenerate: tox -e generate-keras2"
    by_id = {f.id: f for f in list_fixtures(REPO / "fixtures").fixtures}
    reasons = {fid: ineligible(by_id[fid]) for fid in manifest}
    assert not any(reasons.values()), reasons
    layers = {by_id[fid].layer for fid in manifest}
    resets = {by_id[fid].config.get("reset_after") for fid in manifest if by_id[fid].layer == "GRU"}
    assert layers == {"LSTM", "GRU", "SimpleRNN"} and resets == {True, False}


def test_the_files_stay_under_the_size_budget():
    manifest = read_manifest(REPO / "fixtures")
    size = sum((REPO / "fixtures" / e["file"]).stat().st_size for e in manifest.values())
    assert size <= SIZE_LIMIT, f"the Keras 2 files take {size} bytes, over {SIZE_LIMIT}"


@pytest.mark.parametrize("fid, reason", [
    ("lstm-hard-sigmoid-keras2", "no Keras 3 model file"), ("lstm-time-major", "no Keras 3 model file"),
    ("stateful-lstm-three-calls", "stateful"), ("rnn-lstm-cell", "cell_wrapper"),
    ("bidirectional-lstm-concat-sequences", "layer Bidirectional"), ("lstm-hard-sigmoid-keras3", "hard_sigmoid")])
def test_fixtures_a_keras2_file_would_not_test_are_refused_with_the_reason(fid, reason):
    assert reason in ineligible(fixture(REPO / "fixtures", fid))


# -- a bad entry: an error of its own case, naming the file ----------------------------------------

def test_a_listed_fixture_gets_its_entry_and_bytes(gallery):
    entry, data = h5_file(fixture(gallery, LISTED[0]))
    assert entry["inputs"] == ["x"] and entry["outputs"][0] == "output" and len(data) > 1000


def test_a_tampered_file_is_refused_naming_it(gallery):
    path = gallery / LISTED[0] / "model.h5"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FixtureError, match=r"lstm-seed-question/model\.h5 does not match its sha256 in keras2-h5"):
        h5_file(fixture(gallery, LISTED[0]))
    verdict = judge(Case(IMPL, fixture(gallery, LISTED[0])), 60)
    assert verdict.status == "error" and str(path) in verdict.message, verdict.message
    assert judge(Case(IMPL, fixture(gallery, UNLISTED)), 60).status == "skipped"  # the others are unaffected


def test_a_stale_entry_names_the_fixture_and_the_manifest(gallery):
    other = fixture(gallery, UNLISTED).digest
    edit(gallery, LISTED[0], fixture_digest=other)
    with pytest.raises(FixtureError) as info:
        entry_for(fixture(gallery, LISTED[0]))
    message = str(info.value)
    assert message.startswith(str(gallery / MANIFEST_NAME)), message
    assert f"entry 'lstm-seed-question' is stale: it was made from lstm-seed-question@{other[:15]}" in message
    assert "tox -e generate-keras2" in message
    assert judge(Case(IMPL, fixture(gallery, LISTED[0])), 60).status == "error"


def test_an_unlisted_fixture_is_not_applicable(gallery):
    with pytest.raises(NotApplicable, match="no Keras 2 model file is listed for this fixture"):
        entry_for(fixture(gallery, UNLISTED))
    verdict = judge(Case(IMPL, fixture(gallery, UNLISTED)), 60)
    assert verdict.status == "skipped" and verdict.not_applicable, verdict


def test_a_gallery_without_a_manifest_is_not_applicable_everywhere(gallery):
    (gallery / MANIFEST_NAME).unlink()
    for fid in (*LISTED, UNLISTED):
        verdict = judge(Case(IMPL, fixture(gallery, fid)), 60)
        assert verdict.status == "skipped" and verdict.not_applicable and "keras2-h5.yaml" in verdict.message


@pytest.mark.parametrize("file", [
    "../lstm-seed-question/model.h5", "/etc/passwd", "gru-reset-before-basic/model.h5",
    "lstm-seed-question/../gru-reset-before-basic/model.h5", "lstm-seed-question/sub/model.h5",
    "lstm-seed-question/..", "lstm-seed-question/", 7])
def test_a_file_outside_its_fixture_folder_is_refused(gallery, file):
    edit(gallery, LISTED[0], file=file)
    with pytest.raises(FixtureError, match=r"is not 'lstm-seed-question/<plain file name>'"):
        entry_for(fixture(gallery, LISTED[0]))


def test_a_linked_file_is_refused(gallery):
    path = gallery / LISTED[0] / "model.h5"
    path.unlink()
    path.symlink_to(gallery / LISTED[1] / "model.h5")
    with pytest.raises(FixtureError, match="is missing \\(or not a regular file\\)"):
        h5_file(fixture(gallery, LISTED[0]))


@pytest.mark.parametrize("change, message", [
    ({"inputs": ["x", "mask"]}, "inputs \\['x', 'mask'\\] are not the fixture's inputs"),
    ({"outputs": [{"output": 1}]}, "outputs \\[\\{'output': 1\\}\\] are not the fixture's outputs"),
    ({"sha256": "ABC"}, "sha256 must be 64 lowercase hex digits"),
    ({"fixture_digest": "md5:00"}, "fixture_digest must be sha256:<64 hex digits>"),
    ({"generated_by": "keras 2"}, "generated_by must be a mapping")])
def test_a_malformed_entry_is_refused_naming_it(gallery, change, message):
    edit(gallery, LISTED[0], **change)
    with pytest.raises(FixtureError, match=f"entry 'lstm-seed-question': {message}"):
        entry_for(fixture(gallery, LISTED[0]))


@pytest.mark.parametrize("text, message", [
    ("format_version: 2\nfixtures: {}\n", "expected a mapping with 'format_version: 1'"),
    ("format_version: 1\nfixtures: [a, b]\n", "'fixtures' must map fixture ids to entries"),
    ("a: &x [1]\nb: *x\n", "YAML aliases are not allowed in keras2-h5.yaml"),
    ("format_version: 1\nfixtures: !!python/object:object {}\n", "not valid safe YAML")])
def test_a_broken_manifest_is_an_error_of_each_case_naming_it(gallery, text, message):
    (gallery / MANIFEST_NAME).write_text(text)
    for fid in (LISTED[0], UNLISTED):
        verdict = judge(Case(IMPL, fixture(gallery, fid)), 60)
        assert verdict.status == "error" and message in verdict.message, verdict.message
        assert str(gallery / MANIFEST_NAME) in verdict.message


# -- verify ----------------------------------------------------------------------------------------

@pytest.mark.slow  # verify loads each model.keras with Keras 3 where it is installed
def test_verify_checks_the_keras2_files_and_names_a_tampered_one(gallery, capsys):
    from conformance.cli import main
    assert main(["verify", "--fixtures-dir", str(gallery)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for fid in LISTED:
        assert any(line.startswith(f"OK     {fid}@") and line.endswith("model.keras, model.h5)") for line in lines), lines
    assert any(line.startswith(f"OK     {UNLISTED}@") and line.endswith("model.keras)") for line in lines), lines
    path = gallery / LISTED[1] / "model.h5"
    path.write_bytes(path.read_bytes()[:-1])
    assert main(["verify", "--fixtures-dir", str(gallery)]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and LISTED[1] in failed[0], failed
    assert "model.h5 does not match its sha256 in keras2-h5.yaml" in failed[0], failed
