"""The fixture in tfjs terms: Keras config -> ``tf.layers`` arguments, weights, states and inputs -> the runner
request, and what tfjs returns -> the contract's output names.
"""

from __future__ import annotations

import base64
from typing import Mapping

import numpy as np

from ...errors import Unsupported
from ...semantics import wrappers
from ...semantics.families import NOT_ONE_LAYER, family
from .install import TFJS_VERSION

# Keras activation name -> tfjs's (tfjs-layers/src/activations.ts class names)
ACTIVATIONS = {
    "tanh": "tanh", "sigmoid": "sigmoid", "hard_sigmoid": "hardSigmoid", "relu": "relu", "linear": "linear",
    "elu": "elu", "selu": "selu", "softplus": "softplus", "softsign": "softsign", "relu6": "relu6",
    "swish": "swish", "mish": "mish",
}
CLASSES = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simpleRNN",
           "ConvLSTM1D": "convLstm2d", "ConvLSTM2D": "convLstm2d"}
# Keras config key -> tfjs argument, per family (None: every family)
ARGS = {
    "units": "units", "activation": "activation", "use_bias": "useBias", "return_sequences": "returnSequences",
    "return_state": "returnState", "go_backwards": "goBackwards", "stateful": "stateful", "unroll": "unroll",
    "dropout": "dropout", "recurrent_dropout": "recurrentDropout",
}
ARGS_BY_LAYER = {
    # implementation: tfjs takes it and always runs its implementation 2 (recurrent.ts 1284-1287, 1529-1532)
    "LSTM": {"recurrent_activation": "recurrentActivation", "unit_forget_bias": "unitForgetBias",
             "implementation": "implementation"},
    "GRU": {"recurrent_activation": "recurrentActivation", "reset_after": "resetAfter",
            "implementation": "implementation"},
    "SimpleRNN": {},
    "ConvLSTM1D": {"recurrent_activation": "recurrentActivation", "unit_forget_bias": "unitForgetBias",
                   "filters": "filters", "kernel_size": "kernelSize", "strides": "strides", "padding": "padding",
                   "data_format": "dataFormat", "dilation_rate": "dilationRate"},
}
ARGS_BY_LAYER["ConvLSTM2D"] = ARGS_BY_LAYER["ConvLSTM1D"]
DATA_FORMATS = {"channels_last": "channelsLast", "channels_first": "channelsFirst"}
# Keras 3 defaults where tfjs's differ (tfjs: recurrentActivation 'hardSigmoid', resetAfter false): a key the
# config leaves out means Keras's default, never tfjs's
KERAS_DEFAULTS = {"LSTM": {"recurrent_activation": "sigmoid"},
                  "GRU": {"recurrent_activation": "sigmoid", "reset_after": True},
                  "ConvLSTM1D": {"recurrent_activation": "sigmoid"}, "ConvLSTM2D": {"recurrent_activation": "sigmoid"}}

_NOTES: dict[str, str] = {}


def encode_array(array, dtype=np.float32) -> dict:
    """An array as the runner reads it (shape, dtype, base64 of little-endian float32 or bool bytes)."""
    array = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"shape": list(array.shape), "dtype": "bool" if dtype is bool else "float32",
            "b64": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_array(entry: Mapping) -> np.ndarray:
    """A float32 array the runner wrote."""
    data = np.frombuffer(base64.b64decode(entry["b64"]), dtype="<f4")
    return data.reshape([int(n) for n in entry["shape"]]).astype(np.float32)


