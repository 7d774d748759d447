"""The ``keras`` implementation: whatever Keras is installed, called directly.

Keras 2 (tf.keras 2.12-2.15, or tf-keras with ``TF_USE_LEGACY_KERAS=1``) and
Keras 3 on any backend. The layer is built from the fixture config, given the
fixture weights with ``set_weights`` and called directly (never ``predict``,
which does not carry state on Keras 3 and adds batching), in inference mode.
The generator uses the same functions, so a fixture is made the way it is checked.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import Unsupported
from ..reference import split_calls, sub_mapping as _sub

LAYER_STATES = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",)}
WEIGHT_ORDER = ("kernel", "recurrent_kernel", "bias")


@functools.lru_cache(maxsize=None)
def keras_module():
    """Import Keras the way the environment asks; Unsupported if there is none."""
    try:
        if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
            import tf_keras as keras  # Keras 2 as a separate package on TF >= 2.16
        else:
            import keras
    except ImportError as exc:
        raise Unsupported(f"Keras is not installed ({exc})") from None
    return keras


def keras_version() -> str:
    keras = keras_module()
    return getattr(keras, "__version__", None) or keras.version()


def backend_name() -> str:
    keras = keras_module()
    backend = getattr(keras.backend, "backend", None)
    return backend() if callable(backend) else "tensorflow"


def is_keras3() -> bool:
    return int(keras_version().split(".")[0]) >= 3


def info() -> dict:
    return {"keras": keras_version(), "backend": backend_name()}


def _tensor(array, dtype=None):
    keras = keras_module()
    if is_keras3():
        return keras.ops.convert_to_tensor(array, dtype=dtype)
    import tensorflow as tf  # tf.keras 2 wants tf tensors for initial_state
    return tf.convert_to_tensor(array, dtype=dtype)


def _numpy(tensor) -> np.ndarray:
    keras = keras_module()
    if is_keras3():
        return np.asarray(keras.ops.convert_to_numpy(tensor))
    return np.asarray(tensor.numpy())


def build_layer(layer: str, config: Mapping, input_shape: Sequence[int],
                activation_overrides: Mapping[str, Callable] | None = None):
    """A Keras layer from a fixture config; ``activation_overrides`` replace named activations by callables."""
    keras = keras_module()
    if layer not in LAYER_STATES:
        raise Unsupported(f"the keras adapter does not build {layer!r} layers")
    kwargs = dict(config)
    kwargs.update(activation_overrides or {})
    instance = getattr(keras.layers, layer)(**kwargs)
    instance.build(tuple(input_shape))
    return instance


def ordered_weights(layer_instance, weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The fixture's weights in the order the Keras layer lists them, matched by name."""
    ordered = []
    for variable in layer_instance.weights:
        name = (getattr(variable, "path", None) or variable.name).split(":")[0].rsplit("/", 1)[-1]
        if name not in weights:
            raise Unsupported(f"Keras weight {name!r} has no counterpart in the fixture")
        ordered.append(np.asarray(weights[name]))
    return ordered


def call_layer(layer_instance, layer: str, inputs: Mapping[str, np.ndarray]):
    """Call the layer directly in inference mode with mask and initial state where present."""
    kwargs = {"training": False}
    if "mask" in inputs:
        kwargs["mask"] = _tensor(np.asarray(inputs["mask"], bool), "bool")
    names = [f"initial_state_{s}" for s in LAYER_STATES[layer]]
    if any(n in inputs for n in names):
        kwargs["initial_state"] = [_tensor(np.asarray(inputs[n], np.float32)) for n in names]
    result = layer_instance(_tensor(np.asarray(inputs["x"], np.float32)), **kwargs)
    return [_numpy(t) for t in result] if isinstance(result, (list, tuple)) else [_numpy(result)]


def compute(layer: str, config: Mapping, weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
            activation_overrides: Mapping[str, Callable] | None = None) -> dict[str, np.ndarray]:
    """Outputs and final states, whether or not the layer itself returns states.

    A twin layer with ``return_state=True`` and the same weights supplies the final
    states when the configured layer does not return them.
    """
    shape = np.shape(inputs["x"])
    main = build_layer(layer, config, shape, activation_overrides)
    main.set_weights(ordered_weights(main, weights))
    values = call_layer(main, layer, inputs)
    result = {"output": values[0]}
    states = values[1:]
    if not config.get("return_state", False):
        twin = build_layer(layer, {**config, "return_state": True}, shape, activation_overrides)
        twin.set_weights(ordered_weights(twin, weights))
        states = call_layer(twin, layer, inputs)[1:]
    result.update({f"state_{n}": s for n, s in zip(LAYER_STATES[layer], states)})
    return result


