"""Model files that run code when Keras loads them are refused before Keras sees them (SPEC 13.1).

A ``Lambda`` in a fixture's ``model.h5`` (listed in keras2-h5.yaml, bound to the untouched fixture) or in
its ``model.keras`` (re-hashed and re-digested): ``verify`` reports the fixture broken, naming the file
and the class; the suite's case is an error (never passed, never xfailed by a ledger entry); the Keras 2
generator's ``--check`` refuses it; and the payload never runs. tox's tf215 and tfkeras envs run this file
too, so the tf.keras 2 HDF5 loader (which ignores safe mode) is the one being kept away.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conformance import cli
from conformance.fixtures import list_fixtures
from conformance.verdict import Status

from helpers.repo import REPO
from hostile_models import (H5_SOURCE, KERAS_SOURCE, MODEL_SOURCE, hostile_h5_gallery, hostile_keras_gallery,
                            selection_catalog)

needs_h5py = pytest.mark.skipif(importlib.util.find_spec("h5py") is None, reason="h5py is not installed")
needs_keras = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="the suite's Keras cases need TensorFlow")
REFUSED = "asks Keras to deserialize what this suite never loads"


def verify(root, capsys) -> tuple[int, str]:
    code = cli.main(["verify", "--fixtures-dir", str(root)])
    return code, capsys.readouterr().out


def case_verdict(root, impl: str, fid: str):
    """The case as the suite runs it (shipped ledger applied): ``--impl impl --fixture-id fid``."""
    from conformance.session import Session
    session = Session.open(impl=[impl], fixtures_dir=str(root), fixture_id=[fid])
    (case,) = session.cases
    return session.run(case)[0]


@needs_h5py
def test_verify_reports_a_lambda_in_model_h5(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    hostile_h5_gallery(tmp_path / "gallery", marker)
    code, out = verify(tmp_path / "gallery", capsys)
    assert code == 1, out
    (line,) = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert f"FAILED {H5_SOURCE}:" in line and "model.h5" in line and REFUSED in line, line
    assert "class 'Lambda'" in line and "'evil'" in line, line
    assert not marker.exists()


@needs_h5py
@needs_keras
def test_the_keras_load_h5_case_is_an_error_and_the_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    hostile_h5_gallery(tmp_path / "gallery", marker)
    verdict = case_verdict(tmp_path / "gallery", "keras-load-h5", H5_SOURCE)
    assert verdict.status == Status.ERROR, (verdict.status, verdict.message)
    assert f"broken fixture {H5_SOURCE!r}" in verdict.message and "model.h5" in verdict.message
    assert REFUSED in verdict.message and "class 'Lambda'" in verdict.message, verdict.message
    assert not marker.exists()


@needs_h5py
@needs_keras
def test_the_keras2_generator_check_refuses_it(tmp_path, capsys):
    from conformance.adapters.keras import keras_version
    if not keras_version().startswith("2.15."):
        pytest.skip(f"generate_fixtures.py --keras2-h5 runs only under tf.keras 2.15 (found Keras {keras_version()})")
    marker = tmp_path / "payload-ran"
    hostile_h5_gallery(tmp_path / "gallery", marker)
    sys.path.insert(0, str(REPO))
    try:
        import generate_fixtures
    finally:
        sys.path.remove(str(REPO))
    code = generate_fixtures.main(["--keras2-h5", "--check", "--out", str(tmp_path / "gallery"),
                                   "--catalog", str(selection_catalog(tmp_path, H5_SOURCE))])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"DIFFERS {H5_SOURCE}: model.h5 {REFUSED}" in err and "class 'Lambda'" in err, err
    assert not marker.exists()


@pytest.mark.parametrize("source", [KERAS_SOURCE, MODEL_SOURCE])
def test_verify_reports_a_lambda_in_model_keras(tmp_path, capsys, source):
    """A layer's contract model, and a Model fixture's Sequential (whose allow-list adds Dense, Masking...)."""
    marker = tmp_path / "payload-ran"
    hostile_keras_gallery(tmp_path / "gallery", marker, source)
    assert list_fixtures(tmp_path / "gallery").fixtures, "the rebound fixture must still list (digest recomputed)"
    code, out = verify(tmp_path / "gallery", capsys)
    assert code == 1, out
    (line,) = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert f"FAILED {source}:" in line and "model.keras" in line and REFUSED in line, line
    assert "class 'Lambda'" in line and "key 'function' carries code" in line, line
    assert not marker.exists()


@needs_keras
@pytest.mark.parametrize("source", [KERAS_SOURCE, MODEL_SOURCE])
def test_the_keras_load_case_on_a_lambda_in_model_keras_is_an_error(tmp_path, source):
    """Under Keras 3 safe mode would refuse it too, as a load failure; under Keras 2 the ledger's
    "cannot read Keras 3 files" entry would have called it expected. It is the fixture's fault: an error."""
    marker = tmp_path / "payload-ran"
    hostile_keras_gallery(tmp_path / "gallery", marker, source)
    verdict = case_verdict(tmp_path / "gallery", "keras-load", source)
    assert verdict.status == Status.ERROR, (verdict.status, verdict.message)
    assert "model.keras" in verdict.message and REFUSED in verdict.message, verdict.message
    assert not marker.exists()


