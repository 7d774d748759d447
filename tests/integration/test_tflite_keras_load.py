"""The ``tflite`` and ``keras-load`` implementations, through the suite's own judge and the pytest plug-in.

Both run on the whole gallery: ``keras-load`` only loads and calls a small model; TFLite
conversion costs about 0.9 s per fixture (100 s for the gallery on 2 cores), under the 2 s
budget for a full run. ``LSTM_CONFORMANCE_TFLITE_QUICK=1`` runs ``tflite`` on a representative
subset instead (computed: every tag, layer, wrapped layer and merge mode in at least one fixture).
Which fixtures must pass is computed from the metadata (``applies_to``, ``model_file``).
Skipped with a reason where TensorFlow is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (extra 'keras' of lstm-conformance)")

from conformance import registry, writer
from conformance.applicability import not_applicable
from conformance.fixtures import load_fixture, read_meta
from conformance.mistakes import diagnose
from conformance.suite import Case, judge

from helpers.venvs import clean_env

# A recurrent loop in the converted model: Keras 3 layers become WHILE, tf.keras 2 may give fused ops.
LOOP_OPS = {"WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_LSTM",
            "BIDIRECTIONAL_SEQUENCE_RNN"}


def implementation(name: str) -> registry.Implementation:
    known = registry.registered()
    assert name in known, f"entry point {name!r} is not registered (registered: {sorted(known)}); pip install -e ."
    return known[name]


def features(fixture) -> set[str]:
    found = set(fixture.tags) | {f"layer:{fixture.layer}"}
    if fixture.layer == "Bidirectional":
        found |= {f"wrapped:{fixture.config['wrapped']}", f"merge_mode:{fixture.config.get('merge_mode')}"}
    return found


def representative(fixtures) -> list:
    """A small set of fixtures covering every feature of the gallery (greedy set cover, deterministic)."""
    needed, chosen = set().union(*map(features, fixtures)), []
    while needed:
        best = max(fixtures, key=lambda f: (len(features(f) & needed), f.id))
        chosen.append(best)
        needed -= features(best)
    return chosen


def run_all(name: str, fixtures) -> dict:
    impl = implementation(name)
    return {f.id: judge(Case(impl, f), 120, diagnose) for f in fixtures}


def tflite_crashes(impl_name: str, fixture) -> bool:
    """TFLite (TF 2.21) cannot run a float64 or mixed precision layer: builtins fail, the SELECT_TF_OPS model needs
    the Flex delegate the interpreter lacks; the adapter reports the tool's crash (a ports-matrix finding)."""
    return impl_name == "tflite" and "dtype" in fixture.config


def tflite_skips(impl_name: str, fixture) -> str | None:
    """What tflite declines, and the reason it gives: a stateful Bidirectional (Keras 3 cannot build one that
    returns its states, SPEC 5.10), a ConvLSTM3D (tf.lite.Interpreter's slices take at most 5-D tensors;
    LiteRT's run them)."""
    if impl_name != "tflite":
        return None
    if fixture.layer == "Bidirectional" and fixture.meta.get("calls"):
        return "a stateful Bidirectional returning its states: Keras 3's"
    if fixture.layer == "ConvLSTM3D":
        return "tf.lite.Interpreter's SLICE and STRIDED_SLICE kernels take at most 5-D tensors"
    return None


def must_pass(impl_name: str, fixture) -> bool:
    """Every applicable fixture, and for keras-load only those that carry a model file."""
    version, backend = implementation(impl_name).keras_semantics()
    if not_applicable(fixture.meta, version, backend) or tflite_crashes(impl_name, fixture) \
            or tflite_skips(impl_name, fixture):
        return False
    return impl_name != "keras-load" or "model_file" in fixture.meta


