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
from ..semantics.families import FAMILIES
from ..semantics.problem import Problem
from ..semantics import wrappers
from ..semantics.wrappers import split_calls, sub_mapping as _sub
from . import quiet
from .requires import require
from ..judge.contract import implementation
from ..format.model_file import PORTABLE_INITIALIZERS, input_name

LAYER_STATES = {layer: fam.states for layer, fam in FAMILIES.items()}
WEIGHT_ORDER = ("kernel", "recurrent_kernel", "bias")
# ``cell_wrapper: RNN`` (SPEC 2.3): the layer built as keras.layers.RNN(<its cell>) instead of its own class
CELLS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
CELL_NAMES = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell"}
# the options that belong to the RNN layer; every other config key configures the cell
RNN_KEYS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask",
            "time_major")


@functools.lru_cache(maxsize=None)
def keras_module():
    """Import Keras the way the environment asks; Unsupported (with the install hint) if there is none."""
    name = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else "keras"  # tf-keras: Keras 2 on TF >= 2.16
    with quiet.importing(name):  # TensorFlow's native start-up lines stay out of the run
        keras = require(name)
    _share_jax_compilations(keras)
    return keras


def _share_jax_compilations(keras) -> None:
    """On the JAX backend, compile each distinct XLA computation once per process, not once per call.

    Keras's JAX ``rnn()`` runs ``jax.lax.scan`` over a step function it defines anew on every
    call, so every layer call (the configured layer, its return_state twin, the keras-load
    model of the same fixture...) misses JAX's in-memory caches and XLA compiles the same
    loop again: compiling was three quarters of the ``jax`` tox env's time. JAX's persistent
    compilation cache keys executables by the computation's canonical IR (the weights are
    operands, not part of it), the compile options and the jax/jaxlib versions, so a hit is
    the executable a fresh compile would give, and the values computed are unchanged. The
    cache is a private temporary folder removed at exit, used only where the user has not
    configured one (``JAX_COMPILATION_CACHE_DIR``, or ``JAX_ENABLE_COMPILATION_CACHE=false``).
    """
    backend = getattr(keras.backend, "backend", None)
    if not callable(backend) or backend() != "jax":
        return
    import atexit
    import shutil
    import tempfile

    import jax
    try:
        if jax.config.jax_compilation_cache_dir or not jax.config.jax_enable_compilation_cache:
            return  # the user's own cache settings win
        folder = tempfile.mkdtemp(prefix="lstm-conformance-jax-cache-")
    except (AttributeError, OSError):  # a JAX without these options, or no temporary folder: compile as before
        return
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # the loops compile in ~0.1 s
        jax.config.update("jax_compilation_cache_dir", folder)
    except (AttributeError, KeyError, ValueError):
        pass


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
    """A tensor's values; bfloat16 (mixed_bfloat16's outputs, which numpy lacks) as the float32 values it is exactly."""
    keras = keras_module()
    value = np.asarray(keras.ops.convert_to_numpy(tensor) if is_keras3() else tensor.numpy())
    return value.astype(np.float32) if value.dtype.name == "bfloat16" else value


def make_layer(layer: str, config: Mapping, activation_overrides: Mapping[str, Callable] | None = None,
               **extra):
    """An unbuilt Keras layer from a fixture config: ``keras.layers.<layer>(**config)``, or with
    ``cell_wrapper: RNN`` ``keras.layers.RNN(<layer>Cell(**cell options), **RNN options)``. ``extra``
    (name, initializers, stateful) is passed to the layer, initializers to the cell."""
    keras = keras_module()
    if layer not in LAYER_STATES:
        raise Unsupported(f"the keras adapter does not build {layer!r} layers")
    kwargs = {k: v for k, v in config.items() if k != "cell_wrapper"}
    kwargs.update(activation_overrides or {})
    if not config.get("cell_wrapper"):
        return getattr(keras.layers, layer)(**{**kwargs, **extra})
    return rnn_of_cells([(layer, kwargs)], config, **extra)


