"""``keras-load-h5`` on the gallery's real Keras 2 files, with whatever Keras is installed.

Keras 2 (tf.keras 2.12-2.15, tf-keras) loads them and computes the fixtures' values; Keras 3 refuses them
the way the ledger records (``time_major`` in every recurrent layer's config), and that ledger entry turns
the failure into an expected one. The generator's ``--keras2-h5`` refuses any Keras but tf.keras 2.15.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest
import yaml

if importlib.util.find_spec("tensorflow") is None:  # find, not import: collecting stays cheap
    pytest.skip("keras-load-h5 needs Keras (TensorFlow)", allow_module_level=True)

from conformance import ledger, registry
from conformance.adapters.keras import backend_name, is_keras3, keras_version
from conformance.fixtures import list_fixtures
from conformance.legacy import MANIFEST_NAME
from conformance.suite import Case, judge

from helpers.repo import REPO

# a mask with an initial state (LSTM), a mask going backwards (GRU, reset before), an initial state (SimpleRNN)
LISTED = ("lstm-mask-leading-initial-state", "gru-reset-before-mask-go-backwards", "simple-rnn-initial-state")


def impl():
    known = registry.registered()
    assert "keras-load-h5" in known, f"keras-load-h5 is not registered ({sorted(known)}): pip install -e ."
    return known["keras-load-h5"]


@pytest.mark.parametrize("fid", LISTED)
def test_a_keras2_file_on_this_keras(fid, gallery):
    fixture = next(f for f in gallery if f.id == fid)
    verdict = judge(Case(impl(), fixture), 120)
    if not is_keras3():
        assert verdict.status == "passed", verdict.message
        return
    assert verdict.status == "failed", verdict.message
    assert f"could not load {fid}/model.h5 (saved with tf.keras 2.15.0)" in verdict.message
    assert "Unrecognized keyword arguments passed to" in verdict.message and "'time_major': False" in verdict.message
    entry = ledger.find(ledger.load(), "keras-load-h5", fid, keras_version(), backend_name())
    assert entry is not None and "time_major" in entry.reason, entry
    assert ledger.apply(entry, verdict).status == "xfailed"


def test_a_file_that_does_not_hold_the_fixtures_weights_is_a_broken_fixture(tmp_path):
    """The sha256 proves the file is the listed one, not that it agrees with arrays.npz (Keras 2 only: Keras 3
    cannot load the file to look)."""
    if is_keras3():
        pytest.skip(f"Keras {keras_version()} cannot load Keras 2 recurrent layers (see the ledger)")
    import hashlib

    from conformance.adapters.keras_load_h5 import load_h5
    fid = LISTED[0]
    shutil.copytree(REPO / "fixtures" / fid, tmp_path / fid)
    manifest = yaml.safe_load((REPO / "fixtures" / MANIFEST_NAME).read_text())
    manifest["fixtures"] = {fid: manifest["fixtures"][fid]}
    model = load_h5(tmp_path / fid / "model.h5")
    weights = model.get_weights()
    weights[0] = weights[0] + 1e-3
    model.set_weights(weights)
    model.save(tmp_path / fid / "model.h5")
    manifest["fixtures"][fid]["sha256"] = hashlib.sha256((tmp_path / fid / "model.h5").read_bytes()).hexdigest()
    (tmp_path / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    fixture = list_fixtures(tmp_path).fixtures[0]
    verdict = judge(Case(impl(), fixture), 120)
    assert verdict.status == "error" and "does not hold the fixture's weights" in verdict.message, verdict.message


def test_the_generator_runs_only_under_tf_keras_2_15(capsys):
    sys.path.insert(0, str(REPO))
    try:
        import generate_fixtures
    finally:
        sys.path.remove(str(REPO))
    if keras_version().startswith("2.15."):  # the generate-keras2 env: the committed files check out
        assert generate_fixtures.main(["--keras2-h5", "--check"]) == 0, capsys.readouterr().err
        return
    assert generate_fixtures.main(["--keras2-h5", "--check"]) == 2
    assert "needs TensorFlow 2.15 with its tf.keras 2.15 (found TensorFlow" in capsys.readouterr().err
