"""Tiny models (``layer: Model``, format 2): an ordered list of Keras layers, computed in numpy (SPEC 5.15).

A Model fixture's config is data: ``layers``, each ``{layer: <Keras class>, config: {...}}`` with, where the
model is not a plain chain, ``input`` (the fixture input it reads instead of the previous layer's output) and
``initial_state_from`` (the layer whose final states are its ``initial_state``: an encoder-decoder). Weights
are named ``layers/<k>/<name>`` (a Bidirectional's ``layers/<k>/forward/<name>``), as in a Stacked fixture.

The recurrent layers are the families' and wrappers' own (``run_recurrent`` is the reference's ``outputs``, so
a mistake computed through ``Overrides`` reaches them too); the other layers and the mask rule live here.

The mask rule, Keras 3.15.1 (read in ``keras/src/layers``: ``layer.py`` ``Layer.__call__`` and
``compute_mask``, ``rnn/rnn.py`` ``RNN.compute_mask``, ``rnn/bidirectional.py``, ``core/embedding.py``,
``core/masking.py``, ``core/dense.py``, ``rnn/time_distributed.py``; and measured, tests/unit/test_models.py):
a layer *makes* a mask (Embedding with mask_zero: ``x != 0``; Masking: any feature != mask_value, and it
zeroes the masked steps), *passes* the mask it got (Dense, TimeDistributed, a recurrent layer returning
sequences), or *drops* it (a recurrent layer returning only its last output; Conv1D, which does not support
masking: Keras warns and the layers after it see none). A recurrent layer *consumes* the mask it gets.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ..errors import Unsupported
from .families.conv_lstm import convolve
from .problem import Problem
from .wrappers import join, layer_prefix, sub_mapping

RECURRENT = ("LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional")
OTHER = ("Embedding", "Masking", "Dense", "Conv1D", "TimeDistributed")
LAYER_CLASSES = (*RECURRENT, *OTHER)
TIME_DISTRIBUTED = ("Dense",)   # what a TimeDistributed may wrap in format 2

# SPEC 5.15: what each layer class does with a mask (``mask_after`` is the rule itself).
MAKES, PASSES, DROPS = "makes", "passes", "drops"
MASK_RULE = {
    "Embedding": f"{MAKES} x != 0 when mask_zero (else none)",
    "Masking": f"{MAKES} any(x != mask_value) over the last axis, and zeroes the masked steps",
    "Dense": f"{PASSES} it on unchanged",
    "TimeDistributed": f"{PASSES} it on unchanged",
    "Conv1D": f"{DROPS} it (no masking support: the layers after it see none)",
    "recurrent": f"consumes it; {PASSES} it on with return_sequences, {DROPS} it without",
}

RunRecurrent = Callable[[Problem], Mapping]


def rule(layer: str, config: Mapping) -> str:
    """``makes``, ``passes`` or ``drops``: what ``layer`` (with ``config``) does with the mask it is given."""
    if layer in RECURRENT:
        return PASSES if config.get("return_sequences") else DROPS
    if layer == "Embedding":
        return MAKES if config.get("mask_zero") else DROPS
    if layer == "Masking":
        return MAKES
    if layer in ("Dense", "TimeDistributed"):
        return PASSES
    if layer == "Conv1D":
        return DROPS
    raise Unsupported(f"layer {layer!r} is not a Model layer of format 2 (known: {', '.join(LAYER_CLASSES)})")


def mask_after(layer: str, config: Mapping, x_in: np.ndarray, mask_in: np.ndarray | None) -> np.ndarray | None:
    """The mask the layer's output carries (SPEC 5.15), from its input and the mask it was given."""
    what = rule(layer, config)
    if what == PASSES:
        return mask_in
    if what == DROPS:
        return None
    if layer == "Embedding":
        return np.asarray(x_in) != 0
    return np.any(np.asarray(x_in) != config.get("mask_value", 0.0), axis=-1)


# -- the layers that are not recurrent ----------------------------------------------------------------

ACTIVATIONS = {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh,
               "sigmoid": lambda v: 0.5 * (1.0 + np.tanh(0.5 * v))}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise Unsupported(f"activation {name!r} in a Model layer is not implemented by the numpy reference")
    return ACTIVATIONS[name]


def embedding(config: Mapping, weights: Mapping, x) -> np.ndarray:
    ids = np.asarray(x)
    if not np.issubdtype(ids.dtype, np.integer):
        raise Unsupported("Embedding reads integer token ids")
    return np.asarray(weights["embeddings"], np.float64)[ids]


