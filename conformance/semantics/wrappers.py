"""Wrappers and stateful calls: a fixture taken apart into plain recurrent layers, and their results put back.

This module alone knows the prefixed names (``forward/…``, ``backward/…``, ``layers/<k>/…``,
``calls/<k>/…``), Bidirectional's masking rule and merge, how a stack feeds one layer's
sequence to the next, and how a stateful layer carries or resets its states between calls.
An implementation that can run one plain layer (``run_layer(part) -> outputs``) gets every
wrapper right by calling ``compose``; the reference does exactly that.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping

import numpy as np

from ..errors import Unsupported
from .families import LAYERS, WRAPPERS, family
from .problem import Problem

MERGES = {
    "concat": lambda a, b: np.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}
FORWARD, BACKWARD = HALVES = ("forward", "backward")   # Bidirectional's halves: their names are their prefixes


@dataclasses.dataclass(frozen=True, kw_only=True)
class Part(Problem):
    """One plain recurrent layer of a fixture (``calls`` None), its names without the prefix, and the prefix."""
    prefix: str = ""        # "" for a single layer; forward, backward, layers/<k>, calls/<k>
    note: str = ""          # how the wrapper uses this part, in words (explain)
    shared_weights: bool = False   # stateful calls: one layer's weights, not stored under the prefix


RunLayer = Callable[[Part], Mapping]


# -- the prefixed names: built and read only here -----------------------------------------------------

def join(prefix: str, name: str) -> str:
    """``name`` under ``prefix`` (``layers/1`` + ``state_h`` -> ``layers/1/state_h``); no prefix: ``name``."""
    return f"{prefix}/{name}" if prefix else name


def layer_prefix(k: int) -> str:
    """A stack's layer ``k`` (and its cell under ``cell_wrapper``)."""
    return f"layers/{k}"


def under(name: str, prefix: str) -> bool:
    """Whether ``name`` is one of ``prefix``'s (``layers/1/x`` is under ``layers/1``, ``layers/10/x`` is not)."""
    return name.startswith(prefix + "/")


def call_prefix(k: int) -> str:
    """A stateful fixture's call ``k``."""
    return f"calls/{k}"


def call_index(name: str) -> int | None:
    """The call a stateful fixture's name belongs to (``calls/2/output`` -> 2); None for any other name."""
    found = re.match(r"calls/(\d+)/", name)
    return None if found is None else int(found[1])


def sub_mapping(mapping: Mapping, prefix: str) -> dict:
    """The entries of ``mapping`` under ``prefix/``, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in mapping.items() if under(k, prefix)}


def prefixed(result: Mapping, prefix: str) -> dict:
    """``result`` with every name (and every trace entry) under ``prefix/``."""
    if not prefix:
        return dict(result)
    out = {join(prefix, k): v for k, v in result.items() if k != "trace"}
    if "trace" in result:
        out["trace"] = {join(prefix, k): v for k, v in result["trace"].items()}
    return out


def _absorb(result: dict, part_result: Mapping, prefix: str, skip=()) -> None:
    """Add a part's outputs and trace to the fixture's result, under the part's prefix."""
    named = prefixed({k: v for k, v in part_result.items() if k not in skip}, prefix)
    result.setdefault("trace", {}).update(named.pop("trace", {}))
    result.update(named)


def split_calls(inputs: Mapping, calls: Mapping) -> list[dict]:
    """The per-call inputs of a stateful fixture: ``x`` and ``mask`` cut along time by ``calls.steps``."""
    edges = np.cumsum([0, *calls["steps"]])
    return [{k: v[:, a:b] for k, v in inputs.items() if k in ("x", "mask")} for a, b in zip(edges[:-1], edges[1:])]


def is_state(name: str) -> bool:
    """Whether ``name`` is a final state, of a plain layer or of a wrapper's part (``layers/1/state_c``)."""
    return name.rpartition("/")[2].startswith("state_")


def initial_state_name(name: str) -> str:
    """The initial state a final state feeds: ``state_h`` -> ``initial_state_h``,
    ``forward/state_c`` -> ``forward/initial_state_c``, ``layers/1/state_h`` -> ``layers/1/initial_state_h``."""
    head, _, last = name.rpartition("/")
    return join(head, f"initial_{last}")


def final_states(result: Mapping) -> dict:
    """A layer's (or a wrapper's, every part's) final states as the next call's initial states."""
    return {initial_state_name(k): v for k, v in result.items() if k != "trace" and is_state(k)}


# -- time_major (Keras 2 only) ------------------------------------------------------------------

def batch_major(config: Mapping, inputs: Mapping) -> tuple[dict, dict]:
    """A ``time_major: true`` layer as the batch-major layer it is: ``x`` from (time, batch, ...) to
    (batch, time, ...) and ``time_major`` dropped. Anything else is returned as it is.

    Keras 2's ``time_major=True`` only changes the layout of ``x`` and of a returned sequence; the
    states stay (batch, units). A mask with it is refused: Keras 2 documents it as (batch, time), but
    its ``backend.rnn`` reads a mask with the inputs' layout, and no fixture settles which.
    """
    if not config.get("time_major"):
        return dict(config), dict(inputs)
    if "mask" in inputs:
        raise Unsupported("time_major with a mask: Keras 2 documents the mask as (batch, time), its backend.rnn "
                          "reads it time-major; format v1 has no such fixture")
    config = {k: v for k, v in config.items() if k != "time_major"}
    return config, {**inputs, "x": np.swapaxes(np.asarray(inputs["x"]), 0, 1)}