def rnn_of_cells(cells: Sequence[tuple[str, Mapping]], rnn_config: Mapping, **extra):
    """``keras.layers.RNN`` over one cell, or over ``StackedRNNCells`` of several (``cell_wrapper: RNN``).

    Each cell takes its layer's options other than the RNN's (``RNN_KEYS``); the RNN takes those of
    ``rnn_config``. Initializers in ``extra`` go to every cell, the rest (name, stateful) to the RNN.
    Cells are named explicitly (``lstm_cell``; ``lstm_cell_0``, ``gru_cell_1``... in a stack): auto-names
    count the layers made earlier in the process, and would land in a saved model file.
    """
    keras = keras_module()
    if any(layer not in CELLS for layer, _ in cells):
        raise Unsupported(f"cell_wrapper: Keras has no public cell class for "
                          f"{', '.join(sorted({l for l, _ in cells} - set(CELLS)))}")
    init = {k: v for k, v in extra.items() if k.endswith("_initializer")}
    single = len(cells) == 1
    built = [getattr(keras.layers, CELLS[layer])(**{k: v for k, v in config.items()
                                                    if k not in RNN_KEYS and k != "cell_wrapper"}, **init,
                                                 name=CELL_NAMES[layer] + ("" if single else f"_{k}"))
             for k, (layer, config) in enumerate(cells)]
    cell = built[0] if single else keras.layers.StackedRNNCells(built, name="stacked_rnn_cells")
    rnn = {k: rnn_config[k] for k in RNN_KEYS if k in rnn_config}
    rnn.update({k: v for k, v in extra.items() if k not in init})
    return keras.layers.RNN(cell, **rnn)


def stacked_cells(config: Mapping) -> tuple[list[tuple[str, Mapping]], dict]:
    """A ``Stacked`` fixture with ``cell_wrapper: RNN`` as (cells, RNN options): one ``RNN(StackedRNNCells)``.

    That one layer computes the stack exactly when every layer but the last returns its sequence and
    none runs backwards (SPEC 5.9); the RNN's options are the last layer's.
    """
    layers = config["layers"]
    for k, sub in enumerate(layers):
        if k < len(layers) - 1 and not sub["config"].get("return_sequences"):
            raise Unsupported(f"cell_wrapper: layer {k} of the stack does not return sequences, which one "
                              "RNN(StackedRNNCells) cannot express")
        if sub["config"].get("go_backwards"):
            raise Unsupported("cell_wrapper: RNN(StackedRNNCells) runs every cell in one direction; a stack "
                              "with go_backwards has no such form")
    return [(sub["layer"], sub["config"]) for sub in layers], dict(layers[-1]["config"])


def set_cell_weights(rnn, weights: Mapping) -> None:
    """Weights of an ``RNN(StackedRNNCells)``: cell k's are the fixture's ``layers/<k>/...``."""
    for k, cell in enumerate(rnn.cell.cells):
        cell.set_weights(ordered_weights(cell, _sub(weights, wrappers.layer_prefix(k))))


def flatten(values) -> list:
    """Nested outputs (RNN over StackedRNNCells returns each cell's states as a list) as one flat list."""
    if isinstance(values, (list, tuple)):
        return [v for value in values for v in flatten(value)]
    return [values]


def build_layer(layer: str, config: Mapping, input_shape: Sequence[int],
                activation_overrides: Mapping[str, Callable] | None = None):
    """A Keras layer from a fixture config; ``activation_overrides`` replace named activations by callables."""
    instance = make_layer(layer, config, activation_overrides)
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
    result = ({"output": values[0]} if n_out == 1 else
              {wrappers.join(half, "output"): value for half, value in zip(wrappers.HALVES, values)})
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
    """Layers called one after another; the mask is passed to each, as a Keras model propagates it.
    With ``cell_wrapper: RNN``, one ``RNN(StackedRNNCells)`` (``compute_stacked_cells``)."""
    if config.get("cell_wrapper"):
        if any((activation_overrides or {}).values()):
            raise Unsupported("cell_wrapper: activation overrides are not passed to stacked cells")
        return compute_stacked_cells(config, weights, inputs)
    def run_layer(part: wrappers.Part) -> dict:
        return compute(part.layer, part.config, part.weights, part.inputs, (activation_overrides or {}).get(part.prefix))
    no_activations = {wrappers.layer_prefix(k): {} for k in range(len(config["layers"]))}
    parts = wrappers.stacked_parts(Problem("Stacked", config, weights, {}, no_activations, inputs))
    result = wrappers.stacked(parts, run_layer)
    result.pop("trace", None)
    return result


