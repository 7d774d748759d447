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

A ``.keras`` file as Keras writes it is not reproducible (zip timestamps, ``date_saved``,
and ``shared_object_id`` values that are Python object ids); ``model_file_bytes``
rewrites it canonically (sorted members, fixed timestamps, no ``date_saved``,
``shared_object_id`` renumbered in order of appearance). The weights file (HDF5, written
by Keras without object timestamps) is already byte-stable for a given h5py/HDF5.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ..format import model_config
from ..semantics import wrappers
from ..errors import FixtureError, Unsupported
from . import quiet
from .keras import (LAYER_STATES, _numpy, _sub, _tensor, backend_name, flatten, is_keras3, keras_module,
                    keras_version, make_layer, ordered_weights, rnn_of_cells, set_cell_weights, stacked_cells)
from ..judge.contract import implementation

MODEL_FILE = "model.keras"
# contract_model's layer names: rnn (the twin: rnn_final_state) or rnn_<k> in a stack; Bidirectional has halves
RNN_LAYER_NAME = re.compile(r"^rnn(?:_(\d+))?(?:_final_state)?$")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# -- the contract model --------------------------------------------------------------------------

def input_name(key: str) -> str:
    """A contract input name as a Keras input name (Keras names cannot contain '/')."""
    return key.replace("/", "__")


def _split(result, n_outputs: int):
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    return result[:n_outputs], result[n_outputs:]


# The weights are always set from the fixture, so initializers never matter; plain "zeros" keeps the
# saved config readable by every Keras 3. (Keras 3.15's GlorotUniform config carries input_axes and
# output_axes, which Keras 3.3-3.11 reject, so a file with the default initializers fails to load there.)
PORTABLE_INITIALIZERS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "bias_initializer": "zeros"}


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
    """
    keras = keras_module()
    if layer not in (*LAYER_STATES, "Bidirectional", "Stacked"):
        raise Unsupported(f"no Keras model for layer {layer!r}")
    if stateful and layer not in LAYER_STATES:
        raise Unsupported(f"stateful {layer} fixtures have no model")
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
        outputs.update(_bidirectional(keras, config, weights, x, mask, symbolic, twin))
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


def _bidirectional(keras, config, weights, x, mask, symbolic, twin: bool) -> dict:
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
                         name="rnn" if configured else "rnn_final_state")
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


def returning_states(layer: str, config: Mapping) -> dict:
    """The fixture config with ``return_state=True`` on every recurrent layer (outputs are unchanged by it)."""
    if layer == "Stacked":
        return {**config, "layers": [{**sub, "config": {**sub["config"], "return_state": True}} for sub in config["layers"]]}
    return {**config, "return_state": True}


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


# -- the model file ------------------------------------------------------------------------------

def _renumber_shared_ids(node, numbers: dict):
    """``shared_object_id`` values are ``id()`` of Python objects; renumber them 1, 2, ... in order of appearance."""
    if isinstance(node, dict):
        return {k: (numbers.setdefault(v, len(numbers) + 1) if k == "shared_object_id" else _renumber_shared_ids(v, numbers))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renumber_shared_ids(v, numbers) for v in node]
    return node


def model_file_bytes(model) -> bytes:
    """The model saved as a ``.keras`` archive, rewritten so the same model always gives the same bytes."""
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-") as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    if "metadata.json" in members:
        metadata = json.loads(members["metadata.json"])
        metadata.pop("date_saved", None)
        members["metadata.json"] = json.dumps(metadata, sort_keys=True).encode()
    if "config.json" in members:
        config = _renumber_shared_ids(json.loads(members["config.json"]), {})
        members["config.json"] = json.dumps(config, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name], compresslevel=9)
    return buffer.getvalue()


def model_file_entry(name: str, data: bytes, input_keys, output_keys) -> dict:
    """The ``model_file`` field of ``fixture.yaml`` (covered by the fixture digest)."""
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(),
            "inputs": list(input_keys), "outputs": list(output_keys)}


def read_model_file(fixture) -> tuple[dict, bytes]:
    """The fixture's model file entry and bytes, sha256-checked (``Fixture.model_file``); Unsupported if it has none."""
    found = fixture.model_file()
    if found is None:
        raise Unsupported(f"fixture {fixture.id!r} carries no saved model file")
    return found


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