def time_major_result(config: Mapping, result: Mapping) -> dict:
    """A batch-major layer's result in a ``time_major: true`` layer's layout: a returned sequence (time, batch, ...)."""
    result = dict(result)
    if config.get("time_major") and config.get("return_sequences"):
        result["output"] = np.swapaxes(result["output"], 0, 1)
    return result


# -- Bidirectional ------------------------------------------------------------------------------

def bidirectional_parts(problem: Problem) -> list[Part]:
    """The forward and the backward copy of the wrapped layer, as Keras builds them.

    Keras sets ``zero_output_for_mask = return_sequences`` on both copies; the backward copy
    runs with ``go_backwards`` opposite to the forward one.
    """
    config = problem.config
    inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
    inner["zero_output_for_mask"] = bool(inner.get("return_sequences", False))
    shared = {k: v for k, v in problem.inputs.items() if "/" not in k}
    backwards = bool(inner.get("go_backwards", False))
    merge = config.get("merge_mode", "concat")
    return [Part(prefix=name, layer=config["wrapped"], config={**inner, "go_backwards": back},
                 weights=sub_mapping(problem.weights, name), gates=sub_mapping(problem.gates, name),
                 activations=problem.activations, inputs={**shared, **sub_mapping(problem.inputs, name)},
                 note=(f"Bidirectional, {name} half: a {config['wrapped']} with go_backwards={back} and "
                       f"zero_output_for_mask={inner['zero_output_for_mask']} (Keras sets it to return_sequences); "
                       f"merge_mode={merge}" + ("; the backward sequence is flipped back to time order before "
                                                "merging" if inner.get("return_sequences") else "")))
            for name, back in zip(HALVES, (backwards, not backwards))]


def merge_bidirectional(config: Mapping, halves: Mapping[str, Mapping]) -> dict:
    """Keras's merge: the backward sequence flipped back to time order (return_sequences), then merge_mode."""
    result: dict = {"trace": {}}
    for name in HALVES:
        _absorb(result, halves[name], name, skip=("output",))
    y_fw, y_bw = halves["forward"]["output"], halves["backward"]["output"]
    if config.get("return_sequences"):
        y_bw = y_bw[:, ::-1]
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode is None:
        result[join(FORWARD, "output")], result[join(BACKWARD, "output")] = y_fw, y_bw
    else:
        result["output"] = MERGES[merge_mode](y_fw, y_bw)
    return result


# -- Stacked, stateful ----------------------------------------------------------------------------

def stacked_parts(problem: Problem) -> list[Part]:
    """One part per layer; ``x`` of layer k > 0 is filled in by ``stacked`` with layer k-1's sequence."""
    config, inputs = problem.config, problem.inputs
    mask = {"mask": inputs["mask"]} if "mask" in inputs else {}
    parts = []
    for k, sub in enumerate(config["layers"]):
        prefix = layer_prefix(k)
        parts.append(Part(prefix=prefix, layer=sub["layer"], config=sub["config"],
                          weights=sub_mapping(problem.weights, prefix), gates=sub_mapping(problem.gates, prefix),
                          activations=problem.activations[prefix],
                          inputs={**({"x": inputs["x"]} if k == 0 else {}), **mask, **sub_mapping(inputs, prefix)},
                          note=(f"RNN(StackedRNNCells), cell {k}: a {sub['layer']}Cell, stepped in the same loop"
                                if config.get("cell_wrapper") else f"Stacked, layer {k}: a {sub['layer']}")
                               + (", fed the previous layer's output sequence (x_t below)" if k else "")))
    return parts


def stacked(parts: list[Part], run_layer: RunLayer) -> dict:
    """Layers in sequence (the mask reaches every layer, as Keras propagates it); the last output is the output."""
    result: dict = {"trace": {}}
    x = None
    for part in parts:
        if x is not None:
            part = part.replace(inputs={**part.inputs, "x": x})
        out = run_layer(part)
        x = out["output"]
        _absorb(result, out, part.prefix, skip=("output",))
    result["output"] = x
    return result


def stateful_parts(problem: Problem) -> list[Part]:
    """One part per call: the same layer (a plain one, a Bidirectional or a stack) and weights, the call's chunk
    of ``x`` and ``mask``; a wrapper's part is composed as a whole, its states carried per direction or layer."""
    calls = problem.calls
    resets = set(calls.get("reset_before", ()))
    return [Part(prefix=call_prefix(k), layer=problem.layer, config=problem.config, weights=problem.weights,
                 gates=problem.gates, activations=problem.activations, inputs=chunk,
                 note=f"Stateful, call {k} ({calls['steps'][k]} steps): "
                      + ("starts from zeros" if k == 0 else "reset_state() before it: starts from zeros"
                         if k in resets else "starts from the states the previous call ended with"),
                 shared_weights=True)
            for k, chunk in enumerate(split_calls(problem.inputs, calls))]


