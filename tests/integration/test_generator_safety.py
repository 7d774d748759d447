"""The generator never loses or silently rewrites fixture data.

``generate_fixtures.py`` runs for real (Keras, TensorFlow) on a one- or two-entry
catalog copied from the project's, writing to temporary folders: an interrupted write
leaves the old fixture or none, never half of one nor a staging folder; ``--check``
names a hand-edited fixture and by how much; a changed value is refused without
``--update``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import hostile
from conformance import writer

if importlib.util.find_spec("tensorflow") is None:  # find, not import: collecting stays cheap
    pytest.skip("generate_fixtures.py needs TensorFlow", allow_module_level=True)
from helpers.repo import REPO
FID = "lstm-seed-question"


@pytest.fixture
def catalog(gen, tmp_path):
    """A temporary catalog holding the project's ``lstm-seed-question`` entry; returns (folder, entry)."""
    entry = next(e for e in gen.read_catalog() if e["id"] == FID)
    folder = tmp_path / "catalog"
    folder.mkdir()

    def save(changed: dict) -> None:
        (folder / "lstm.yaml").write_text(yaml.safe_dump({"fixtures": [changed]}))
    save(entry)
    return folder, entry, save


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def _generate(gen, out, catalog_dir, *extra) -> int:
    return gen.main(["--out", str(out), "--catalog", str(catalog_dir), *extra])


@pytest.fixture
def written(gen, catalog, tmp_path):
    """The fixture generated once into ``tmp_path/out``: (out folder, snapshot of its files)."""
    out = tmp_path / "out"
    assert _generate(gen, out, catalog[0]) == 0
    return out, _snapshot(out)


class Interrupted(KeyboardInterrupt):
    """Raised by a patched writer step, as Ctrl-C would be."""


def _interrupt_after_npz(monkeypatch, out: Path):
    """Make writing fixture.yaml fail, after checking the npz already sits in a staging folder."""
    seen = []

    def yaml_text(meta):
        staged = [p for p in out.glob(f".{FID}.*/{writer.ARRAYS_NAME}")]
        seen.append(staged)
        raise Interrupted("interrupted while writing fixture.yaml")
    monkeypatch.setattr(writer, "yaml_text", yaml_text)
    return seen