def check(name: str, fixtures, verdicts: dict) -> None:
    crashed = {fid for fid, v in verdicts.items() if v.status == "crashed"}
    expected_crashes = {f.id for f in fixtures if tflite_crashes(name, f)}
    assert crashed == expected_crashes, f"{name}: crashed {sorted(crashed)}, expected {sorted(expected_crashes)}"
    for fid in crashed:
        assert "SELECT_TF_OPS conversion wrote TensorFlow ops (Flex" in verdicts[fid].message, verdicts[fid].message
    bad = {fid: v.message for fid, v in verdicts.items() if v.status not in ("passed", "skipped", "crashed")}
    assert not bad, f"{name} failed {len(bad)} fixture(s):\n" + "\n\n".join(f"{k}: {m}" for k, m in bad.items())
    expected = sorted(f.id for f in fixtures if must_pass(name, f))
    passed = sorted(fid for fid, v in verdicts.items() if v.status == "passed")
    assert passed == expected, (f"{name}: expected {len(expected)} passes, got {len(passed)}; "
                                f"not passed: {sorted(set(expected) - set(passed))}; "
                                f"unexpected: {sorted(set(passed) - set(expected))}")
    for fid, verdict in verdicts.items():
        if verdict.status == "skipped":
            assert verdict.message.strip(), f"{name} skipped {fid} without a reason"
    for fixture in fixtures:
        reason = tflite_skips(name, fixture)
        if reason:
            assert verdicts[fixture.id].status == "skipped" and reason in verdicts[fixture.id].message, (
                fixture.id, verdicts[fixture.id].message)


# -- keras-load ------------------------------------------------------------------------------------

def test_keras_load_passes_every_fixture_with_a_model_file(gallery):
    verdicts = run_all("keras-load", gallery)
    check("keras-load", gallery, verdicts)
    without = [f.id for f in gallery if "model_file" not in f.meta]
    for fid in without:
        assert verdicts[fid].status == "skipped", (fid, verdicts[fid].message)
        assert "carries no saved model file" in verdicts[fid].message or "applies to Keras" in verdicts[fid].message


def test_model_files_regenerate_byte_for_byte(gallery):
    """The committed model.keras is what contract_model + model_file_bytes give now: reproducible, digest-covered."""
    from conformance.adapters import keras, keras_load
    picked = [f for f in representative(gallery) if "model_file" in f.meta]
    if any(f.meta["generated_by"]["keras"] != keras.keras_version() for f in picked):
        pytest.skip(f"the gallery was saved with another Keras than {keras.keras_version()}")
    for fixture in picked:
        calls = fixture.meta.get("calls")
        model, inputs, outputs = keras_load.contract_model(
            fixture.layer, fixture.config, fixture.weights, fixture.inputs,
            batch_size=fixture.inputs["x"].shape[0] if calls else None, stateful=bool(calls))
        data = keras_load.model_file_bytes(model)
        entry = keras_load.model_file_entry(keras_load.MODEL_FILE, data, inputs, outputs)
        assert entry == fixture.meta["model_file"], f"{fixture.id}: regenerated model_file entry differs"
        assert data == (fixture.path / keras_load.MODEL_FILE).read_bytes(), f"{fixture.id}: model.keras bytes differ"


def _copy(fixture, root):
    target = root / fixture.id
    shutil.copytree(fixture.path, target)
    return target


