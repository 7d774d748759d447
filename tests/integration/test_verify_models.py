"""``verify`` and ``keras-load`` check the saved model file: present, its sha256, and that it holds the fixture's weights.

Every tampered fixture starts from a copy of a gallery fixture in ``tmp_path``; a fixture whose
arrays were edited is rewritten with the project's writer, so its array hashes and YAML digest
are consistent and only the model file (still holding the old weights) can tell.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from conformance import cli, writer
from conformance.fixtures import gallery_dir, list_fixtures, load_fixture, read_meta

from helpers.venvs import clean_env

FIXTURES = list_fixtures(gallery_dir()).fixtures
WITH_MODEL = [f for f in FIXTURES if f.meta.get("model_file")]
WITHOUT_MODEL = [f for f in FIXTURES if not f.meta.get("model_file")]


def kind(fixture) -> str:
    if fixture.config.get("cell_wrapper"):  # RNN(cell), RNN(StackedRNNCells): weights held by the cells
        return f"{fixture.layer}-cells"
    return f"{fixture.layer}-stateful" if fixture.meta.get("calls") else fixture.layer


# one fixture with a model file per kind of model (single layer, Bidirectional, Stacked, stateful, built from cells)
ONE_PER_KIND = list({kind(f): f for f in reversed(WITH_MODEL)}.values())


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def copy_fixtures(tmp_path: Path, *fixtures) -> Path:
    root = tmp_path / "fixtures"
    for fixture in fixtures:
        shutil.copytree(fixture.path, root / fixture.id)
    return root


def failed_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FAILED")]


def rewrite_with_edited_weight(root: Path, fixture, delta: float = 0.25) -> str:
    """Add ``delta`` to the first element of the fixture's first weight and rewrite it with the writer (hashes and
    digest recomputed), keeping the old model file bytes; returns the weight's name."""
    name = fixture.weight_names[0]
    arrays = dict(fixture.arrays)
    edited = np.array(arrays[name])
    edited.flat[0] += delta
    arrays[name] = edited
    meta = {k: v for k, v in read_meta(fixture.path).items() if k not in ("format_version", "arrays", "digest")}
    model = fixture.meta["model_file"]["name"]
    writer.write_fixture(root, writer.finish_meta(meta, arrays), arrays, {model: (fixture.path / model).read_bytes()})
    return name


# -- the model file's presence and sha256: no Keras needed ------------------------------------------

def test_verify_names_a_model_file_with_one_byte_changed(capsys, tmp_path):
    fixture = WITH_MODEL[0]
    root = copy_fixtures(tmp_path, fixture)
    path = root / fixture.id / fixture.meta["model_file"]["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    (line,) = failed_lines(out)
    assert fixture.id in line and f"{path.name} does not match its sha256" in line, out
    assert not re.search(r"^OK ", out, re.M)


def test_verify_names_a_deleted_model_file(capsys, tmp_path):
    fixture = WITH_MODEL[0]
    root = copy_fixtures(tmp_path, fixture)
    (root / fixture.id / fixture.meta["model_file"]["name"]).unlink()
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    (line,) = failed_lines(out)
    assert fixture.id in line and "model file model.keras is missing" in line, out


@pytest.mark.parametrize("entry, said", [
    (["model.keras"], "model_file must be a mapping"),
    ({"name": "../lstm-basic/model.keras", "sha256": "0" * 64}, "is not a plain file name"),
])
def test_verify_refuses_a_malformed_model_file_entry(entry, said, capsys, tmp_path):
    fixture = WITH_MODEL[0]
    root = tmp_path / "fixtures"
    meta = {k: v for k, v in read_meta(fixture.path).items() if k not in ("format_version", "arrays", "digest")}
    meta["model_file"] = entry
    writer.write_fixture(root, writer.finish_meta(meta, fixture.arrays), dict(fixture.arrays))
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    (line,) = failed_lines(out)
    assert fixture.id in line and said in line, out


def test_verify_files_lists_what_it_checked():
    with_model, without = WITH_MODEL[0], (WITHOUT_MODEL or [None])[0]
    assert with_model.verify_files() == ["arrays.npz", with_model.meta["model_file"]["name"]]
    if without is not None:
        assert without.verify_files() == ["arrays.npz"]


def test_verify_an_empty_folder_says_there_is_no_fixture(capsys, tmp_path):
    code, out, err = run_cli(capsys, "verify", "--fixtures-dir", tmp_path)
    assert code == 2
    assert "no fixture" in err and str(tmp_path) in err
    assert "sha256:" not in out + err


def test_verify_a_folder_of_broken_fixtures_prints_no_set_digest(capsys, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "fixture.yaml").write_text("format_version: 1\nid: [unclosed\n")
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", tmp_path)
    assert code == 1
    assert len(failed_lines(out)) == 1 and "0 of 1 fixtures verified" in out
    assert "no valid fixture" in out and "set sha256" not in out


# -- without Keras, and the price of importing it -------------------------------------------------

def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_without_keras_verify_says_once_that_only_the_sha256_was_checked(tmp_path):
    root = copy_fixtures(tmp_path, *WITH_MODEL[:2])
    done = run_python(f"""
import sys
sys.modules["keras"] = sys.modules["tf_keras"] = sys.modules["tensorflow"] = None  # as if not installed
from conformance import cli
sys.exit(cli.main(["verify", "--fixtures-dir", {str(root)!r}]))
""")
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("model files:")]
    assert len(notes) == 1 and "sha256 and config checked, not their weights" in notes[0], done.stdout
    assert "keras" in notes[0], done.stdout
    assert len(re.findall(r"^OK .*model\.keras\)$", done.stdout, re.M)) == 2, done.stdout