def masking(config: Mapping, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    keep = np.any(x != config.get("mask_value", 0.0), axis=-1, keepdims=True)
    return np.where(keep, x, 0.0)


def dense(config: Mapping, weights: Mapping, x) -> np.ndarray:
    """``activation(x @ kernel + bias)`` on the last axis (so also every step of a sequence: TimeDistributed)."""
    y = np.asarray(x, np.float64) @ np.asarray(weights["kernel"], np.float64)
    if config.get("use_bias", True):
        y = y + np.asarray(weights["bias"], np.float64)
    return _activation(config.get("activation", "linear"))(y)


def conv1d(config: Mapping, weights: Mapping, x) -> np.ndarray:
    """Keras's Conv1D (channels_last, ``valid`` or ``same``): the ConvLSTM family's ``ops.conv``, one spatial axis."""
    if config.get("groups", 1) != 1:
        raise Unsupported("Conv1D with groups is not in format 2")
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise Unsupported(f"Conv1D padding {padding!r} is not in format 2")
    y = convolve(np.asarray(x, np.float64), np.asarray(weights["kernel"], np.float64),
                 config.get("strides", 1), padding, config.get("dilation_rate", 1))
    if config.get("use_bias", True):
        y = y + np.asarray(weights["bias"], np.float64)
    return _activation(config.get("activation", "linear"))(y)


def time_distributed(config: Mapping, weights: Mapping, x) -> np.ndarray:
    wrapped = config.get("wrapped")
    if wrapped not in TIME_DISTRIBUTED:
        raise Unsupported(f"TimeDistributed({wrapped}) is not in format 2 (only {', '.join(TIME_DISTRIBUTED)})")
    return dense({k: v for k, v in config.items() if k != "wrapped"}, weights, x)


# -- the model ---------------------------------------------------------------------------------------

def input_keys(config: Mapping) -> list[str]:
    """The fixture inputs the model reads, in the order its Keras model takes them (``x`` first)."""
    keys = ["x"]
    for sub in config["layers"]:
        if sub.get("input") and sub["input"] not in keys:
            keys.append(sub["input"])
    return keys


def recurrent_problem(problem: Problem, k: int, sub: Mapping, x, mask, states: Mapping | None) -> Problem:
    """Layer ``k`` of the model as a plain recurrent problem (a Bidirectional one: its wrapper's problem)."""
    prefix = layer_prefix(k)
    inputs = {"x": x, **({"mask": mask} if mask is not None else {})}
    if states:
        inputs.update({f"initial_state_{name[len('state_'):]}": v for name, v in states.items()})
    return Problem(sub["layer"], sub["config"], sub_mapping(problem.weights, prefix), sub_mapping(problem.gates, prefix),
                   problem.activations.get(prefix, {}), inputs)


def compose_model(problem: Problem, run_recurrent: RunRecurrent, record: Callable | None = None) -> dict:
    """A Model fixture's ``output``: each layer in turn, the mask made, passed and dropped by SPEC 5.15.

    ``record(k, x_in, mask_in, y, mask_out)``, if given, sees every layer's input and output (explain)."""
    config, inputs = problem.config, problem.inputs
    x, mask, finals = inputs["x"], None, {}
    for k, sub in enumerate(config["layers"]):
        layer, layer_config, prefix = sub["layer"], sub["config"], layer_prefix(k)
        if sub.get("input"):
            x, mask = inputs[sub["input"]], None
        weights = sub_mapping(problem.weights, prefix)
        if layer in RECURRENT:
            start = sub.get("initial_state_from")
            if start is not None and start not in finals:
                raise Unsupported(f"layer {k}: initial_state_from {start!r} is not an earlier recurrent layer")
            result = run_recurrent(recurrent_problem(problem, k, sub, x, mask, finals.get(start)))
            finals[k] = {n: v for n, v in result.items() if n.startswith("state_")}
            y = result["output"]
        elif layer == "Embedding":
            y = embedding(layer_config, weights, x)
        elif layer == "Masking":
            y = masking(layer_config, x)
        elif layer == "Dense":
            y = dense(layer_config, weights, x)
        elif layer == "Conv1D":
            y = conv1d(layer_config, weights, x)
        elif layer == "TimeDistributed":
            y = time_distributed(layer_config, weights, x)
        else:
            rule(layer, layer_config)   # Unsupported, naming the known classes
            raise AssertionError("unreachable")
        mask_out = mask_after(layer, layer_config, x, mask)
        if record is not None:
            record(k, x, mask, y, mask_out)
        x, mask = y, mask_out
    return {"output": np.asarray(x, np.float64), "trace": {}}


def supports(config: Mapping) -> str | None:
    """None when every layer of the model is one the reference computes; else why not."""
    layers = config.get("layers") if isinstance(config, Mapping) else None
    if not isinstance(layers, list) or not layers:
        return "a Model fixture lists its layers"
    unknown = sorted({str(sub.get("layer")) for sub in layers} - set(LAYER_CLASSES))
    return f"Model layer(s) {', '.join(unknown)} are not in format 2" if unknown else None


def describe(config: Mapping) -> list[str]:
    """One line per layer (explain): its class, the options that matter, and what it does with the mask."""
    lines = []
    for k, sub in enumerate(config["layers"]):
        layer, layer_config = sub["layer"], sub["config"]
        shown = ", ".join(f"{key}={value!r}" for key, value in layer_config.items()
                          if key not in ("activation", "recurrent_activation") or value != "tanh")
        where = []
        if sub.get("input"):
            where.append(f"reads input {sub['input']!r}")
        if sub.get("initial_state_from") is not None:
            where.append(f"initial_state = the final states of layer {sub['initial_state_from']}")
        rule_text = rule(layer, layer_config)
        lines.append(f"{layer_prefix(k)}: {layer}({shown})" + (f"; {'; '.join(where)}" if where else "")
                     + f"; mask: {rule_text}")
    return lines


def weight_names(config: Mapping) -> dict[str, list[str]]:
    """Per layer prefix, the weight names of the layers that are not recurrent (the recurrent ones: families)."""
    names = {}
    for k, sub in enumerate(config["layers"]):
        layer, layer_config = sub["layer"], sub["config"]
        use_bias = ["bias"] if layer_config.get("use_bias", True) else []
        found = {"Embedding": ["embeddings"], "Masking": [], "Dense": ["kernel", *use_bias],
                 "Conv1D": ["kernel", *use_bias], "TimeDistributed": ["kernel", *use_bias]}.get(layer)
        if found is not None:
            names[layer_prefix(k)] = [join(layer_prefix(k), n) for n in found]
    return names