def _activation(name, role: str) -> str:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise Unsupported(f"the tfjs adapter maps no tfjs activation to Keras {role} {name!r} "
                          f"(mapped: {', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[name]


def layer_args(layer: str, config: Mapping) -> dict:
    """tfjs's arguments for a plain Keras layer config (Keras 3 names -> tfjs camelCase), or Unsupported."""
    if layer not in CLASSES:
        raise Unsupported(f"tfjs has no counterpart of Keras layer {layer!r}")
    known = {**ARGS, **ARGS_BY_LAYER[layer]}
    args: dict = {}
    for key, value in {**KERAS_DEFAULTS.get(layer, {}), **config}.items():
        if key == "zero_output_for_mask":
            if value:
                raise Unsupported("tfjs's recurrent layers have no zero_output_for_mask option (no such argument "
                                  f"in tfjs-layers at tfjs-v{TFJS_VERSION}; its rnn() always outputs the held state "
                                  "at a masked step, recurrent.ts lines 213-219)")
            continue
        if key == "cell_wrapper":
            raise Unsupported(f"this adapter builds tf.layers.{CLASSES[layer]}() only, not tf.layers.rnn() over "
                              f"cells (cell_wrapper={value!r}): a limit of the adapter, not of tfjs")
        if key not in known:
            raise Unsupported(f"tfjs's {CLASSES[layer]}() has no counterpart of Keras {layer} option {key}={value!r}")
        if key in ("activation", "recurrent_activation"):
            value = _activation(value, key)
        elif key == "data_format":
            if value not in DATA_FORMATS:
                raise Unsupported(f"tfjs has no data format {value!r}")
            value = DATA_FORMATS[value]
        elif key in ("kernel_size", "strides", "dilation_rate"):
            value = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if layer == "ConvLSTM1D":
                value = [*value, 1]  # the added spatial axis of width 1
        args[known[key]] = value
    args["returnState"] = True  # final states are always read; in tfjs this only adds them to what call() returns
    return args


def _layer_weights(layer: str, weights: Mapping, prefix: str = "") -> dict:
    """The layer's weights keyed by the tfjs variable name they go to (``kernel``, or ``forward/kernel``)."""
    found = {}
    for name, value in weights.items():
        if prefix and not name.startswith(prefix + "/"):
            continue
        key = name[len(prefix) + 1:] if prefix else name
        value = np.asarray(value, np.float32)
        if layer == "ConvLSTM1D" and key.rpartition("/")[2] in ("kernel", "recurrent_kernel"):
            value = value[:, None]  # (k, C, 4F) -> (k, 1, C, 4F)
        found[key] = encode_array(value)
    return found


def _initial_states(layer: str, inputs: Mapping, prefix: str = "") -> list | None:
    """The layer's initial states in tfjs's order (h, then c), or None when the fixture gives none."""
    names = [wrappers.join(prefix, f"initial_state_{s}") for s in family(layer).states]
    given = [n for n in names if n in inputs]
    if not given:
        return None
    if len(given) != len(names):
        raise ValueError(f"the fixture gives {given} but not {sorted(set(names) - set(given))}; "
                         f"tfjs's {CLASSES[layer]}() takes all of its initial states or none")
    states = [np.asarray(inputs[n], np.float32) for n in names]
    if layer == "ConvLSTM1D":
        states = [s[:, :, None] for s in states]  # (B, P, F) -> (B, P, 1, F)
    return [encode_array(s) for s in states]


def request_for(fixture) -> tuple[dict, list]:
    """The runner request for a fixture, and the plan to name what tfjs returns: [(layer, prefix, kind)]."""
    layer, config, inputs = fixture.layer, fixture.config, fixture.inputs
    if layer == "Model":
        raise Unsupported(NOT_ONE_LAYER)
    x = np.asarray(inputs["x"], np.float32)
    request: dict = {"fixture": fixture.id, "mergeMode": None, "calls": None}
    if layer == "Bidirectional":
        inner_layer = config["wrapped"]
        inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
        states = [*(_initial_states(inner_layer, inputs, "forward") or []),
                  *(_initial_states(inner_layer, inputs, "backward") or [])]
        request.update(kind="bidirectional", mergeMode=config.get("merge_mode", "concat"), layers=[
            {"cls": CLASSES[inner_layer], "args": layer_args(inner_layer, inner),
             "weights": _layer_weights(inner_layer, fixture.weights), "initialState": states or None}])
        families = [inner_layer]
    elif layer == "Stacked":
        request["kind"] = "stacked"
        request["layers"] = []
        families = []
        for k, sub in enumerate(config["layers"]):
            prefix = wrappers.layer_prefix(k)
            request["layers"].append({"cls": CLASSES.get(sub["layer"]), "args": layer_args(sub["layer"], sub["config"]),
                                      "weights": _layer_weights(sub["layer"], fixture.weights, prefix),
                                      "initialState": _initial_states(sub["layer"], inputs, prefix)})
            families.append(sub["layer"])
    else:
        request.update(kind="single", layers=[
            {"cls": CLASSES.get(layer), "args": layer_args(layer, config),
             "weights": _layer_weights(layer, fixture.weights), "initialState": _initial_states(layer, inputs)}])
        families = [layer]
    if "ConvLSTM1D" in families:
        x = x[:, :, :, None]  # (B, T, S, C) -> (B, T, S, 1, C)
    request["x"] = encode_array(x)
    request["mask"] = encode_array(inputs["mask"], bool) if "mask" in inputs else None
    calls = fixture.meta.get("calls")
    if calls:
        request["calls"] = {"steps": [int(n) for n in calls["steps"]],
                            "reset_before": [int(k) for k in calls.get("reset_before", ())]}
    return request, families


def _named(fixture, families: list, passes: list) -> dict:
    """Name what tfjs returned (one list per layer per call, in tfjs's return order) with the contract's keys."""
    result: dict = {}
    calls = fixture.meta.get("calls")
    for k, layers in enumerate(passes):
        head = wrappers.call_prefix(k) if calls else ""
        if len(layers) != len(families):
            raise RuntimeError(f"tfjs returned results for {len(layers)} layer(s); the fixture has {len(families)}")
        for index, (kind, arrays) in enumerate(zip(families, layers)):
            arrays = [decode_array(a) for a in arrays]
            if kind == "ConvLSTM1D":
                arrays = [a[..., 0, :] if a.ndim >= 2 and a.shape[-2] == 1 else a for a in arrays]
            states = [f"state_{s}" for s in family(kind).states]
            if fixture.layer == "Bidirectional":
                merge = fixture.config.get("merge_mode", "concat")
                outs = [wrappers.join(half, "output") for half in wrappers.HALVES] if merge is None else ["output"]
                names = outs + [wrappers.join(half, s) for half in wrappers.HALVES for s in states]
            elif fixture.layer == "Stacked":
                last = index == len(families) - 1
                prefix = wrappers.layer_prefix(index)
                names = ["output" if last else wrappers.join(prefix, "output"),
                         *(wrappers.join(prefix, s) for s in states)]
            else:
                names = ["output", *states]
            if len(arrays) != len(names):
                raise RuntimeError(f"tfjs's {fixture.layer} returned {len(arrays)} tensors (shapes "
                                   f"{[list(a.shape) for a in arrays]}); expected {len(names)}: {', '.join(names)}")
            result.update({wrappers.join(head, n): a for n, a in zip(names, arrays)})
    wanted = list(fixture.meta["outputs"])
    missing = [n for n in wanted if n not in result]
    if missing:
        raise RuntimeError(f"the tfjs adapter produced no {', '.join(missing)} (it has {', '.join(sorted(result))})")
    return {n: result[n] for n in wanted}