def compute_stacked_cells(config: Mapping, weights: Mapping, inputs: Mapping) -> dict:
    """``keras.layers.RNN(StackedRNNCells([...]))``: output, and each cell's final states (a twin if needed)."""
    cells, rnn_config = stacked_cells(config)
    shape = tuple(np.shape(inputs["x"]))

    def build(return_state: bool):
        rnn = rnn_of_cells(cells, {**rnn_config, "return_state": return_state})
        rnn.build(shape)
        set_cell_weights(rnn, weights)
        return rnn

    kwargs = {"training": False}
    if "mask" in inputs:
        kwargs["mask"] = _tensor(np.asarray(inputs["mask"], bool), "bool")
    names = [[wrappers.join(wrappers.layer_prefix(k), f"initial_state_{s}") for s in LAYER_STATES[layer]]
             for k, (layer, _) in enumerate(cells)]
    if any(n in inputs for group in names for n in group):
        kwargs["initial_state"] = [[_tensor(np.asarray(inputs[n], np.float32)) for n in group] for group in names]
    x = _tensor(np.asarray(inputs["x"], np.float32))
    configured = bool(rnn_config.get("return_state", False))
    values = [_numpy(v) for v in flatten(build(configured)(x, **kwargs))]
    output = values[0]
    if not configured:
        values = [_numpy(v) for v in flatten(build(True)(x, **kwargs))]
    states, result = iter(values[1:]), {}
    for k, (layer, _) in enumerate(cells):  # in compute_stacked's order: each layer's states, then the output
        result.update(wrappers.prefixed({f"state_{s}": next(states) for s in LAYER_STATES[layer]},
                                        wrappers.layer_prefix(k)))
    result["output"] = output
    return result


def compute_stateful(layer: str, config: Mapping, weights: Mapping, inputs: Mapping, calls: Mapping,
                     activation_overrides=None) -> dict:
    """A ``stateful=True`` layer (a plain one, a Bidirectional of two, or every layer of a stack) called once
    per chunk, with ``reset_state`` where the fixture says.

    States are read from the layers' state variables after each call (direct calls: Keras 3 does not carry
    state across ``predict()``). A stateful Bidirectional is built without ``return_state``: Keras 3.15.1's
    ``Bidirectional.compute_mask`` raises a TypeError for a stateful one that returns its states.
    """
    chunks = split_calls(inputs, calls)
    shape = (np.shape(inputs["x"])[0], *np.shape(chunks[0]["x"])[1:])
    call, reset, holders = stateful_layers(layer, config, weights, shape, activation_overrides)
    result = {}
    for k, chunk in enumerate(chunks):
        if k in calls.get("reset_before", ()):
            reset()
        out = call(chunk)
        for prefix, instance, family_layer in holders:
            out.update({wrappers.join(prefix, f"state_{name}"): np.asarray(variable.numpy())
                        for name, variable in zip(LAYER_STATES[family_layer], instance.states)})
        result.update(wrappers.prefixed(out, wrappers.call_prefix(k)))
    return result


def stateful_layers(layer: str, config: Mapping, weights: Mapping, shape: Sequence[int], activation_overrides=None):
    """The stateful Keras layer(s) of a fixture: ``call(chunk) -> outputs``, ``reset()`` (the wrapper's own for a
    Bidirectional) and ``[(prefix, layer holding states, its family)]``."""
    keras = keras_module()
    if layer == "Bidirectional":
        inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
        merge_mode = config.get("merge_mode", "concat")
        sub = make_layer(config["wrapped"], {**inner, "stateful": True}, activation_overrides)
        bidi = keras.layers.Bidirectional(sub, merge_mode=merge_mode)
        bidi.build(tuple(shape))
        halves = (bidi.forward_layer, bidi.backward_layer)
        for half, name in zip(halves, wrappers.HALVES):
            half.set_weights(ordered_weights(half, _sub(weights, name)))

        def call(chunk):
            kwargs = {"training": False}
            if "mask" in chunk:
                kwargs["mask"] = _tensor(np.asarray(chunk["mask"], bool), "bool")
            values = bidi(_tensor(np.asarray(chunk["x"], np.float32)), **kwargs)
            if merge_mode is None:
                return {wrappers.join(half, "output"): _numpy(v) for half, v in zip(wrappers.HALVES, values)}
            return {"output": _numpy(values)}
        return call, _reset(bidi), [(name, half, config["wrapped"]) for name, half in zip(wrappers.HALVES, halves)]
    if layer == "Stacked":
        if config.get("cell_wrapper"):
            raise Unsupported("a stateful RNN(StackedRNNCells) (cell_wrapper) is not in format v2")
        built, x_shape = [], tuple(shape)
        for k, sub in enumerate(config["layers"]):
            prefix = wrappers.layer_prefix(k)
            instance = build_layer(sub["layer"], {**sub["config"], "stateful": True}, x_shape,
                                   (activation_overrides or {}).get(prefix))
            instance.set_weights(ordered_weights(instance, _sub(weights, prefix)))
            built.append((prefix, instance, sub["layer"]))
            x_shape = (*x_shape[:2], *FAMILIES[sub["layer"]].state_shape(sub["config"], x_shape)[1:])

        def call(chunk):
            source = chunk["x"]
            for _, instance, family_layer in built:
                source = call_layer(instance, family_layer, {**chunk, "x": source})[0]
            return {"output": source}

        def reset():
            for _, instance, _ in built:
                _reset(instance)()
        return call, reset, built
    instance = build_layer(layer, {**config, "stateful": True}, shape, activation_overrides)
    instance.set_weights(ordered_weights(instance, weights))
    return (lambda chunk: {"output": call_layer(instance, layer, chunk)[0]}), _reset(instance), [("", instance, layer)]