def carries(calls: Mapping, k: int) -> bool:
    """Whether call k starts from the previous call's final states (else from zeros)."""
    return k > 0 and k not in set(calls.get("reset_before", ()))


def stateful(parts: list[Part], calls: Mapping, run_layer: RunLayer) -> dict:
    """A stateful layer called once per chunk: final states carried to the next call, except after a reset.

    ``run_layer`` runs one call's part. For a Bidirectional every call runs both halves on the chunk, each from
    its own carried states: the backward copy reads each chunk backwards, from the states it ended the previous
    chunk with (Keras keeps one state per stateful copy); a stack carries each layer's. A reset resets all.
    """
    result: dict = {"trace": {}}
    carried: dict = {}
    for k, part in enumerate(parts):
        if carries(calls, k):
            part = part.replace(inputs={**part.inputs, **carried})
        out = run_layer(part)
        carried = final_states(out)
        _absorb(result, out, part.prefix)
    return result


# -- any fixture ------------------------------------------------------------------------------------

def compose(problem: Problem, run_layer: RunLayer,
            merge: Callable[[Mapping, Mapping], dict] = merge_bidirectional) -> dict:
    """Any fixture's outputs from ``run_layer`` on its plain parts: single, Bidirectional, Stacked, stateful."""
    layer, config = problem.layer, problem.config
    if config.get("time_major") and (problem.calls or layer not in LAYERS):
        raise Unsupported("time_major is only defined for a single, stateless layer in format v1")
    if problem.calls:
        def run_call(part: Part) -> Mapping:   # a wrapper's call is the whole wrapper on the chunk
            if part.layer in LAYERS:
                return run_layer(part)
            return compose(part, lambda inner: run_layer(inner.replace(note=f"{part.note}. {inner.note}")), merge)
        if layer not in (*LAYERS, *WRAPPERS):
            family(layer)  # Unsupported for an unknown layer, naming the known ones
        return stateful(stateful_parts(problem), problem.calls, run_call)
    if layer == "Bidirectional":
        return merge(config, {p.prefix: run_layer(p) for p in bidirectional_parts(problem)})
    if layer == "Stacked":
        return stacked(stacked_parts(problem), run_layer)
    family(layer)  # Unsupported for an unknown layer
    if config.get("time_major"):  # Keras 2's layout option: the batch-major layer, transposed back
        return time_major_result(config, run_layer(_single(problem)))
    return dict(run_layer(_single(problem)))


def _single(problem: Problem, note: str = "") -> Part:
    """A single layer as its one part (a ``time_major`` one batch-major)."""
    config, inputs = batch_major(problem.config, problem.inputs)
    return Part(layer=problem.layer, config=config, weights=problem.weights, gates=problem.gates,
                activations=problem.activations, inputs=inputs, note=note)


def parts(fixture) -> list[Part]:
    """The plain layers a fixture is made of (explain walks them; a stack's later ``x`` is filled in as it runs)."""
    problem = Problem.of(fixture)
    layer, config = problem.layer, problem.config
    if problem.calls and layer in WRAPPERS:
        raise Unsupported(f"a stateful {layer}'s parts are known as it runs: ``compose`` hands each to run_layer")
    if problem.calls:
        return stateful_parts(problem)
    if layer == "Bidirectional":
        return bidirectional_parts(problem)
    if layer == "Stacked":
        return stacked_parts(problem)
    if layer in LAYERS and config.get("time_major"):
        return [_single(problem, note="time_major=True (Keras 2): x is stored (time, batch, features) and a "
                                      "returned sequence (time, batch, units); shown here batch-major")]
    if layer in LAYERS:
        return [_single(problem, note=(f"Built by Keras as RNN({layer}Cell(...)) (cell_wrapper): exactly the "
                                       f"{layer} layer's recurrence" if config.get("cell_wrapper") else ""))]
    family(layer)
    raise AssertionError("unreachable")


def wrapped_layers(layer: str, config: Mapping) -> set[str]:
    """The plain layer families a fixture uses."""
    if layer == "Bidirectional":
        return {config["wrapped"]}
    if layer == "Stacked":
        return {sub["layer"] for sub in config["layers"]}
    if layer == "Model":  # its recurrent layers' families (SPEC 5.15); the other layers are no family's
        return {sub["config"]["wrapped"] if sub["layer"] == "Bidirectional" else sub["layer"]
                for sub in config["layers"] if sub["layer"] in LAYERS or sub["layer"] == "Bidirectional"}
    return {layer}


def layer_configs(layer: str, config: Mapping) -> list[Mapping]:
    """The configs of a fixture's plain layers (a stack has one per layer)."""
    if layer == "Model":
        return [sub["config"] for sub in config["layers"] if sub["layer"] in LAYERS or sub["layer"] == "Bidirectional"]
    return [sub["config"] for sub in config["layers"]] if layer == "Stacked" else [config]
