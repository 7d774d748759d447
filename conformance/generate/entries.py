"""From a catalog entry to a fixture's metadata and arrays: the pure part of the generator.

A catalog entry (``catalog/*.yaml``, merged over its file's defaults) says which layer, which options,
which shapes and scales, and the seed. This module turns it into what the fixture holds apart from the
expected outputs: the full config, seeded weights and inputs, the gate map (the layer family's,
``conformance.families``), the activation definitions, and finally the metadata. ``generate_fixtures.py``
(Keras as the oracle) and the fuzzer (Keras or the numpy reference as the oracle, entries drawn by
Hypothesis) both build fixtures with it, so a fuzzer counterexample is made exactly the way a gallery
fixture is. numpy only: Keras is imported lazily by
the few helpers that need it (the Keras 2 ``hard_sigmoid`` override, the saved model).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from ..format import model_file
from ..semantics import wrappers
from ..semantics.families import family
from ..semantics.problem import Problem
from ..semantics.tolerance import port_dtype, precision

ACTIVATIONS = {
    "tanh": {"name": "tanh", "formula": "tanh(x)"},
    "sigmoid": {"name": "sigmoid", "formula": "1 / (1 + exp(-x))"},
    "relu": {"name": "relu", "formula": "max(x, 0)"},
    "linear": {"name": "linear", "formula": "x"},
}
# hard_sigmoid changed between Keras 2 and Keras 3; each variant is explicit data.
HARD_SIGMOID = {
    "keras3": {"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)", "slope": 1 / 6, "offset": 0.5},
    "keras2": {"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)", "slope": 0.2, "offset": 0.5},
}
HARD_SIGMOID_APPLIES = {"keras3": ">=3", "keras2": "<3"}

# The layer options each family writes out, with Keras's defaults, are the family's ``config_keys``.
SEQUENCE_KEYS = ("return_sequences", "return_state", "go_backwards")
DEFAULTS = {"return_sequences": False, "return_state": False, "go_backwards": False}


def seed_of(entry: dict) -> int:
    """A fixture's seed: explicit, or derived from its id (so adding an entry never shifts others).

    ``twin: <id>`` takes that fixture's seed: with the same shapes, the same weights, inputs and initial
    states, so the two fixtures differ only in the options their configs set (``tests/unit/test_twins.py``)."""
    if "seed" in entry:
        return int(entry["seed"])
    return int(hashlib.sha256(entry.get("twin", entry["id"]).encode()).hexdigest()[:8], 16)


def full_config(layer: str, config: dict) -> dict:
    """The catalog config with every semantic default written out, so no reader needs Keras's defaults."""
    full = family(layer).full_config(config)
    full.update({k: config.get(k, DEFAULTS[k]) for k in SEQUENCE_KEYS})
    full.update({k: v for k, v in config.items() if k not in full})  # extras: dropout, zero_output_for_mask...
    return full


def sublayers(entry: dict) -> list[tuple[str, str, dict]]:
    """(weight prefix, layer class, full config) of each recurrent layer in the fixture."""
    layer = entry["layer"]
    if layer == "Bidirectional":
        inner = full_config(entry["wrapped"], entry["config"])
        return [("forward", entry["wrapped"], inner), ("backward", entry["wrapped"], inner)]
    if layer == "Stacked":
        return [(wrappers.layer_prefix(k), sub["layer"], full_config(sub["layer"], sub["config"]))
                for k, sub in enumerate(entry["layers"])]
    return [("", layer, full_config(layer, entry["config"]))]


def fixture_config(entry: dict, subs: list) -> dict:
    if entry["layer"] == "Bidirectional":
        return {"wrapped": entry["wrapped"], "merge_mode": entry.get("merge_mode", "concat"), **subs[0][2]}
    # cell_wrapper (SPEC 2.3): the same layer(s) built by Keras as RNN(cell) / RNN(StackedRNNCells([...]))
    wrapper = {"cell_wrapper": entry["cell_wrapper"]} if entry.get("cell_wrapper") else {}
    if entry["layer"] == "Stacked":
        return {"layers": [{"layer": layer, "config": config} for _, layer, config in subs], **wrapper}
    return {**subs[0][2], **wrapper}


def activation_spec(entry: dict, layer: str, config: dict) -> tuple[dict, dict]:
    """Structured activation definitions, and Keras callables where a variant needs one."""
    variant = entry.get("hard_sigmoid", "keras3")
    specs, overrides = {}, {}
    for key in ("activation", "recurrent_activation"):
        if key not in config:
            continue
        name = config[key]
        if name == "hard_sigmoid":
            specs[key] = dict(HARD_SIGMOID[variant])
            if variant == "keras2":  # this Keras is 3: compute the Keras 2 formula through Keras itself
                overrides[key] = keras2_hard_sigmoid
        else:
            specs[key] = dict(ACTIVATIONS[name])
    return specs, overrides


def keras2_hard_sigmoid(x):
    from ..adapters.keras import keras_module
    ops = keras_module().ops
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def x_shape(entry: dict) -> tuple[int, ...]:
    """(batch, timesteps, features), or (batch, timesteps, *spatial, channels) for a convolutional family
    (``spatial``: the input's rows, or rows and columns; ``features`` is then the channels)."""
    return (entry["batch"], entry["timesteps"], *entry.get("spatial", ()), entry["features"])