def test_keras_load_refuses_a_tampered_model_file(gallery, tmp_path):
    fixture = next(f for f in gallery if f.id == "lstm-basic")
    folder = _copy(fixture, tmp_path)
    data = bytearray((folder / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.keras").write_bytes(bytes(data))
    verdict = judge(Case(implementation("keras-load"), load_fixture(folder)), 60)
    assert verdict.status == "error", verdict  # the fixture is broken, not the implementation
    assert "broken fixture 'lstm-basic'" in verdict.message, verdict.message
    assert "model.keras does not match its sha256" in verdict.message, verdict.message


def test_keras_load_uses_safe_mode(gallery, tmp_path):
    """A model file with a Lambda layer (Python bytecode), listed with its correct sha256, is refused unrun: its
    config is checked before Keras reads it (SPEC 13.1), so the fixture is broken, whatever safe mode covers."""
    import keras
    from conformance.adapters import keras_load
    fixture = next(f for f in gallery if f.id == "lstm-basic")
    marker = tmp_path / "lambda-ran"
    touch = lambda t, path=str(marker): (open(path, "w").close(), t)[1]  # noqa: E731 - a lambda is saved as bytecode

    x = keras.Input(shape=fixture.inputs["x"].shape[1:], name="x")
    model = keras.Model(x, keras.layers.Lambda(touch, name="hostile")(keras.layers.LSTM(2, name="rnn")(x)))
    assert marker.exists(), "the Lambda should run once while the model is built (else the test proves nothing)"
    data = keras_load.model_file_bytes(model)
    marker.unlink(missing_ok=True)  # building the model called the function once; the load must not
    meta = read_meta(fixture.path)
    meta["model_file"] = keras_load.model_file_entry("model.keras", data, ["x"], ["output"])
    plain = {k: v for k, v in meta.items() if k not in ("format_version", "arrays", "digest")}
    root = tmp_path / "fixtures"
    writer.write_fixture(root, writer.finish_meta(plain, fixture.arrays), dict(fixture.arrays), {"model.keras": data})
    verdict = judge(Case(implementation("keras-load"), load_fixture(root / fixture.id)), 60)
    assert verdict.status == "error", verdict
    assert "model.keras asks Keras to deserialize what this suite never loads" in verdict.message, verdict.message
    assert "Lambda 'hostile': class 'Lambda' is not a built-in" in verdict.message, verdict.message
    assert not marker.exists(), "the Lambda's code ran while keras-load loaded the file"


# -- tflite ----------------------------------------------------------------------------------------

def tflite_selection(gallery):
    return representative(gallery) if os.environ.get("LSTM_CONFORMANCE_TFLITE_QUICK") == "1" else list(gallery)


TFLITE_PARTS = 8  # the gallery's conversions (minutes, cold) in parts, so pytest-xdist spreads them over its workers


@pytest.mark.parametrize("part", range(TFLITE_PARTS))
def test_tflite_passes_what_it_claims_and_records_ops(gallery, part):
    from conformance.adapters import tflite
    fixtures = tflite_selection(gallery)[part::TFLITE_PARTS]
    verdicts = run_all("tflite", fixtures)
    check("tflite", fixtures, verdicts)
    run = implementation("tflite").load()
    seen = set(run.info()["tflite_ops"].split(","))
    for fixture in fixtures:
        if verdicts[fixture.id].status != "passed":
            continue
        note = run.notes(fixture.id)
        assert note and note.startswith("ops "), f"{fixture.id}: no ops recorded ({note!r})"
        ops = set(note[len("ops "):].split(";")[0].split(" ")[0].split(","))
        assert ops <= seen, f"{fixture.id}: ops {sorted(ops - seen)} missing from info()['tflite_ops']"
        if fixture.config.get("unroll"):  # unroll=True: every step laid out in the graph, no loop
            assert not ops & LOOP_OPS, f"{fixture.id}: unrolled, yet a loop op among {sorted(ops)}"
        else:
            assert ops & LOOP_OPS, f"{fixture.id}: no recurrent loop op among {sorted(ops)}"
        if fixture.meta.get("calls"):  # stateful: the interpreter itself carries the states
            assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= ops, f"{fixture.id}: {sorted(ops)}"
    assert tflite.interpreter_class()[1] in ("tf.lite", "ai_edge_litert")


def test_tflite_ops_reach_the_json_summary(tmp_path):
    """Through pytest and the plug-in: per-case impl_notes and the run's op union land in --conformance-json."""
    out = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "--impl", "tflite",
                           "--fixture-id", "lstm-mask-leading", "--fixture-id", "stateful-lstm-reset",
                           "-p", "no:cacheprovider", "-q", f"--conformance-json={out}"],
                          cwd=tmp_path, env=clean_env(TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(out.read_text())
    cases = {c["fixture"]: c for c in summary["cases"]}
    assert {c["status"] for c in cases.values()} == {"passed"}, cases
    union = set(summary["implementations"]["tflite"]["tflite_ops"].split(","))
    for fid, case in cases.items():
        assert case["impl_notes"] and case["impl_notes"].startswith("ops "), (fid, case)
        assert set(case["impl_notes"][4:].split(";")[0].split(" ")[0].split(",")) <= union
    assert "fresh interpreter" in cases["stateful-lstm-reset"]["impl_notes"]


def test_a_second_run_reads_the_conversion_from_the_cache(tmp_path, monkeypatch):
    """TFLite conversions are cached (conformance.cache): the second run converts nothing and gives the same arrays."""
    from conformance import cache, gallery_dir
    from conformance.adapters import tflite

    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    fixture = load_fixture(gallery_dir() / "lstm-mask-trailing")
    first = tflite.run(fixture.isolated())
    assert "cached conversion" not in tflite.notes(fixture.id)
    assert [row[0] for row in cache.summary()] == ["tflite"]
    monkeypatch.setattr(tflite, "convert", lambda *a, **k: pytest.fail("converted again despite the cache"))
    second = tflite.run(fixture.isolated())
    assert "cached conversion" in tflite.notes(fixture.id)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
