"""What every converted-graph port shares: the Keras model it converts, and stateful calls carried by hand.

A converter (tf2onnx, OpenVINO, keras2c...) turns a Keras model into a stateless graph. The
model is the fixture's own model file (its config checked, then loaded from a private copy:
``keras_load.load_model``) where it can be: it is what a user ships. A stateful fixture's model
file holds stateful layers, which a stateless graph cannot express, so for those the same layers
are built stateless with an open time axis and every initial state as an input
(``stateless_model``); the harness then does what a user of a converted graph does
(``run_calls``): feed each call's chunk with the previous call's final states as initial
states, zeros after a reset.

The harness never makes a tool look wrong: it feeds inputs by name and reads outputs in the
contract's order (SPEC §7.7), and anything it cannot do is ``Unsupported`` with the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import Unsupported
from ..semantics.wrappers import call_prefix, carries, join, prefixed, split_calls, sub_mapping
from ..format.model_file import stateless
from . import keras_load

Feed = Callable[[dict], dict]   # {contract input key: array} -> {contract output key: array}


@dataclasses.dataclass
class Graph:
    """A Keras model ready to convert, with the contract keys of its inputs and outputs in the model's order."""
    model: object
    input_keys: list[str]
    output_keys: list[str]
    source: str                 # where the model came from, for notes: "model file" or "built stateless"
    input_shapes: Mapping[str, tuple] | None = None   # per input key, without the batch axis; else from model


def state_input(output_key: str) -> str:
    """The initial-state input fed from a final-state output: ``forward/state_h`` -> ``forward/initial_state_h``."""
    head, _, last = output_key.rpartition("/")
    return f"{head}/initial_{last}" if head else f"initial_{last}"


def state_outputs(output_keys) -> list[str]:
    return [k for k in output_keys if k.rpartition("/")[2].startswith("state_")]


def keras_graph(fixture) -> Graph:
    """The model to convert: the fixture's model file, or for stateful fixtures the same layers built stateless."""
    if fixture.meta.get("calls"):
        return stateless_model(fixture)
    if not keras_load.is_keras3():
        raise Unsupported(f"Keras {keras_load.keras_version()} cannot read Keras 3 model files")
    entry, data = keras_load.read_model_file(fixture)  # sha256-checked; Unsupported when it lists none
    # its config checked first (SPEC 13.1), then loaded from a private copy in safe mode
    model = keras_load.load_model(data, entry["name"], Path(fixture.path) / entry["name"])
    keras_load.check_model_weights(fixture, model, entry["name"])
    return Graph(model, list(entry["inputs"]), list(entry["outputs"]), f"model file {entry['name']}")


STATELESS = "built stateless (stateful fixture; stateful=False)"   # its source, in the converters' cache keys


def stateless_model(fixture) -> Graph:
    """A stateful fixture's layers, stateless, time axis open, initial states as inputs (zeros when not fed).

    Call 0's final states (``calls/0/state_h``, ``calls/0/forward/state_c``...) name the initial states. The
    layers are built with ``stateful=False``: a stateful Bidirectional cannot return its states in Keras 3.
    """
    batch = int(np.shape(fixture.inputs["x"])[0])
    inputs = dict(fixture.inputs)
    first_call = list(sub_mapping(dict.fromkeys(fixture.meta["outputs"]), call_prefix(0)))
    for key in state_outputs(first_call):
        shape = fixture.meta["arrays"][join(call_prefix(0), key)]["shape"][1:]
        inputs.setdefault(state_input(key), np.zeros((batch, *shape), np.float32))
    model, input_keys, output_keys = keras_load.contract_model(
        fixture.layer, stateless(fixture.layer, fixture.config), fixture.weights, inputs, batch_size=batch,
        open_time=True)
    return Graph(model, input_keys, output_keys, STATELESS)


def run_calls(fixture, graph: Graph, feed: Feed) -> dict[str, np.ndarray]:
    """Run a converted graph on the fixture: once, or once per stateful call with the states carried by hand.

    ``feed`` takes ``{input key: array}`` for every key in ``graph.input_keys`` and returns
    ``{output key: array}`` for ``graph.output_keys``.
    """
    calls = fixture.meta.get("calls")
    if not calls:
        return feed({k: fixture.inputs[k] for k in graph.input_keys})
    result: dict[str, np.ndarray] = {}
    carried: dict[str, np.ndarray] = {}
    batch = int(np.shape(fixture.inputs["x"])[0])
    for k, chunk in enumerate(split_calls(fixture.inputs, calls)):
        feeds = {}
        for key in graph.input_keys:
            if key in chunk:
                feeds[key] = chunk[key]
            elif carries(calls, k) and key in carried:
                feeds[key] = carried[key]
            else:  # the first call, or after reset_before: Keras's stateful layers start from zeros
                feeds[key] = np.zeros((batch, *_initial_shape(graph, key)), np.float32)
        out = feed(feeds)
        carried = {state_input(name): np.asarray(value, np.float32) for name, value in out.items()
                   if name in state_outputs(graph.output_keys)}
        result.update(prefixed(out, call_prefix(k)))
    return result


def _initial_shape(graph: Graph, key: str) -> tuple[int, ...]:
    if graph.input_shapes and key in graph.input_shapes:
        shape = tuple(graph.input_shapes[key])
    else:
        shape = tuple(graph.model.inputs[graph.input_keys.index(key)].shape[1:])
    if any(d is None for d in shape):
        raise Unsupported(f"initial state {key!r} has an open shape {shape} in the converted model")
    return shape


def outputs_by_position(values: list, output_keys: list[str], what: str) -> dict[str, np.ndarray]:
    """The tool's outputs, which it returns in the model's output order, under the contract's keys."""
    if len(values) != len(output_keys):
        raise RuntimeError(f"{what} returned {len(values)} outputs; the model has {len(output_keys)} "
                           f"({', '.join(output_keys)})")
    return {key: np.asarray(value) for key, value in zip(output_keys, values)}


def keras_versions() -> Mapping[str, str]:
    """The Keras and TensorFlow that built the model the tool converted (part of every cache key)."""
    found = {"keras": keras_load.keras_version(), "backend": keras_load.backend_name()}
    try:
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return found