def draw(entry: dict, subs: list) -> tuple[dict, dict]:
    """Seeded weights and inputs, float32, uniform in the catalog's ranges; every shape is the family's."""
    rng = np.random.default_rng(seed_of(entry))
    batch, steps = entry["batch"], entry["timesteps"]
    scale, bias_scale = entry.get("weight_scale", 0.5), entry.get("bias_scale", 0.5)

    def uniform(shape, limit):
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    weights, inputs, shape_in, state_shapes = {}, {}, x_shape(entry), {}
    for prefix, layer, config in subs:
        fam = family(layer)
        for name, shape in fam.weight_shapes(config, shape_in[-1]).items():
            weights[wrappers.join(prefix, name)] = uniform(shape, bias_scale if name == "bias" else scale)
        state_shapes[prefix] = fam.state_shape(config, shape_in)
        if entry["layer"] == "Stacked":  # the next layer reads this one's output sequence
            shape_in = (batch, steps, *state_shapes[prefix][1:])
    if "x" in entry:
        inputs["x"] = np.asarray(entry["x"], np.float32).reshape(x_shape(entry))
    else:
        inputs["x"] = uniform(x_shape(entry), entry.get("input_scale", 1.0))
    if entry.get("config", {}).get("time_major"):  # Keras 2's layout: x stored (time, batch, features)
        inputs["x"] = np.ascontiguousarray(np.swapaxes(inputs["x"], 0, 1))
    if "mask" in entry:
        inputs["mask"] = np.asarray(entry["mask"], bool).reshape(batch, steps)
    if entry.get("initial_state"):
        for prefix, layer, config in subs:
            for s in family(layer).states:
                inputs[wrappers.join(prefix, f"initial_state_{s}")] = uniform(state_shapes[prefix],
                                                                      entry.get("state_scale", 0.8))
    return weights, inputs


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parts(Problem):
    """What a fixture holds before any oracle runs: its problem, and what only generating it needs."""
    subs: list              # (weight prefix, layer class, full config) of each recurrent layer: ``sublayers``
    overrides: dict         # Keras callables standing in for an activation (Keras 2 hard_sigmoid), per prefix


def parts(entry: dict) -> Parts:
    """Config, seeded weights and inputs, gate map and activation definitions of one catalog entry."""
    layer = entry["layer"]
    if layer == "Model":  # SPEC 5.15: its layers, weights and inputs are drawn by conformance.generate.models
        from . import models
        return models.parts(entry)
    subs = sublayers(entry)
    config = fixture_config(entry, subs)
    weights, inputs = draw(entry, subs)
    gates, activations, overrides = {}, {}, {}
    for prefix, sub_layer, sub_config in subs:
        specs, sub_overrides = activation_spec(entry, sub_layer, sub_config)
        if layer == "Stacked":
            activations[prefix], overrides[prefix] = specs, sub_overrides
        else:
            activations, overrides = specs, sub_overrides
        fam = family(sub_layer)
        slices = fam.gate_slices(fam.units(sub_config), sub_config["use_bias"])
        gates.update({wrappers.join(prefix, name): blocks for name, blocks in slices.items()})
    return Parts(layer=layer, config=config, weights=weights, gates=gates, activations=activations, inputs=inputs,
                 calls=entry.get("calls"), subs=subs, overrides=overrides)


def fixture_meta(entry: dict, p: Parts, expected: dict, trace: dict, tolerance: dict | None = None) -> tuple[dict, dict]:
    """The metadata (no ``model_file``, ``generated_by`` or digest yet) and every array of one fixture.

    ``expected``: the oracle's outputs (in the dtype ``precision`` stores them); ``trace``: the reference's
    per-step trace (empty: none stored); ``tolerance``: resolved (``conformance.tolerance``), or the entry's.
    """
    tolerance = entry["tolerance"] if tolerance is None else tolerance
    trace_dtype = port_dtype(p.config)  # the reference's trace, as the numpy reference returns it
    arrays = {**p.weights, **p.inputs, **expected, **{f"trace/{k}": v.astype(trace_dtype) for k, v in trace.items()}}
    applies_to = dict(entry.get("applies_to", {}))
    if any("hard_sigmoid" in (c["activation"], c.get("recurrent_activation")) for _, _, c in p.subs):
        applies_to.setdefault("keras", HARD_SIGMOID_APPLIES[entry.get("hard_sigmoid", "keras3")])
    meta = {
        "id": entry["id"],
        "description": " ".join(entry["description"].split()),
        "layer": p.layer,
        "config": p.config,
        "activations": p.activations,
        "weights": list(p.weights),
        "gates": p.gates,
        "inputs": list(p.inputs),
        "outputs": list(expected),
        "trace": list(trace),
        "tolerance": tolerance,
        "tags": sorted(entry.get("tags", [])),
        "seed": seed_of(entry),
    }
    if "dtype" in p.config:
        meta["precision"] = precision(p.config)
    if p.calls:
        meta["calls"] = {"steps": list(p.calls["steps"]), "reset_before": list(p.calls.get("reset_before", []))}
    if applies_to:
        meta["applies_to"] = applies_to
    return meta, arrays


def saved_model(layer: str, config: dict, weights: dict, inputs: dict, calls) -> tuple[dict, dict]:
    """The fixture as a ``.keras`` file (inputs in, outputs and final states out), written reproducibly.

    ``keras-load`` loads it in safe mode instead of rebuilding the layer; its sha256 is in the YAML.
    """
    from ..adapters.keras_load import contract_model  # builds the model with Keras
    batch = inputs["x"].shape[0] if calls else None
    model, input_keys, output_keys = contract_model(layer, config, weights, inputs,
                                                    batch_size=batch, stateful=bool(calls))
    data = model_file.model_file_bytes(model)
    return model_file.model_file_entry(model_file.MODEL_FILE, data, input_keys, output_keys), {model_file.MODEL_FILE: data}