def test_interrupted_new_fixture_leaves_nothing(gen, catalog, tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = _interrupt_after_npz(monkeypatch, out)
    with pytest.raises(Interrupted):
        _generate(gen, out, catalog[0])
    assert len(seen) == 1 and len(seen[0]) == 1, "the npz should have been staged before the interruption"
    assert sorted(os.listdir(out)) == [], "a half-written fixture or a staging folder was left behind"


def test_interrupted_update_keeps_the_old_fixture(gen, catalog, written, monkeypatch):
    out, before = written
    folder, entry, save = catalog
    save({**entry, "seed": 12345})
    seen = _interrupt_after_npz(monkeypatch, out)
    with pytest.raises(Interrupted):
        _generate(gen, out, folder, "--update")
    assert seen and seen[0], "the update should have reached the writer"
    assert _snapshot(out) == before and _hidden(out) == []


def test_swap_failure_restores_the_old_fixture(gen, catalog, written, monkeypatch):
    """The rename that swaps the new folder in fails: the old fixture is put back, nothing stays hidden."""
    out, before = written
    folder, entry, save = catalog
    save({**entry, "seed": 12345})
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(dst).name == FID and Path(src).name.startswith(f".{FID}."):
            raise OSError("disk full while swapping the new fixture in")
        return real_replace(src, dst)
    monkeypatch.setattr(writer.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        _generate(gen, out, folder, "--update")
    assert calls[0][0] == FID, f"the old fixture should have been moved aside first: {calls}"
    assert _snapshot(out) == before and _hidden(out) == []


def test_check_reports_hand_edited_arrays_with_the_amount(gen, catalog, written, capsys):
    """An edit made consistently (sha256 and digest updated) is still caught against Keras, with its size."""
    out, _ = written
    delta = 0.25
    arrays = hostile.read_arrays(out / FID)
    expected_diff = float(np.float32(arrays["output"][0, 1] + np.float32(delta)) - arrays["output"][0, 1])

    def edit(a):
        a["output"] = a["output"].copy()
        a["output"][0, 1] += np.float32(delta)
    hostile.edit_arrays(out / FID, edit, update_yaml=True)
    capsys.readouterr()
    assert _generate(gen, out, catalog[0], "--check") == 1
    err = capsys.readouterr().err
    assert f"DIFFERS {FID}: output: changed at [0, 1]" in err and f"max abs difference {expected_diff:.3g}" in err, err
    assert "state_h" not in err and "kernel" not in err, f"only the edited array differs: {err}"


def test_check_reports_hand_edited_yaml(gen, catalog, written, capsys):
    out, _ = written
    hostile.edit_meta(out / FID, lambda m: m["tolerance"].update(atol=0.5), keep_digest=True)
    capsys.readouterr()
    assert _generate(gen, out, catalog[0], "--check") == 1
    err = capsys.readouterr().err
    assert f"DIFFERS {FID}: field 'tolerance' differs" in err, err
    assert "fixture.yaml on disk does not match its own digest (hand-edited)" in err, err


def test_changed_values_need_update(gen, catalog, written, capsys):
    """A catalog change that alters the values is refused (files untouched) until --update is given."""
    out, before = written
    folder, entry, save = catalog
    x = np.asarray(entry["x"], np.float32)
    changed_x = x.copy()
    changed_x.flat[-1] += 1.5
    save({**entry, "x": changed_x.tolist()})
    capsys.readouterr()
    assert _generate(gen, out, folder) == 1
    err = capsys.readouterr().err
    assert f"REFUSED {FID}: refusing to overwrite a fixture whose values changed" in err, err
    assert "x: changed at [1, 1, 0]" in err and f"max abs difference {1.5:.3g}" in err and "pass --update" in err, err
    assert _snapshot(out) == before

    assert _generate(gen, out, folder, "--update") == 0
    assert hostile.read_arrays(out / FID)["x"].tolist() == changed_x.reshape(2, 2, 1).tolist()
    assert _hidden(out) == []
    capsys.readouterr()
    assert _generate(gen, out, folder, "--check") == 0


def test_update_keeps_the_keras2_model_file(gen, catalog, written, capsys):
    """``--update`` swaps the fixture's folder whole; a model.h5 that keras2-h5.yaml lists there is carried
    over (not deleted) and its entry, bound to the old digest, is reported stale until regenerated."""
    from conformance import legacy
    from conformance.errors import FixtureError
    from conformance.fixtures import load_fixture
    out, _ = written
    folder, entry, save = catalog
    old = load_fixture(out / FID)
    data = (REPO / "fixtures" / "gru-reset-after-basic" / "model.h5").read_bytes()  # any file: it is only carried
    (out / FID / "model.h5").write_bytes(data)
    listed = {"file": f"{FID}/model.h5", "sha256": hashlib.sha256(data).hexdigest(), "fixture_digest": old.digest,
              "inputs": list(old.meta["inputs"]), "outputs": list(old.meta["outputs"]), "generated_by": {}}
    (out / legacy.MANIFEST_NAME).write_text(yaml.safe_dump({"format_version": 1, "fixtures": {FID: listed}}))
    assert legacy.entry_for(old)["file"] == f"{FID}/model.h5"  # bound to the fixture as it is
    save({**entry, "seed": 12345})
    capsys.readouterr()
    assert _generate(gen, out, folder, "--update") == 0
    err = capsys.readouterr().err
    assert f"KEPT {FID}/model.h5: keras2-h5.yaml lists it" in err and "tox -e generate-keras2" in err, err
    assert (out / FID / "model.h5").read_bytes() == data
    new = load_fixture(out / FID)
    assert new.digest != old.digest
    with pytest.raises(FixtureError, match=f"entry '{FID}' is stale"):
        legacy.entry_for(new)
