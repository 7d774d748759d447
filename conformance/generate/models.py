"""A ``layer: Model`` catalog entry (catalog/models.yaml) as the parts of its fixture (SPEC 5.15).

The entry lists its layers (Keras class and the options given); here every option that matters is written
out, the weights are drawn with each layer's shapes (``layers/<k>/...``), and the inputs: ``x`` float32, or
int32 token ids in [1, input_dim) where the first layer is an Embedding, with ``padding`` (per row, the
leading and trailing steps) set to the 0 token or the Masking value so the mask made in the graph applies.
"""

from __future__ import annotations

import numpy as np

from ..semantics import models
from ..semantics.families import family
from ..semantics.wrappers import join, layer_prefix

DEFAULTS = {
    "Embedding": {"mask_zero": False},
    "Masking": {"mask_value": 0.0},
    "Dense": {"activation": "linear", "use_bias": True},
    "TimeDistributed": {"wrapped": "Dense", "activation": "linear", "use_bias": True},
    "Conv1D": {"strides": [1], "padding": "valid", "activation": "linear", "use_bias": True},
}


def full_layer(layer: str, config: dict) -> dict:
    """One model layer's config with its semantic defaults written out."""
    from .entries import full_config
    if layer == "Bidirectional":
        inner = full_config(config["wrapped"], {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")})
        return {"wrapped": config["wrapped"], "merge_mode": config.get("merge_mode", "concat"), **inner}
    if layer in models.RECURRENT:
        return full_config(layer, config)
    if layer not in DEFAULTS:
        models.rule(layer, config)   # Unsupported, naming the known classes
    full = {**DEFAULTS[layer], **config}
    if layer == "Conv1D":
        full["kernel_size"] = list(np.atleast_1d(full["kernel_size"]).tolist())
        full["strides"] = list(np.atleast_1d(full["strides"]).tolist())
    return full


def model_config(entry: dict) -> dict:
    layers = []
    for sub in entry["layers"]:
        item = {"layer": sub["layer"], "config": full_layer(sub["layer"], sub.get("config", {}))}
        item.update({k: sub[k] for k in ("input", "initial_state_from") if k in sub})
        layers.append(item)
    return {"layers": layers}


def _recurrent_family(sub: dict) -> tuple[str, dict]:
    if sub["layer"] == "Bidirectional":
        return sub["config"]["wrapped"], sub["config"]
    return sub["layer"], sub["config"]


def draw_inputs(entry: dict, config: dict, rng) -> dict:
    batch, steps = entry["batch"], entry["timesteps"]
    first = config["layers"][0]
    inputs = {}
    if first["layer"] == "Embedding":
        x = rng.integers(1, first["config"]["input_dim"], size=(batch, steps)).astype(np.int32)
        pad_value = 0
    else:
        x = rng.uniform(-1, 1, size=(batch, steps, entry["features"])).astype(np.float32)
        pad_value = first["config"].get("mask_value", 0.0) if first["layer"] == "Masking" else None
    for row, (lead, trail) in enumerate(entry.get("padding", [])):
        if pad_value is None:
            raise ValueError(f"{entry['id']}: padding needs an Embedding or a Masking first layer")
        x[row, :lead] = pad_value
        x[row, steps - trail:] = pad_value
    inputs["x"] = x
    for name, shape in entry.get("extra_inputs", {}).items():
        inputs[name] = rng.uniform(-1, 1, size=(batch, *shape)).astype(np.float32)
    return inputs


def draw(entry: dict, config: dict, inputs: dict, rng) -> tuple[dict, dict, dict, list]:
    """(weights, gates, activations, subs): every layer's weights drawn in order, with its input's last axis."""
    from .entries import ACTIVATIONS, activation_spec
    scale, bias_scale = entry.get("weight_scale", 0.5), entry.get("bias_scale", 0.5)

    def uniform(shape, limit):
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    weights, gates, activations, subs = {}, {}, {}, []
    features = None if config["layers"][0]["layer"] == "Embedding" else inputs["x"].shape[-1]
    for k, sub in enumerate(config["layers"]):
        layer, cfg, prefix = sub["layer"], sub["config"], layer_prefix(k)
        if sub.get("input"):
            features = inputs[sub["input"]].shape[-1]
        if layer in models.RECURRENT:
            wrapped, inner = _recurrent_family(sub)
            fam = family(wrapped)
            halves = ("forward", "backward") if layer == "Bidirectional" else ("",)
            for half in halves:
                where = join(prefix, half) if half else prefix
                for name, shape in fam.weight_shapes(inner, features).items():
                    weights[join(where, name)] = uniform(shape, bias_scale if name == "bias" else scale)
                for name, blocks in fam.gate_slices(fam.units(inner), inner["use_bias"]).items():
                    gates[join(where, name)] = blocks
            activations[prefix] = activation_spec(entry, wrapped, inner)[0]
            subs.append((prefix, wrapped, inner))
            units = fam.units(inner)
            features = units * (2 if layer == "Bidirectional" and cfg.get("merge_mode", "concat") == "concat" else 1)
            continue
        if layer == "Embedding":
            weights[join(prefix, "embeddings")] = uniform((cfg["input_dim"], cfg["output_dim"]), 1.0)
            features = cfg["output_dim"]
        elif layer in ("Dense", "TimeDistributed"):
            weights[join(prefix, "kernel")] = uniform((features, cfg["units"]), scale)
            if cfg["use_bias"]:
                weights[join(prefix, "bias")] = uniform((cfg["units"],), bias_scale)
            features = cfg["units"]
        elif layer == "Conv1D":
            weights[join(prefix, "kernel")] = uniform((cfg["kernel_size"][0], features, cfg["filters"]), scale)
            if cfg["use_bias"]:
                weights[join(prefix, "bias")] = uniform((cfg["filters"],), bias_scale)
            features = cfg["filters"]
        if "activation" in cfg:
            activations[prefix] = {"activation": dict(ACTIVATIONS[cfg["activation"]])}
    return weights, gates, activations, subs


def parts(entry: dict):
    """The fixture's parts (``entries.Parts``) before any oracle runs."""
    from .entries import Parts, seed_of
    rng = np.random.default_rng(seed_of(entry))
    config = model_config(entry)
    inputs = draw_inputs(entry, config, rng)
    weights, gates, activations, subs = draw(entry, config, inputs, rng)
    return Parts(layer="Model", config=config, weights=weights, gates=gates, activations=activations,
                 inputs=inputs, calls=None, subs=subs, overrides={})
