"""``lstm-conformance export`` refuses a target it cannot use cleanly: a file, or a non-empty folder without ``--force``.

A refusal is a usage error (exit 2) naming the path and what to do, never a traceback, and it
leaves the target exactly as it was. Two small gallery fixtures, copied to ``tmp_path``, are exported.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance import cli
from conformance.export import ExportTargetError, dumps, export_json, fixture_to_json
from conformance.fixtures import gallery_dir, list_fixtures

FIXTURES = sorted(list_fixtures(gallery_dir()).fixtures, key=lambda f: len(f.meta["arrays"]))[:2]


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "fixtures"
    for fixture in FIXTURES:
        shutil.copytree(fixture.path, root / fixture.id)
    return root


def export(capsys, source: Path, *args):
    code = cli.main(["export", "--fixtures-dir", str(source), "--format", "json", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def expected_document(fixture) -> bytes:
    return dumps(fixture_to_json(fixture)).encode("ascii")


def test_export_onto_a_file_is_a_usage_error_naming_it(capsys, source, tmp_path):
    target = tmp_path / "out.json"
    target.write_bytes(b"not mine to overwrite")
    code, out, err = export(capsys, source, target)
    assert code == 2
    assert f"lstm-conformance export: error: {target} exists and is not a folder" in err
    assert "new or empty folder" in err and "Traceback" not in err and out == ""
    assert target.read_bytes() == b"not mine to overwrite"


def test_export_into_a_folder_below_a_file_is_a_usage_error(capsys, source, tmp_path):
    parent = tmp_path / "a-file"
    parent.write_text("x")
    code, _, err = export(capsys, source, parent / "json")
    assert code == 2
    assert f"cannot write the export to {parent / 'json'}" in err and "Traceback" not in err


def test_export_into_a_non_empty_folder_needs_force_and_changes_nothing(capsys, source, tmp_path):
    target = tmp_path / "json"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    (target / f"{FIXTURES[0].id}.json").write_text("{}\n")  # e.g. left by an earlier export
    before = snapshot(target)
    code, out, err = export(capsys, source, target)
    assert code == 2
    assert f"{target} is a folder that is not empty (2 entries: " in err and "--force" in err, err
    assert snapshot(target) == before and out == ""


def test_export_with_force_replaces_its_documents_and_leaves_other_files(capsys, source, tmp_path):
    target = tmp_path / "json"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    (target / f"{FIXTURES[0].id}.json").write_text("{}\n")
    code, out, err = export(capsys, source, "--force", target)
    assert code == 0, err
    assert f"exported {len(FIXTURES)} fixtures as json to {target}" in out
    assert snapshot(target) == {"notes.txt": b"keep me",
                                **{f"{f.id}.json": expected_document(f) for f in FIXTURES}}


@pytest.mark.parametrize("make", ["new", "empty"])
def test_export_into_a_new_or_empty_folder_writes_every_document(make, capsys, source, tmp_path):
    target = tmp_path / "deep" / "json"
    if make == "empty":
        target.mkdir(parents=True)
    code, _, err = export(capsys, source, target)
    assert code == 0, err
    assert snapshot(target) == {f"{f.id}.json": expected_document(f) for f in FIXTURES}


def test_export_json_api_refuses_a_file_with_a_clear_error(tmp_path):
    target = tmp_path / "out"
    target.write_text("x")
    with pytest.raises(ExportTargetError, match="exists and is not a folder"):
        export_json(FIXTURES, target)


def test_fixture_id_exports_only_the_matching_fixtures(capsys, source, tmp_path):
    """One fixture's JSON to attach to an issue, without exporting the whole gallery."""
    chosen = FIXTURES[0]
    code, out, _ = export(capsys, source, "--fixture-id", chosen.id, tmp_path / "one")
    assert code == 0, out
    assert snapshot(tmp_path / "one") == {f"{chosen.id}.json": expected_document(chosen)}
    assert out.strip() == f"exported 1 fixture as json to {tmp_path / 'one'}"


def test_fixture_id_matching_nothing_is_a_usage_error(capsys, source, tmp_path):
    code, _, err = export(capsys, source, "--fixture-id", "no-such-*", tmp_path / "none")
    assert code == 2 and "--fixture-id no-such-*: no fixture" in err, err
    assert not (tmp_path / "none").exists()


def test_show_format_json_is_the_exported_document(capsys, source, tmp_path):
    fixture = FIXTURES[1]
    assert cli.main(["show", "--fixtures-dir", str(source), fixture.id, "--format", "json"]) == 0
    assert capsys.readouterr().out.encode("ascii") == expected_document(fixture)