@pytest.mark.skipif(not WITHOUT_MODEL, reason="every gallery fixture has a model file")
def test_verify_imports_no_keras_when_no_fixture_has_a_model_file(tmp_path):
    root = copy_fixtures(tmp_path, WITHOUT_MODEL[0])
    done = run_python(f"""
import sys
from conformance import cli
code = cli.main(["verify", "--fixtures-dir", {str(root)!r}])
assert "keras" not in sys.modules and "tensorflow" not in sys.modules, "verify imported Keras"
sys.exit(code)
""")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model files:" not in done.stdout and "1 of 1 fixtures verified" in done.stdout


# -- with Keras: the weights in the model file --------------------------------------------------------

def keras3_installed() -> bool:
    """Without importing it (TensorFlow takes seconds): verify itself must do that only when needed."""
    try:
        return importlib.util.find_spec("keras") is not None and int(metadata.version("keras").split(".")[0]) >= 3
    except (ImportError, ValueError, metadata.PackageNotFoundError):
        return False


keras_needed = pytest.mark.skipif(not keras3_installed(), reason="Keras 3 is not installed (extra 'keras')")


@keras_needed
def test_verify_quiets_tensorflow_before_importing_it(tmp_path):
    root = copy_fixtures(tmp_path, WITH_MODEL[0])
    env = clean_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    probe = f"""
import os, sys
from conformance import cli
code = cli.main(["verify", "--fixtures-dir", {str(root)!r}])
print("LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "keras" in sys.modules)
sys.exit(code)
"""
    done = run_python(probe, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LEVEL 2 True" in done.stdout and "sha256 and weights checked" in done.stdout, done.stdout
    done = run_python(probe, {**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert "LEVEL 0 True" in done.stdout, "a level the user set must be kept"


@keras_needed
def test_verify_checks_the_weights_of_every_kind_of_model(capsys, tmp_path):
    root = copy_fixtures(tmp_path, *ONE_PER_KIND)
    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 0, out
    assert sorted(re.findall(r"^OK\s+(\S+)@\S+ \(\d+ arrays, model\.keras\)$", out, re.M)) == sorted(
        f.id for f in ONE_PER_KIND)
    assert re.search(r"^model files: sha256 and weights checked \(Keras 3\.", out, re.M), out


@keras_needed
@pytest.mark.parametrize("fixture", ONE_PER_KIND, ids=lambda f: f.id)
def test_verify_and_keras_load_catch_arrays_edited_and_rehashed(fixture, capsys, tmp_path):
    from conformance import registry
    from conformance.suite import Case, judge

    root = tmp_path / "fixtures"
    name = rewrite_with_edited_weight(root, fixture)
    edited = load_fixture(root / fixture.id)
    assert edited.verify_files() == ["arrays.npz", "model.keras"], "hashes recomputed: only the weights can tell"

    code, out, _ = run_cli(capsys, "verify", "--fixtures-dir", root)
    assert code == 1
    (line,) = failed_lines(out)
    assert fixture.id in line and "model.keras does not hold the fixture's weights" in line, line
    assert f"{name!r}" in line and "max abs difference 0.25" in line, line
    assert [n for n in fixture.weight_names if f"{n!r}" in line] == [name], "only the edited weight is named"

    verdict = judge(Case(registry.registered()["keras-load"], edited), 120)
    assert verdict.status == "error", verdict  # the fixture is broken, not the implementation
    assert f"broken fixture {fixture.id!r}" in verdict.message and "model.keras" in verdict.message, verdict.message
    assert f"{name!r}" in verdict.message, verdict.message