def _halves(layer) -> list[tuple[object, str | None]]:
    """(layer holding weights, prefix of the fixture's names for them); prefix None: not a contract_model layer."""
    if getattr(layer, "forward_layer", None) is not None:
        return list(zip((layer.forward_layer, layer.backward_layer), wrappers.HALVES))
    match = RNN_LAYER_NAME.fullmatch(layer.name)
    cells = getattr(getattr(layer, "cell", None), "cells", None)
    if match is not None and not match[1] and cells is not None:  # RNN(StackedRNNCells): cell k is layers/<k>
        return [(cell, wrappers.layer_prefix(k)) for k, cell in enumerate(cells)]
    return [(layer, None if match is None else wrappers.layer_prefix(match[1]) if match[1] else "")]


def model_weights(model) -> list[tuple[str | None, str, np.ndarray]]:
    """Every weight of a loaded contract model as (fixture array name or None, Keras variable path, value)."""
    found = []
    for layer in model.layers:
        for holder, prefix in _halves(layer):
            for variable, value in zip(holder.weights, holder.get_weights()):
                path = (getattr(variable, "path", None) or variable.name).split(":")[0]
                name = None if prefix is None else wrappers.join(prefix, path.rsplit("/", 1)[-1])
                found.append((name, path, np.asarray(value)))
    return found


def check_model_weights(fixture, model, name: str) -> None:
    """The model file must hold exactly the fixture's weight arrays, bit for bit.

    Its sha256 proves the file is the one fixture.yaml lists, not that it agrees with arrays.npz: a
    fixture whose arrays were edited and re-hashed still carries the old model. The fixture is then
    broken (a FixtureError naming it, the file and each weight), not the implementation.
    """
    expected, problems, seen = fixture.weights, [], set()
    for key, path, value in model_weights(model):
        want = expected.get(key) if key is not None else None
        seen.add(key)
        if want is None:
            problems.append(f"{path} has no counterpart among the fixture's weights")
        elif value.shape != want.shape:
            problems.append(f"{key!r} ({path}) has shape {list(value.shape)}, the fixture's array {list(want.shape)}")
        elif not np.array_equal(value, want):
            diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
            at = [int(i) for i in np.unravel_index(np.argmax(diff), diff.shape)]
            problems.append(f"{key!r} ({path}) differs from the fixture's array: max abs difference "
                            f"{np.max(diff):.3g} at {at}")
    problems += [f"the fixture's {key!r} is not in the file" for key in expected if key not in seen]
    if problems:
        raise FixtureError(Path(fixture.path) / name,
                           f"fixture {fixture.id!r}: model file {name} does not hold the fixture's weights: "
                           + "; ".join(problems) + " (arrays.npz and the model file disagree: one was changed "
                           "after generation)")


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
    if not calls:
        return dict(zip(output_keys, _call(model, input_keys, fixture.inputs)))
    from ..semantics.wrappers import split_calls
    result = {}
    for k, chunk in enumerate(split_calls(fixture.inputs, calls)):
        if k in calls.get("reset_before", ()):
            reset_states(model)
        result.update({wrappers.join(wrappers.call_prefix(k), name): v
                       for name, v in zip(output_keys, _call(model, input_keys, chunk))})
    return result


def info() -> dict:
    return {"keras": keras_version(), "backend": backend_name()}


@implementation(info=info, keras_version=keras_version, backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras-load``."""
    with quiet.calls():  # TensorFlow's first-use notices (oneDNN's on the first mask) stay out of reports
        return _run(fixture)
