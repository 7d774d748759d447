"""Twins (SPEC 5.12): a fixture built another way (RNN(cell), unroll, implementation, dropout at inference,
Keras 2's time_major) doubles a plain fixture, with the same seed, weights, inputs and initial states.

Keras computed each of the two separately; here they must agree, the configs must differ only in options
SPEC says change nothing (time_major: the layout), and the numpy reference must reproduce the twin.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conformance import reference
from conformance.compare import close, matches

from helpers.repo import REPO

# The options a twin may add (SPEC 2.3, 5.12); every other config key must equal its twin's.
NO_EFFECT = {"cell_wrapper", "unroll", "implementation", "dropout", "recurrent_dropout", "time_major"}


def _twins() -> list[tuple[str, str]]:
    pairs = []
    for name in ("cells.yaml", "options.yaml"):
        data = yaml.safe_load((REPO / "catalog" / name).read_text())
        pairs += [(entry["id"], entry["twin"]) for entry in data["fixtures"]]
    return pairs


TWINS = _twins()


@pytest.fixture(scope="module")
def by_id(gallery):
    return {f.id: f for f in gallery}


def _time_major(fixture) -> bool:
    return bool(fixture.config.get("time_major"))


def _batch_major(fixture, name: str, array: np.ndarray) -> np.ndarray:
    """A time-major fixture's ``x`` and returned sequence, (batch, time, ...) like its twin's."""
    if _time_major(fixture) and (name == "x" or (name == "output" and fixture.config.get("return_sequences"))):
        return np.swapaxes(array, 0, 1)
    return array


def _plain(config: dict) -> dict:
    plain = {k: v for k, v in config.items() if k not in NO_EFFECT}
    if "layers" in plain:
        plain["layers"] = [{**sub, "config": _plain(sub["config"])} for sub in plain["layers"]]
    return plain


def test_every_catalog_file_with_twins_is_read():
    assert len(TWINS) >= 10 and all(a != b for a, b in TWINS)
    tags = {tag for name in ("cells.yaml", "options.yaml")
            for e in yaml.safe_load((REPO / "catalog" / name).read_text())["fixtures"] for tag in e["tags"]}
    assert {"cell_wrapper", "unroll", "implementation", "dropout", "time_major"} <= tags


@pytest.mark.parametrize("fid, twin", TWINS, ids=[f"{a}~{b}" for a, b in TWINS])
def test_twin_holds_the_same_data_and_differs_only_in_options_that_change_nothing(fid, twin, by_id):
    fixture, plain = by_id[fid], by_id[twin]
    assert fixture.layer == plain.layer
    assert fixture.meta["seed"] == plain.meta["seed"]
    assert _plain(fixture.config) == _plain(plain.config), "the configs differ in an option that changes values"
    assert set(fixture.config) - set(plain.config) <= NO_EFFECT
    assert fixture.gates == plain.gates and fixture.activations == plain.activations
    for group in ("weights", "inputs"):
        mine, theirs = getattr(fixture, group), getattr(plain, group)
        assert list(mine) == list(theirs)
        for name in mine:  # drawn from the same seed: bit for bit
            assert np.array_equal(_batch_major(fixture, name, mine[name]), theirs[name]), f"{group} {name}"
    assert list(fixture.expected) == list(plain.expected)
    for name, want in plain.expected.items():  # Keras, computed twice: the same numbers within the tolerance
        got = _batch_major(fixture, name, fixture.expected[name])
        assert got.shape == want.shape
        assert close(got, want, plain.tolerance).all(), f"{name}: max abs diff {np.abs(got - want).max():.3g}"
    for name, want in plain.trace.items():  # the reference's trace, batch-major in both
        assert np.allclose(fixture.trace[name], want, atol=1e-6), name


@pytest.mark.parametrize("fid", [a for a, _ in TWINS])
def test_the_reference_reproduces_the_twin(fid, by_id):
    fixture = by_id[fid]
    result = reference.run(fixture)
    assert matches(fixture, {k: v for k, v in result.items() if k != "trace"})


def test_dropout_fixtures_equal_the_layer_without_dropout(by_id):
    """Every fixture with dropout > 0 holds what the same layer without dropout computes: its twin's values
    where it has one, else Keras itself rebuilt without dropout (``lstm-dropout-inference``)."""
    twins = dict(TWINS)
    dropping = [f for f in by_id.values() if f.config.get("dropout") or f.config.get("recurrent_dropout")]
    assert len(dropping) >= 3
    without_twin = []
    for fixture in dropping:
        assert "dropout" in fixture.tags
        if fixture.id in twins:
            plain = by_id[twins[fixture.id]]
            assert not plain.config.get("dropout") and not plain.config.get("recurrent_dropout")
            for name, want in plain.expected.items():
                assert close(fixture.expected[name], want, fixture.tolerance).all(), (fixture.id, name)
        else:
            without_twin.append(fixture)
    assert [f.id for f in without_twin] == ["lstm-dropout-inference"]
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    from conformance.adapters import keras as keras_adapter
    for fixture in without_twin:
        config = {k: v for k, v in fixture.config.items() if k not in ("dropout", "recurrent_dropout")}
        got = keras_adapter.compute(fixture.layer, config, fixture.weights, fixture.inputs)
        for name, want in fixture.expected.items():
            assert close(got[name], want, fixture.tolerance).all(), (fixture.id, name)


def test_time_major_changes_only_the_layout(by_id):
    """The reference computes a time-major fixture from x (time, batch, features), states (batch, units)."""
    fixture = by_id["lstm-time-major"]
    steps, batch = fixture.inputs["x"].shape[:2]
    assert fixture.expected["output"].shape[:2] == (steps, batch)
    assert fixture.expected["state_h"].shape[0] == batch
    assert fixture.meta["applies_to"] == {"keras": "<3"} and "model_file" not in fixture.meta
    out = reference.forward(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                            fixture.inputs)  # a port calling the time loop directly, as README's skeleton does
    assert close(out["output"], fixture.expected["output"], fixture.tolerance).all()


def test_a_time_major_mismatch_is_named_by_batch_and_timestep(by_id):
    """A failure message labels an element of a (time, batch, units) sequence by its batch row and timestep."""
    from conformance.compare import compare
    fixture = by_id["lstm-time-major"]
    result = {k: np.array(v) for k, v in reference.run(fixture).items() if k != "trace"}
    result["output"][3, 1, 2] += 0.1  # timestep 3, batch row 1, unit 2
    message = compare(fixture, result, "port").message
    assert "first offending element [batch 1, timestep 3, unit 2]" in message, message
    assert "time-major sequence" in message