def _reset(instance):
    """A stateful layer's (or Bidirectional's: both copies') ``reset_state`` (Keras 3), ``reset_states`` (Keras 2)."""
    return getattr(instance, "reset_state", None) or instance.reset_states


# -- Model (SPEC 5.15) ------------------------------------------------------------------------------

MODEL_LAYER_NAME = "layer_{k}"   # layer k of a Model fixture's Keras model (its weights: layers/<k>/...)
ZERO_INIT = {"Embedding": ("embeddings_initializer",), "Dense": ("kernel_initializer", "bias_initializer"),
             "Conv1D": ("kernel_initializer", "bias_initializer")}


def _model_layer(sub: Mapping, name: str):
    """One layer of a Model fixture as a Keras layer; initializers zeros (the fixture's weights are set after)."""
    keras = keras_module()
    layer, config = sub["layer"], dict(sub["config"])
    if layer in LAYER_STATES:
        return make_layer(layer, config, **PORTABLE_INITIALIZERS, name=name)
    if layer == "Bidirectional":
        inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
        # the wrapped layer named explicitly: an auto-name counts the layers made earlier in the process and would
        # land in the saved file (forward_lstm_3); Keras names the halves forward_<name> and backward_<name>
        wrapped = make_layer(config["wrapped"], inner, **PORTABLE_INITIALIZERS, name=f"{name}_{config['wrapped'].lower()}")
        return keras.layers.Bidirectional(wrapped, merge_mode=config.get("merge_mode", "concat"), name=name)
    if layer == "TimeDistributed":
        wrapped = config.pop("wrapped")
        if wrapped != "Dense":
            raise Unsupported(f"TimeDistributed({wrapped}) is not in format 2")
        return keras.layers.TimeDistributed(keras.layers.Dense(**config, **_zeros("Dense"), name=f"{name}_dense"),
                                            name=name)
    if layer == "Conv1D":
        config["kernel_size"], config["strides"] = tuple(config["kernel_size"]), tuple(config.get("strides", (1,)))
    if layer not in ("Embedding", "Masking", "Dense", "Conv1D"):
        raise Unsupported(f"the keras adapter does not build a Model layer {layer!r}")
    return getattr(keras.layers, layer)(**config, **_zeros(layer), name=name)


def _zeros(layer: str) -> dict:
    return {key: "zeros" for key in ZERO_INIT.get(layer, ())}


def _weight_holders(instance, prefix: str) -> list:
    """(Keras layer holding weights, the fixture's prefix for them) of one Model layer."""
    if getattr(instance, "forward_layer", None) is not None:
        return [(instance.forward_layer, wrappers.join(prefix, "forward")),
                (instance.backward_layer, wrappers.join(prefix, "backward"))]
    return [(instance, prefix)]


