"""The Keras 3 model-file format: ``model.keras`` beside ``arrays.npz``, listed in ``fixture.yaml`` as ``model_file``.

The generator stores the fixture's layer in a functional model whose outputs are the contract's (output and final
states) and lists it as ``model_file: {name, sha256, inputs, outputs}`` (covered by the fixture digest). What the
file must be is defined here: its name, its canonical bytes, its entry, the contract model's layer and input names,
and that it holds exactly the fixture's weight arrays. Building the model and loading it need Keras and live in
``conformance.adapters.keras_load``; this module imports no Keras (a model is only duck-typed: ``save``, ``layers``).

A ``.keras`` file as Keras writes it is not reproducible (zip timestamps, ``date_saved``, and ``shared_object_id``
values that are Python object ids); ``model_file_bytes`` rewrites it canonically (sorted members, fixed timestamps,
no ``date_saved``, ``shared_object_id`` renumbered in order of appearance). The weights file (HDF5, written by Keras
without object timestamps) is already byte-stable for a given h5py/HDF5.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import FixtureError, Unsupported
from ..semantics import wrappers

MODEL_FILE = "model.keras"
# contract_model's layer names: rnn (the twin: rnn_final_state) or rnn_<k> in a stack; Bidirectional has halves
RNN_LAYER_NAME = re.compile(r"^rnn(?:_(\d+))?(?:_final_state)?$")
MODEL_LAYER_NAME = re.compile(r"^layer_(\d+)$")   # a Model fixture's layer k (conformance.adapters.keras.model_of)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

def input_name(key: str) -> str:
    """A contract input name as a Keras input name (Keras names cannot contain '/')."""
    return key.replace("/", "__")



# The weights are always set from the fixture, so initializers never matter; plain "zeros" keeps the
# saved config readable by every Keras 3. (Keras 3.15's GlorotUniform config carries input_axes and
# output_axes, which Keras 3.3-3.11 reject, so a file with the default initializers fails to load there.)
PORTABLE_INITIALIZERS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "bias_initializer": "zeros"}



def returning_states(layer: str, config: Mapping) -> dict:
    """The fixture config with ``return_state=True`` on every recurrent layer (outputs are unchanged by it).
    A Model's output is its last layer's: it has no states to return (SPEC 5.15)."""
    if layer == "Model":
        return dict(config)
    if layer == "Stacked":
        return {**config, "layers": [{**sub, "config": {**sub["config"], "return_state": True}} for sub in config["layers"]]}
    return {**config, "return_state": True}


def stateless(layer: str, config: Mapping) -> dict:
    """The fixture config with ``stateful`` dropped from every recurrent layer (a converted port's stateless graph)."""
    if layer == "Model":
        return dict(config)
    if layer == "Stacked":
        return {**config, "layers": [{**sub, "config": {k: v for k, v in sub["config"].items() if k != "stateful"}}
                                     for sub in config["layers"]]}
    return {k: v for k, v in config.items() if k != "stateful"}



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



def _halves(layer) -> list[tuple[object, str | None]]:
    """(layer holding weights, prefix of the fixture's names for them); prefix None: not a contract_model layer."""
    in_model = MODEL_LAYER_NAME.fullmatch(layer.name)
    base = wrappers.layer_prefix(int(in_model[1])) if in_model else ""
    if getattr(layer, "forward_layer", None) is not None:
        return [(half, wrappers.join(base, name))
                for half, name in zip((layer.forward_layer, layer.backward_layer), wrappers.HALVES)]
    if in_model:
        return [(layer, base)]
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