@needs_h5py
@needs_keras
def test_the_payload_is_real_under_keras2(tmp_path):
    """The builder's file is a working attack on Keras 2 (loaded directly, past the suite's check): what the
    tests above keep from running is code that runs. Keras 3 refuses the file's recurrent layers first."""
    from conformance.adapters.keras import is_keras3, keras_module
    if is_keras3():
        pytest.skip("Keras 3 fails on the Keras 2 layers' time_major before it reaches the Lambda")
    marker = tmp_path / "payload-ran"
    path = hostile_h5_gallery(tmp_path / "gallery", marker)
    keras = keras_module()
    loader = getattr(getattr(keras, "saving", None), "load_model", None) or keras.models.load_model
    loader(path, compile=False)  # safe_mode where Keras 2 takes it: its HDF5 path ignores it
    assert marker.exists(), "the Lambda did not run: the tests above would not show the check keeps it out"


def _keras_config(fid: str = KERAS_SOURCE) -> dict:
    import json
    import zipfile
    with zipfile.ZipFile(REPO / "fixtures" / fid / "model.keras") as archive:
        return json.loads(archive.read("config.json"))


def _rnn(config: dict) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["name"] == "rnn")


@pytest.mark.parametrize("change, why", [
    (lambda c: _rnn(c)["config"].update(activation={"class_name": "__lambda__", "config": {"code": "x"}}),
     "LSTM 'rnn': activation {'class_name': '__lambda__'"),
    (lambda c: _rnn(c)["config"].update(recurrent_activation="print"),
     "LSTM 'rnn': recurrent_activation 'print' is not a Keras built-in activation name"),
    (lambda c: _rnn(c).update(module="os"), "LSTM 'rnn': module 'os' is not a Keras built-in module"),
    (lambda c: _rnn(c).update(registered_name="evil_pkg>LSTM"),
     "LSTM 'rnn': registered_name 'evil_pkg>LSTM' names a custom object"),
    (lambda c: _rnn(c)["config"]["kernel_initializer"].update(class_name="Orthogonal"),
     "LSTM 'rnn'/kernel_initializer Orthogonal: class 'Orthogonal' is not a built-in recurrent or input layer"),
    (lambda c: _rnn(c)["config"].update(custom_objects={}), "LSTM 'rnn': key 'custom_objects' carries code"),
    (lambda c: c.update(compile_config={"loss": {"class_name": "__lambda__", "config": {}}}),
     "Functional 'fixture'/compile_config/loss __lambda__: class '__lambda__'"),
])
def test_a_model_config_naming_anything_else_is_refused(change, why):
    """Beyond Lambda layers: serialized functions, foreign modules, custom objects, classes the gallery never holds."""
    from conformance import model_config
    config = _keras_config()
    assert model_config.problems(config) == []
    change(config)
    found = model_config.problems(config)
    assert any(why in p for p in found), found


@needs_h5py
def test_an_h5_with_a_training_config_or_a_corrupt_config_is_refused(tmp_path):
    import h5py
    from conformance import model_config
    from conformance.errors import FixtureError
    path = tmp_path / "model.h5"
    path.write_bytes((REPO / "fixtures" / H5_SOURCE / "model.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["training_config"] = '{"loss": {"class_name": "Lambda"}}'
    with pytest.raises(FixtureError, match="carries attribute.s. training_config beside its model config"):
        model_config.check_file(path.read_bytes(), path)
    with h5py.File(path, "r+") as f:
        del f.attrs["training_config"]
        f.attrs["model_config"] = "[" * 100_000
    with pytest.raises(FixtureError, match="model_config is not valid JSON"):
        model_config.check_file(path.read_bytes(), path)
    with pytest.raises(FixtureError, match="not a readable HDF5 file"):
        model_config.check_file(b"not hdf5", path)