def model_of(config: Mapping, weights: Mapping, inputs: Mapping, batch_size: int | None = None):
    """A Model fixture as a Keras model with the fixture's weights: ``(model, input_keys, ["output"])``.

    A chain of layers is a ``keras.Sequential`` (what users write; its saved config lists the layers and nothing
    else), a model with a second input or handed-over states a functional one. The mask is made inside the graph
    (Embedding, Masking) and propagated by Keras itself, as in a user's model. ``batch_size``: a fixed batch (a
    converter that needs static shapes); the saved model file leaves it open. Keras 3.15.1 records a functional
    model's mask computation as op nodes (``NotEqual``, ``Any``, with counter names) in its saved config: a
    functional Model fixture therefore carries no mask (the encoder-decoder), so every saved file holds only the
    allowed layer classes (SPEC 13.1) and the same bytes whatever was built before it in the process.
    """
    from ..semantics import models
    keras = keras_module()
    keys = models.input_keys(config)
    symbolic = {}
    for key in keys:
        value = np.asarray(inputs[key])
        dtype = "int32" if np.issubdtype(value.dtype, np.integer) else "float32"
        symbolic[key] = keras.Input(shape=value.shape[1:], batch_size=batch_size, dtype=dtype, name=input_name(key))
    built = [_model_layer(sub, MODEL_LAYER_NAME.format(k=k)) for k, sub in enumerate(config["layers"])]
    if len(keys) == 1 and not any(sub.get("initial_state_from") is not None for sub in config["layers"]):
        model = keras.Sequential([symbolic["x"], *built], name="fixture")
    else:
        if any(sub["layer"] in ("Embedding", "Masking") for sub in config["layers"]):
            raise Unsupported("a functional Model fixture with a mask: Keras 3.15.1 saves its mask ops as nodes")
        source, finals = symbolic["x"], {}
        for k, (sub, instance) in enumerate(zip(config["layers"], built)):
            if sub.get("input"):
                source = symbolic[sub["input"]]
            kwargs = {}
            if sub.get("initial_state_from") is not None:
                kwargs["initial_state"] = finals[sub["initial_state_from"]]
            result = instance(source, **kwargs)
            if isinstance(result, (list, tuple)):  # return_state: [output, *states]
                source, finals[k] = result[0], list(result[1:])
            else:
                source = result
        model = keras.Model([symbolic[k] for k in keys], [source], name="fixture")
    for k, instance in enumerate(built):
        for holder, prefix in _weight_holders(instance, wrappers.layer_prefix(k)):
            holder.set_weights(ordered_weights(holder, _sub(weights, prefix)))
    return model, keys, ["output"]


def call_model(model, keys: Sequence[str], inputs: Mapping) -> list[np.ndarray]:
    """Call a Model fixture's Keras model directly in inference mode (one input: the tensor, not a list)."""
    arguments = model_arguments(keys, inputs)
    result = model(arguments if len(arguments) > 1 else arguments[0], training=False)
    return [_numpy(t) for t in result] if isinstance(result, (list, tuple)) else [_numpy(result)]


def model_arguments(keys: Sequence[str], inputs: Mapping) -> list:
    """A Model's inputs as tensors: token ids int32, every other input float32."""
    return [_tensor(np.asarray(inputs[k], np.int32), "int32") if np.issubdtype(np.asarray(inputs[k]).dtype, np.integer)
            else _tensor(np.asarray(inputs[k], np.float32)) for k in keys]


def compute_model(config: Mapping, weights: Mapping, inputs: Mapping) -> dict:
    """A Model fixture's ``output``: the Keras model built from its config, called directly in inference mode."""
    model, keys, _ = model_of(config, weights, inputs)
    return {"output": call_model(model, keys, inputs)[0]}


def compute_any(layer: str, config: Mapping, weights: Mapping, inputs: Mapping, activation_overrides=None,
                calls: Mapping | None = None) -> dict:
    if layer == "Model":
        return compute_model(config, weights, inputs)
    if calls:
        return compute_stateful(layer, config, weights, inputs, calls, activation_overrides)
    if layer == "Bidirectional":
        return compute_bidirectional(config, weights, inputs, activation_overrides)
    if layer == "Stacked":
        return compute_stacked(config, weights, inputs, activation_overrides)
    return compute(layer, config, weights, inputs, activation_overrides)


@implementation(info=info, keras_version=keras_version, backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras``."""
    if fixture.layer not in (*LAYER_STATES, "Bidirectional", "Stacked", "Model"):
        raise Unsupported(f"the keras adapter does not support layer {fixture.layer!r}")
    with quiet.calls():  # TensorFlow's first-use notices (e.g. oneDNN's on the first mask) stay out of reports
        return compute_any(fixture.layer, fixture.config, fixture.weights, fixture.inputs,
                           calls=fixture.meta.get("calls"))
