"""The ``keras-load`` implementation: load the fixture's saved Keras model file and call it.

The generator stores ``model.keras`` beside ``arrays.npz`` (the fixture's layer in a
functional model whose outputs are the contract's: output and final states) and lists
it in ``fixture.yaml`` as ``model_file: {name, sha256, inputs, outputs}``. This
implementation checks the file's sha256, loads it with ``keras.models.load_model(...,
safe_mode=True)``, checks that it holds exactly the fixture's weight arrays, and calls the
loaded model: the layer is never rebuilt from the YAML config, so "a model saved with
Keras X loads and computes the same in Keras Y" is tested. ``verify`` makes the same
checks through ``verify_model_file``.

The same ``contract_model`` builds what the ``tflite`` implementation converts.

The file format itself (name, canonical bytes, the ``model_file`` entry, the weight check) is
``conformance.format.model_file``; its names are re-exported here for old importers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ..format import model_config
from ..format.model_file import (MODEL_FILE, PORTABLE_INITIALIZERS, RNN_LAYER_NAME, ZIP_EPOCH,  # noqa: F401 - old path
                                 check_model_weights, input_name, model_file_bytes, model_file_entry, model_weights,
                                 read_model_file, returning_states)
from ..semantics import wrappers
from ..errors import FixtureError, Unsupported
from . import quiet
from .keras import (LAYER_STATES, _numpy, _sub, _tensor, backend_name, flatten, is_keras3, keras_module,
                    keras_version, make_layer, ordered_weights, rnn_of_cells, set_cell_weights, stacked_cells)
from ..judge.contract import implementation


# -- the contract model --------------------------------------------------------------------------

def _split(result, n_outputs: int):
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    return result[:n_outputs], result[n_outputs:]


def contract_model(layer: str, config: Mapping, weights: Mapping[str, np.ndarray],
                   inputs: Mapping[str, np.ndarray], *, batch_size: int | None = None, stateful: bool = False,
                   twin: bool = True, open_time: bool = False):
    """A functional Keras model: the fixture's inputs in, the contract's outputs out.

    Returns ``(model, input_keys, output_keys)`` with the keys in the model's own
    input and output order. The configured layer computes ``output``; where it does
    not return its states, a twin layer (same config with ``return_state=True``, same
    weights) in the same model supplies the final states (``twin=False``: no twin, so the
    states are outputs only where the config returns them). ``stateful``: time axis
    left open and the layers built stateful, so chunks can be fed one call at a time;
    ``open_time``: time axis left open, layers stateless (a converted port's stateful calls).
    A stateful Bidirectional has no twin and outputs no states: Keras 3.15.1's ``Bidirectional.compute_mask``
    raises a TypeError for a stateful one returning its states, so its states are read from the layer's
    variables (``state_variables``).
    """
    keras = keras_module()
    if layer == "Model":  # SPEC 5.15: the model itself (Sequential, or functional), its mask made in the graph
        if stateful or open_time:
            raise Unsupported("a Model fixture has no stateful or open-time model in format 2")
        from .keras import model_of
        return model_of(config, weights, inputs, batch_size=batch_size)
    if layer not in (*LAYER_STATES, "Bidirectional", "Stacked"):
        raise Unsupported(f"no Keras model for layer {layer!r}")
    if stateful and layer == "Stacked" and config.get("cell_wrapper"):
        raise Unsupported("a stateful RNN(StackedRNNCells) (cell_wrapper) has no model in format v2")
    if stateful and layer == "Bidirectional":
        if config.get("return_state"):
            raise Unsupported("a stateful Bidirectional returning its states: Keras 3's (3.3.3 to 3.15.1) "
                              "Bidirectional.compute_mask raises a TypeError for it (bidirectional.py, line 518)")
        twin = False
    x_shape = np.shape(inputs["x"])
    steps = None if stateful or open_time else x_shape[1]
    symbolic: dict = {}

    def make_input(key, shape, dtype="float32"):
        symbolic[key] = keras.Input(shape=tuple(shape), batch_size=batch_size, dtype=dtype, name=input_name(key))
        return symbolic[key]

    x = make_input("x", (steps, *x_shape[2:]))  # features, or a convolutional family's spatial axes and channels
    mask = make_input("mask", (steps,), "bool") if "mask" in inputs else None
    for key in sorted(k for k in inputs if "initial_state_" in k):
        make_input(key, np.shape(inputs[key])[1:])
    outputs: dict = {}

    def states_of(prefix, sub_layer):
        keys = [wrappers.join(prefix, f"initial_state_{s}") for s in LAYER_STATES[sub_layer]]
        return [symbolic[k] for k in keys] if any(k in symbolic for k in keys) else None

    def recurrent(sub_layer, sub_config, sub_weights, source, name, prefix):
        """The configured layer (and its twin) on ``source``; returns its output tensor."""
        results = {}
        configured = bool(sub_config.get("return_state", False))
        for returns_state in sorted({configured, True} if twin else {configured}):
            instance = make_layer(sub_layer, {**sub_config, "return_state": returns_state},
                                  **PORTABLE_INITIALIZERS, **({"stateful": True} if stateful else {}),
                                  name=name if returns_state == configured else f"{name}_final_state")
            call = {"mask": mask} if mask is not None else {}
            initial = states_of(prefix, sub_layer)
            if initial is not None:
                call["initial_state"] = initial
            results[returns_state] = _split(instance(source, **call), 1)
            instance.set_weights(ordered_weights(instance, sub_weights))
        (out,), _ = results[configured]
        _, states = results.get(True, (None, []))
        outputs.update({wrappers.join(prefix, f"state_{s}"): t for s, t in zip(LAYER_STATES[sub_layer], states)})
        return out

    if layer in LAYER_STATES:
        outputs["output"] = recurrent(layer, config, weights, x, "rnn", "")
    elif layer == "Stacked" and config.get("cell_wrapper"):
        outputs.update(_stacked_cells(config, weights, x, mask, symbolic, twin, stateful))
    elif layer == "Stacked":
        source = x
        for k, sub in enumerate(config["layers"]):
            prefix = wrappers.layer_prefix(k)
            source = recurrent(sub["layer"], sub["config"], _sub(weights, prefix), source, f"rnn_{k}", prefix)
        outputs["output"] = source
    else:
        outputs.update(_bidirectional(keras, config, weights, x, mask, symbolic, twin, stateful))
    keys = [k for k in symbolic]
    out_keys = [k for k in outputs if k.endswith("output")] + [k for k in outputs if not k.endswith("output")]
    model = keras.Model([symbolic[k] for k in keys], [outputs[k] for k in out_keys], name="fixture")
    return model, keys, out_keys


def _stacked_cells(config, weights, x, mask, symbolic, twin: bool, stateful: bool) -> dict:
    """One ``RNN(StackedRNNCells)`` (``cell_wrapper: RNN``), named ``rnn`` (its twin ``rnn_final_state``)."""
    cells, rnn_config = stacked_cells(config)
    configured = bool(rnn_config.get("return_state", False))
    initial = [[wrappers.join(wrappers.layer_prefix(k), f"initial_state_{s}") for s in LAYER_STATES[layer]]
               for k, (layer, _) in enumerate(cells)]
    results = {}
    for returns_state in sorted({configured, True} if twin else {configured}):
        rnn = rnn_of_cells(cells, {**rnn_config, "return_state": returns_state}, **PORTABLE_INITIALIZERS,
                           **({"stateful": True} if stateful else {}),
                           name="rnn" if returns_state == configured else "rnn_final_state")
        call = {"mask": mask} if mask is not None else {}
        if any(k in symbolic for group in initial for k in group):
            call["initial_state"] = [[symbolic[k] for k in group] for group in initial]
        results[returns_state] = _split(flatten(rnn(x, **call)), 1)
        set_cell_weights(rnn, weights)
    (out,), _ = results[configured]
    _, states = results.get(True, (None, []))
    named = {"output": out}
    flat = iter(states)
    for k, (layer, _) in enumerate(cells):
        if states:  # none without a twin when the configured RNN does not return them
            named.update(wrappers.prefixed({f"state_{s}": next(flat) for s in LAYER_STATES[layer]},
                                           wrappers.layer_prefix(k)))
    return named


def _bidirectional(keras, config, weights, x, mask, symbolic, twin: bool, stateful: bool = False) -> dict:
    inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
    wrapped, merge_mode = config["wrapped"], config.get("merge_mode", "concat")
    state_names = LAYER_STATES[wrapped]
    n_out = 2 if merge_mode is None else 1
    initial = [wrappers.join(half, f"initial_state_{s}") for half in wrappers.HALVES for s in state_names]
    results = {}
    for returns_state in sorted({bool(inner.get("return_state", False)), True} if twin else
                                {bool(inner.get("return_state", False))}):
        configured = returns_state == bool(inner.get("return_state", False))
        # explicit names: auto-names count layers made earlier in the process, and land in the file
        sub = make_layer(wrapped, {**inner, "return_state": returns_state}, **PORTABLE_INITIALIZERS,
                         **({"stateful": True} if stateful else {}), name="rnn" if configured else "rnn_final_state")
        bidi = keras.layers.Bidirectional(sub, merge_mode=merge_mode,
                                          name="bidirectional" if configured else "bidirectional_final_state")
        call = {"mask": mask} if mask is not None else {}
        if any(k in symbolic for k in initial):
            call["initial_state"] = [symbolic[k] for k in initial]
        results[returns_state] = _split(bidi(x, **call), n_out)
        for half, name in zip((bidi.forward_layer, bidi.backward_layer), wrappers.HALVES):
            half.set_weights(ordered_weights(half, _sub(weights, name)))
    outs, _ = results[bool(inner.get("return_state", False))]
    _, states = results.get(True, (None, []))
    named = ({"output": outs[0]} if n_out == 1 else
             {wrappers.join(half, "output"): out for half, out in zip(wrappers.HALVES, outs)})
    for k, half in enumerate(wrappers.HALVES):
        for j, s in enumerate(state_names):
            if states:
                named[wrappers.join(half, f"state_{s}")] = states[k * len(state_names) + j]
    return named


def state_variables(model) -> dict:
    """The final states a stateful model holds but does not output, by contract name: a Bidirectional's halves'
    state variables (``forward/state_h``, ...), read after each call."""
    found = {}
    for layer in model.layers:
        halves = [getattr(layer, f"{half}_layer", None) for half in wrappers.HALVES]
        if all(getattr(half, "stateful", False) for half in halves):
            for name, half in zip(wrappers.HALVES, halves):
                states = LAYER_STATES.get(type(half).__name__)
                if states is None:
                    raise Unsupported(f"a stateful Bidirectional over {type(half).__name__}")
                found.update({wrappers.join(name, f"state_{s}"): v for s, v in zip(states, half.states)})
    return found


def reset_states(model) -> None:
    for layer in _walk(model):
        if getattr(layer, "stateful", False):
            (getattr(layer, "reset_state", None) or layer.reset_states)()


def _walk(model):
    for layer in model.layers:
        yield layer
        for attr in ("forward_layer", "backward_layer"):
            if getattr(layer, attr, None) is not None:
                yield getattr(layer, attr)


def load_model(data: bytes, name: str = MODEL_FILE, where=None):
    """Load ``.keras`` bytes with ``safe_mode=True``, once their config has passed ``model_config.check_file``
    (a FixtureError naming ``where``, the gallery's file): only built-in recurrent models are deserialized,
    whatever this Keras's safe mode covers (SPEC 13.1)."""
    model_config.check_file(data, where or name, name)
    keras = keras_module()
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        # keras.models.load_model: every Keras from 2.12 (which has no keras.saving.load_model) to 3.x
        return keras.models.load_model(path, safe_mode=True, compile=False)


def verify_model_file(fixture) -> None:
    """``verify``'s Keras check: the sha256-checked model file loads in safe mode and holds the fixture's weights."""
    entry, data = read_model_file(fixture)
    where = Path(fixture.path) / entry["name"]
    model_config.check_file(data, where, entry["name"])  # a refused config says why, not "could not load"
    try:
        model = load_model(data, entry["name"], where)
    except Exception as exc:  # noqa: BLE001 - in verify, a file Keras 3 cannot load safely is a broken fixture
        raise FixtureError(Path(fixture.path) / entry["name"],
                           f"fixture {fixture.id!r}: keras {keras_version()} could not load {entry['name']} in safe "
                           f"mode: {type(exc).__name__}: {exc}") from None
    check_model_weights(fixture, model, entry["name"])


def weights_checker():
    """For ``verify``: (``verify_model_file``, Keras version), or (None, why the weights cannot be checked here).

    Imports Keras, so call it only when some fixture lists a model file; TensorFlow's C++ log is
    quieted first unless TF_CPP_MIN_LOG_LEVEL is already set.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        version = keras_version()
        keras3 = is_keras3()
    except Unsupported as exc:  # not installed, or installed but failing to import: it says which
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken installation failing in another way
        return None, f"Keras could not be imported: {type(exc).__name__}: {exc}"
    if not keras3:
        return None, f"Keras {version} cannot read Keras 3 model files"
    return verify_model_file, f"Keras {version}"


def _call(model, input_keys, chunk: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    args = [_tensor(np.asarray(chunk[k], bool), "bool") if k == "mask" else _tensor(np.asarray(chunk[k], np.float32))
            for k in input_keys]
    result = model(args, training=False)
    return [_numpy(t) for t in result] if isinstance(result, (list, tuple)) else [_numpy(result)]


def _run(fixture) -> dict[str, np.ndarray]:
    entry, data = read_model_file(fixture)
    try:
        model = load_model(data, entry["name"], Path(fixture.path) / entry["name"])
    except FixtureError:  # its config was refused before Keras read it: the fixture's fault
        raise
    except Exception as exc:
        raise RuntimeError(f"keras {keras_version()} could not load {entry['name']} "
                           f"(saved with keras {fixture.meta.get('generated_by', {}).get('keras', '?')}): "
                           f"{type(exc).__name__}: {exc}") from exc
    check_model_weights(fixture, model, entry["name"])
    input_keys, output_keys = list(entry["inputs"]), list(entry["outputs"])
    calls = fixture.meta.get("calls")
    if fixture.layer == "Model":  # SPEC 5.15: token ids int32, one input given as the tensor itself
        from .keras import call_model
        return dict(zip(output_keys, call_model(model, input_keys, fixture.inputs)))
    if not calls:
        return dict(zip(output_keys, _call(model, input_keys, fixture.inputs)))
    from ..semantics.wrappers import split_calls
    result = {}
    held = {k: v for k, v in state_variables(model).items() if k not in output_keys}
    for k, chunk in enumerate(split_calls(fixture.inputs, calls)):
        if k in calls.get("reset_before", ()):
            reset_states(model)
        out = dict(zip(output_keys, _call(model, input_keys, chunk)))
        out.update({name: np.asarray(variable.numpy()) for name, variable in held.items()})
        result.update(wrappers.prefixed(out, wrappers.call_prefix(k)))
    return result


def info() -> dict:
    return {"keras": keras_version(), "backend": backend_name()}


@implementation(info=info, keras_version=keras_version, backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras-load``."""
    with quiet.calls():  # TensorFlow's first-use notices (oneDNN's on the first mask) stay out of reports
        return _run(fixture)
