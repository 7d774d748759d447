"""The fixture.yaml JSON Schema: every shipped fixture validates, and broken metadata is refused by path.

Negative cases mutate a real fixture's parsed YAML, so each differs from a valid
document in exactly one place; the message must name that place.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest

from helpers.repo import REPO
import yaml

from conformance import schema
from conformance.errors import FixtureError
from conformance.fixtures import REQUIRED_FIELDS, SAFE_ID, YAML_NAME, compute_digest, gallery_dir, list_fixtures

GALLERY = gallery_dir()
FOLDERS = sorted(p for p in GALLERY.iterdir() if (p / YAML_NAME).is_file())
BASE_ID = "lstm-seed-question"


def raw_schema() -> dict:
    return json.loads(schema.schema_path().read_text(encoding="utf-8"))


def base_meta() -> dict:
    return yaml.safe_load((GALLERY / BASE_ID / YAML_NAME).read_text())


def rejection(meta) -> str:
    with pytest.raises(FixtureError) as info:
        schema.validate_meta(meta, "somewhere/fixture.yaml")
    assert info.value.where == "somewhere/fixture.yaml"
    return info.value.detail


def test_the_schema_is_valid_draft_2020_12_and_lies_inside_the_package():
    document = raw_schema()
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)
    package = Path(schema.__file__).resolve().parent.parent  # conformance/, where the schema folder is
    assert schema.schema_path().is_relative_to(package), "the schema must ship inside the conformance package"


def test_schema_required_fields_and_id_pattern_match_the_loader():
    document = raw_schema()
    assert document["required"] == list(REQUIRED_FIELDS)
    assert document["properties"]["id"]["pattern"] == SAFE_ID.pattern


def test_the_gallery_is_not_empty():
    assert len(FOLDERS) >= 40, f"expected the gallery in {GALLERY}, found {len(FOLDERS)} fixtures"


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_every_shipped_fixture_validates(folder):
    meta = yaml.safe_load((folder / YAML_NAME).read_text())
    # The portable schema on its own (what a consumer in another language runs) ...
    errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft202012Validator(raw_schema()).iter_errors(meta)]
    assert not errors, f"{folder.name}: {errors[:3]}"
    # ... and the loader's check, which adds the rules JSON Schema cannot state.
    schema.validate_meta(meta, folder / YAML_NAME)


def _drop(field):
    def mutate(meta):
        del meta[field]
    return mutate


def _set(path, value):
    def mutate(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


# (case id, mutation, text the message must contain, whether the portable schema alone rejects it)
NEGATIVE = [
    ("missing-digest", _drop("digest"), "digest", True),
    ("missing-gates", _drop("gates"), "gates", True),
    ("bad-digest-pattern", _set(["digest"], "sha256:0123"), "$.digest", True),
    ("digest-uppercase-hex", _set(["digest"], "sha256:" + "A" * 64), "$.digest", True),
    ("gate-start-equals-stop", _set(["gates", "kernel", "f"], [2, 2]), "$.gates.kernel.f", False),
    ("gate-start-after-stop", _set(["gates", "recurrent_kernel", "o"], [8, 6]), "$.gates.recurrent_kernel.o", False),
    ("gate-past-last-axis", _set(["gates", "bias", "o"], [6, 9]), "$.gates.bias.o", False),
    ("gate-three-numbers", _set(["gates", "kernel", "i"], [0, 1, 2]), "$.gates.kernel.i", True),
    ("gate-negative-start", _set(["gates", "kernel", "i"], [-1, 2]), "$.gates.kernel.i[0]", True),
    ("unknown-layer", _set(["layer"], "ConvLSTM4D"), "$.layer", True),
    ("bad-id", _set(["id"], "../escape"), "$.id", True),
    ("id-uppercase", _set(["id"], "LSTM-Basic"), "$.id", True),
    ("layer-not-a-string", _set(["layer"], 1), "$.layer", True),
    ("hard-sigmoid-without-slope", _set(["activations", "recurrent_activation"],
                                        {"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)",
                                         "offset": 0.5}), "$.activations.recurrent_activation", True),
    ("activation-parameter-not-a-number", _set(["activations", "activation", "slope"], "1/6"),
     "$.activations.activation.slope", True),
    ("activation-without-formula", _set(["activations", "activation"], {"name": "tanh"}),
     "$.activations.activation", True),
    ("negative-atol", _set(["tolerance", "atol"], -1e-5), "$.tolerance.atol", True),
    ("nan-rtol", _set(["tolerance", "rtol"], math.nan), "$.tolerance.rtol", False),
    ("tolerance-without-rtol", _set(["tolerance"], {"atol": 1e-5}), "$.tolerance", True),
    ("array-short-sha256", _set(["arrays", "kernel", "sha256"], "abc"), "$.arrays.kernel.sha256", True),
    ("array-float-shape", _set(["arrays", "trace/h", "shape"], [2, 2.5, 2]), '$.arrays["trace/h"].shape[1]', True),
    ("array-without-dtype", _set(["arrays", "x"], {"shape": [2, 2, 1], "sha256": "0" * 64}), "$.arrays.x", True),
    ("array-name-escapes", _set(["arrays", "../x"], {"shape": [1], "dtype": "float32", "sha256": "0" * 64}),
     '$.arrays', True),
    ("output-without-array", _set(["outputs"], ["output", "state_h", "state_c", "state_q"]), "$.outputs[3]", False),
    ("trace-without-array", _set(["trace"], ["i", "f", "g"]), "$.trace[2]", False),
    ("applies-to-not-a-specifier", _set(["applies_to"], {"keras": "3"}), "$.applies_to.keras", True),
    ("applies-to-empty-backends", _set(["applies_to"], {"backends": []}), "$.applies_to.backends", True),
    ("tags-not-a-list", _set(["tags"], "mask"), "$.tags", True),
    ("seed-negative", _set(["seed"], -3), "$.seed", True),
    ("units-zero", _set(["config", "units"], 0), "$.config.units", True),
    ("return-sequences-not-boolean", _set(["config", "return_sequences"], "yes"), "$.config.return_sequences", True),
    ("generated-by-number", _set(["generated_by", "keras"], 3.15), "$.generated_by.keras", True),
    ("non-string-key", _set(["gates", 0], {"i": [0, 2]}), "$.gates", False),
]


@pytest.mark.parametrize("mutate, needle, portable", [c[1:] for c in NEGATIVE], ids=[c[0] for c in NEGATIVE])
def test_a_broken_field_is_rejected_by_its_path(mutate, needle, portable):
    meta = base_meta()
    schema.validate_meta(copy.deepcopy(meta), "base")  # the unmutated fixture is valid
    mutate(meta)
    message = rejection(meta)
    assert needle in message, f"the message does not name {needle!r}: {message}"
    if portable:  # the schema file alone catches it: a non-Python consumer gets the same answer
        assert not jsonschema.Draft202012Validator(raw_schema()).is_valid(meta)


# The wrapper, stack and stateful families, mutated the same way (fixture id, case id, mutation, path named).
FAMILY_NEGATIVE = [
    ("stacked-lstm-gru", "stacked-unknown-sublayer", _set(["config", "layers", 1, "layer"], "Dense"),
     "$.config.layers[1].layer"),
    ("stacked-lstm-gru", "stacked-sublayer-units-zero", _set(["config", "layers", 0, "config", "units"], 0),
     "$.config.layers[0].config.units"),
    ("stacked-lstm-gru", "stacked-activation-without-formula",
     _set(["activations", "layers/2", "activation"], {"name": "tanh"}), '$.activations["layers/2"].activation'),
    ("bidirectional-lstm-none-sequences", "bidirectional-unknown-merge", _set(["config", "merge_mode"], "max"),
     "$.config.merge_mode"),
    ("bidirectional-lstm-none-sequences", "bidirectional-gate-past-axis",
     _set(["gates", "backward/bias", "o"], [9, 13]), '$.gates["backward/bias"].o'),
    ("stateful-gru-reset", "stateful-zero-step-call", _set(["calls", "steps"], [3, 0, 6]), "$.calls.steps[1]"),
    ("stateful-gru-reset", "stateful-without-steps", _set(["calls"], {"reset_before": [1]}), "$.calls"),
]


@pytest.mark.parametrize("fixture_id, mutate, needle", [(c[0], *c[2:]) for c in FAMILY_NEGATIVE],
                         ids=[c[1] for c in FAMILY_NEGATIVE])
def test_a_broken_family_field_is_rejected_by_its_path(fixture_id, mutate, needle):
    if not (GALLERY / fixture_id).is_dir():
        pytest.fail(f"the gallery in {GALLERY} has no {fixture_id!r} to mutate")
    meta = yaml.safe_load((GALLERY / fixture_id / YAML_NAME).read_text())
    schema.validate_meta(copy.deepcopy(meta), fixture_id)
    mutate(meta)
    message = rejection(meta)
    assert needle in message, f"the message does not name {needle!r}: {message}"


def test_missing_fields_are_all_named_in_the_loader_s_wording():
    meta = base_meta()
    del meta["digest"], meta["tolerance"]
    message = rejection(meta)
    assert message.startswith("missing required field(s): ")
    assert "tolerance" in message and "digest" in message


def test_a_long_offending_value_is_not_quoted_in_full():
    meta = base_meta()
    meta["arrays"] = [list(range(50))] * 50
    message = rejection(meta)
    assert message.startswith("$.arrays: ") and len(message) < 200, message


def test_a_yaml_date_is_not_json_data():
    meta = base_meta()
    meta["description"] = yaml.safe_load("2024-01-02")
    assert "$.description" in rejection(meta)


@pytest.mark.parametrize("addition", [
    ("top-level-key", ["model_files"], [{"keras": "model.keras"}]),
    ("new-gate-names", ["gates", "forward/kernel"], {"z": [0, 2], "r": [2, 4], "h": [4, 6]}),
    ("new-activation-role", ["activations", "cell_activation"], {"name": "softsign", "formula": "x / (1 + |x|)"}),
    ("new-config-key", ["config", "time_major"], False),
    ("applies-to-backends", ["applies_to"], {"keras": ">=3.0,<4", "backends": ["tensorflow", "jax"]}),
], ids=lambda a: a[0])
def test_forward_compatible_additions_are_allowed(addition):
    _, path, value = addition
    meta = base_meta()
    _set(path, value)(meta)
    schema.validate_meta(meta, "base")
    assert jsonschema.Draft202012Validator(raw_schema()).is_valid(meta)


def test_the_loader_refuses_a_schema_violation_with_the_file_and_path(tmp_path):
    """Through the loader: the fixture lists, but opening it fails on the schema, before arrays.npz is read."""
    good = base_meta()
    bad = copy.deepcopy(good)
    bad["id"] = "lstm-broken-gates"
    bad["gates"]["kernel"]["c"] = [6, 4]
    bad["digest"] = compute_digest(bad)  # a consistent digest: the schema, not tampering, must catch it
    for meta in (good, bad):
        folder = tmp_path / meta["id"]
        folder.mkdir()
        (folder / YAML_NAME).write_text(yaml.safe_dump(meta, sort_keys=False))
    listing = list_fixtures(tmp_path)
    assert not listing.errors, [str(e) for e in listing.errors]
    broken = {f.id: f for f in listing.fixtures}["lstm-broken-gates"]
    with pytest.raises(FixtureError) as info:
        broken.arrays  # noqa: B018 - opening the fixture is the action under test
    assert info.value.where == str(tmp_path / "lstm-broken-gates" / YAML_NAME)
    assert "$.gates.kernel.c" in info.value.detail and "start must be < stop" in info.value.detail


def test_the_compiled_validator_is_built_once():
    assert schema._validator() is schema._validator()


# -- SPEC.md stays true to the fixtures and the schema ----------------------------------------------

SPEC = REPO / "SPEC.md"


def test_spec_documents_every_field_the_schema_defines():
    text = SPEC.read_text(encoding="utf-8")
    undocumented = [field for field in raw_schema()["properties"] if f"| `{field}` |" not in text]
    assert not undocumented, f"SPEC.md's field table lacks: {undocumented}"


def test_spec_worked_example_matches_the_fixture():
    """The step-0 numbers pasted into SPEC.md are recomputed from lstm-seed-question's arrays and trace."""
    import numpy as np

    from conformance.fixtures import load_fixture

    text = SPEC.read_text(encoding="utf-8")
    table = text.split("<!-- worked-example:begin")[1].split("<!-- worked-example:end")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("quantity", "---"):
            rows[cells[0]] = np.array([float(cells[2]), float(cells[3])])
    fixture = load_fixture(GALLERY / BASE_ID)
    kernel, bias, x = (np.asarray(fixture.arrays[n], np.float64) for n in ("kernel", "bias", "x"))
    want = {f"z_{g}": x[0, 0] @ kernel[:, a:b] + bias[a:b] for g, (a, b) in fixture.gates["kernel"].items()}
    want.update({name: fixture.trace[name][0, 0] for name in ("i", "f", "c_tilde", "o", "c", "h")})
    assert sorted(rows) == sorted(want), f"SPEC.md's worked example has rows {sorted(rows)}"
    for name, value in want.items():
        assert np.allclose(rows[name], value, rtol=0, atol=1e-7), f"{name}: SPEC.md says {rows[name]}, fixture {value}"


def test_absurd_nesting_is_a_fixture_error_not_a_crash():
    meta = base_meta()
    deep = []
    for _ in range(5000):
        deep = [deep]
    meta["tags"] = deep
    assert "nests too deeply" in rejection(meta)