def compute_bidirectional(config: Mapping, weights: Mapping, inputs: Mapping,
                          activation_overrides: Mapping[str, Callable] | None = None) -> dict[str, np.ndarray]:
    """``keras.layers.Bidirectional`` over the wrapped layer; states always returned (twin if needed)."""
    keras = keras_module()
    inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
    wrapped, merge_mode = config["wrapped"], config.get("merge_mode", "concat")
    state_names = LAYER_STATES[wrapped]

    def build(return_state):
        sub = build_layer(wrapped, {**inner, "return_state": return_state}, np.shape(inputs["x"]), activation_overrides)
        bidi = keras.layers.Bidirectional(sub, merge_mode=merge_mode)
        bidi.build(tuple(np.shape(inputs["x"])))
        for half, name in ((bidi.forward_layer, "forward"), (bidi.backward_layer, "backward")):
            half.set_weights(ordered_weights(half, _sub(weights, name)))
        return bidi

    kwargs = {"training": False}
    if "mask" in inputs:
        kwargs["mask"] = _tensor(np.asarray(inputs["mask"], bool), "bool")
    names = [f"{half}/initial_state_{s}" for half in ("forward", "backward") for s in state_names]
    if any(n in inputs for n in names):
        kwargs["initial_state"] = [_tensor(np.asarray(inputs[n], np.float32)) for n in names]
    values = build(True)(_tensor(np.asarray(inputs["x"], np.float32)), **kwargs)
    values = [_numpy(v) for v in values]
    n_out = 2 if merge_mode is None else 1
    result = {"output": values[0]} if n_out == 1 else {"forward/output": values[0], "backward/output": values[1]}
    states = values[n_out:]
    for k, half in enumerate(("forward", "backward")):
        for j, s in enumerate(state_names):
            result[f"{half}/state_{s}"] = states[k * len(state_names) + j]
    if not inner.get("return_state", False):  # the configured layer itself, to prove outputs are unchanged
        plain = build(False)(_tensor(np.asarray(inputs["x"], np.float32)), **kwargs)
        plain = [_numpy(v) for v in plain] if isinstance(plain, (list, tuple)) else [_numpy(plain)]
        for key, value in zip([k for k in result if k.endswith("output")], plain):
            if not np.array_equal(value, result[key]):
                raise RuntimeError(f"Bidirectional {key} differs between return_state=True and False")
    return result


def compute_stacked(config: Mapping, weights: Mapping, inputs: Mapping,
                    activation_overrides: Mapping[str, Mapping[str, Callable]] | None = None) -> dict:
    """Layers called one after another; the mask is passed to each, as a Keras model propagates it."""
    x, result = inputs["x"], {}
    for k, sub in enumerate(config["layers"]):
        prefix = f"layers/{k}"
        layer_inputs = {"x": x, **({"mask": inputs["mask"]} if "mask" in inputs else {}), **_sub(inputs, prefix)}
        out = compute(sub["layer"], sub["config"], _sub(weights, prefix), layer_inputs,
                      (activation_overrides or {}).get(prefix))
        x = out.pop("output")
        result.update({f"{prefix}/{name}": v for name, v in out.items()})
    result["output"] = x
    return result


def compute_stateful(layer: str, config: Mapping, weights: Mapping, inputs: Mapping, calls: Mapping,
                     activation_overrides: Mapping[str, Callable] | None = None) -> dict:
    """One ``stateful=True`` layer called once per chunk, with ``reset_state`` where the fixture says.

    States are read from the layer's state variables after each call (direct calls: Keras 3 does
    not carry state across ``predict()``).
    """
    chunks = split_calls(inputs, calls)
    instance = build_layer(layer, {**config, "stateful": True}, (np.shape(inputs["x"])[0], *np.shape(chunks[0]["x"])[1:]),
                           activation_overrides)
    instance.set_weights(ordered_weights(instance, weights))
    reset = getattr(instance, "reset_state", None) or instance.reset_states
    result = {}
    for k, chunk in enumerate(chunks):
        if k in calls.get("reset_before", ()):
            reset()
        values = call_layer(instance, layer, chunk)
        result[f"calls/{k}/output"] = values[0]
        for name, variable in zip(LAYER_STATES[layer], instance.states):
            result[f"calls/{k}/state_{name}"] = np.asarray(variable.numpy())
    return result


def compute_any(layer: str, config: Mapping, weights: Mapping, inputs: Mapping, activation_overrides=None,
                calls: Mapping | None = None) -> dict:
    if calls:
        return compute_stateful(layer, config, weights, inputs, calls, activation_overrides)
    if layer == "Bidirectional":
        return compute_bidirectional(config, weights, inputs, activation_overrides)
    if layer == "Stacked":
        return compute_stacked(config, weights, inputs, activation_overrides)
    return compute(layer, config, weights, inputs, activation_overrides)


def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras``."""
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked"):
        raise Unsupported(f"the keras adapter does not support layer {fixture.layer!r}")
    return compute_any(fixture.layer, fixture.config, fixture.weights, fixture.inputs,
                       calls=fixture.meta.get("calls"))


run.info = info
run.keras_version = keras_version
run.backend = backend_name
