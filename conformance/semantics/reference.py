"""The numpy reference: the executable answer to "which columns are which gate?".

It never hard-codes a column offset: every weight is sliced with the fixture's
``gates`` map, and every activation is built from the fixture's structured
``activations`` definition. Computation is float64. The cell maths lives with each
family (``conformance.families``), wrappers and stateful calls in ``conformance.wrappers``;
here is the time loop (initial states, masking, go_backwards, output selection).

It computes Keras and nothing else. ``Overrides`` are the extension points through which
``conformance.mistakes`` computes a port's mistake with the same code (a different cell,
a changed layer config or inputs, a changed result, a different Bidirectional merge).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from .. import __version__
from ..errors import Unsupported
from .families import LAYERS, Family, family
from .problem import Problem
from .tolerance import port_dtype
from .wrappers import batch_major, compose, merge_bidirectional, time_major_result


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Replacements for one piece of the computation; all None computes Keras."""
    cell: Callable[[Family], Callable] | None = None            # family -> the cell to run instead of family.cell
    before_layer: Callable[[str, dict, dict], tuple[dict, dict]] | None = None   # (layer, config, inputs) -> same
    after_layer: Callable[[str, Mapping, Mapping, dict], dict] | None = None     # (layer, config, inputs, result)
    merge: Callable[[Mapping, Mapping], dict] | None = None     # Bidirectional: (config, halves) -> result


KERAS = Overrides()


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


ACTIVATIONS: Mapping[str, Callable[..., np.ndarray]] = {
    "tanh": lambda x, **_: np.tanh(x),
    "sigmoid": lambda x, **_: _sigmoid(x),
    "hard_sigmoid": lambda x, slope, offset, **_: np.clip(slope * x + offset, 0.0, 1.0),
    "relu": lambda x, **_: np.maximum(x, 0.0),
    "linear": lambda x, **_: x,
}


def activation(definition: Mapping) -> Callable[[np.ndarray], np.ndarray]:
    """Build an activation from its structured definition (name plus parameters)."""
    name = definition["name"]
    if name not in ACTIVATIONS:
        raise Unsupported(f"activation {name!r} is not implemented by the numpy reference")
    params = {k: v for k, v in definition.items() if k not in ("name", "formula")}
    return lambda x: ACTIVATIONS[name](x, **params)


def forward(layer: str, config: Mapping, weights: Mapping, gates: Mapping, activations: Mapping,
            inputs: Mapping, overrides: Overrides = KERAS) -> dict[str, np.ndarray]:
    """``layer_outputs`` with the problem's fields given one by one."""
    return layer_outputs(Problem(layer, config, weights, gates, activations, inputs), overrides)


def compute(layer: str, config: Mapping, weights: Mapping, gates: Mapping, activations: Mapping,
            inputs: Mapping, overrides: Overrides = KERAS, calls: Mapping | None = None) -> dict:
    """``outputs`` with the problem's fields given one by one."""
    return outputs(Problem(layer, config, weights, gates, activations, inputs, calls), overrides)


def outputs(problem: Problem, overrides: Overrides = KERAS) -> dict:
    """Any fixture: a single recurrent layer (stateful across ``calls`` if given), a Bidirectional wrapper or
    a stack, each plain layer run by ``layer_outputs``; a Model (SPEC 5.15) runs its recurrent layers so."""
    if problem.layer == "Model":
        from . import models
        return models.compose_model(problem, lambda part: outputs(part, overrides))
    return compose(problem, lambda part: layer_outputs(part, overrides),
                   merge=overrides.merge or merge_bidirectional)


def layer_outputs(problem: Problem, overrides: Overrides = KERAS) -> dict[str, np.ndarray]:
    """Run one plain recurrent layer the way Keras does; return outputs, final states and the trace."""
    layer, config, weights, gates, activations, inputs = (problem.layer, problem.config, problem.weights,
                                                          problem.gates, problem.activations, problem.inputs)
    fam = family(layer)
    if config.get("time_major"):  # Keras 2: x (time, batch, ...) in, a sequence (time, batch, ...) out
        plain, inputs = batch_major(config, inputs)
        return time_major_result(config, layer_outputs(problem.replace(config=plain, inputs=inputs), overrides))
    if overrides.before_layer is not None:
        config, inputs = overrides.before_layer(layer, dict(config), dict(inputs))
    act = activation(activations["activation"])
    rec_act = activation(activations["recurrent_activation"]) if "recurrent_activation" in activations else None
    w = fam.weights(config, weights, gates)
    step = (overrides.cell(fam) if overrides.cell is not None else fam.cell)

    x = np.asarray(inputs["x"], np.float64)   # (batch, time, features), or (batch, time, *spatial, channels)
    batch, steps = x.shape[:2]
    shape = fam.state_shape(config, x.shape)  # (batch, units), or (batch, *positions, filters): every state's
    states = tuple(np.zeros(shape) if f"initial_state_{n}" not in inputs
                   else np.asarray(inputs[f"initial_state_{n}"], np.float64) for n in fam.states)
    mask = inputs.get("mask")
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
    backwards = bool(config.get("go_backwards", False))
    order = range(steps - 1, -1, -1) if backwards else range(steps)
    zero_masked = bool(config.get("zero_output_for_mask", False))

    previous = np.zeros(shape)  # the output at a masked step: the last computed output, zeros before any
    sequence, trace = [], {}
    for t in order:
        values, new_states = step(x[:, t], states, w, act, rec_act, config)
        keep = mask[:, t].reshape((batch,) + (1,) * (len(shape) - 1))  # one flag per row, over every other axis
        states = tuple(np.where(keep, new, old) for new, old in zip(new_states, states))
        for n, s in zip(fam.states, states):
            values[n] = s  # the trace records the state after the step: held where masked
        previous = np.where(keep, new_states[0], np.zeros_like(previous) if zero_masked else previous)
        sequence.append(previous)
        for k, v in values.items():
            trace.setdefault(k, []).append(v)

    result = {"output": np.stack(sequence, axis=1) if config.get("return_sequences", False) else sequence[-1]}
    result.update({f"state_{n}": v for n, v in zip(fam.states, states)})
    result["trace"] = {k: np.stack(v, axis=1) for k, v in trace.items()}
    if overrides.after_layer is not None:
        result = overrides.after_layer(layer, config, inputs, result)
    return result


def supports(fixture) -> str | None:
    """Every family and wrapper, every activation in ``ACTIVATIONS``; else the reason."""
    from .wrappers import wrapped_layers
    if fixture.layer == "Model":
        from . import models
        return models.supports(fixture.config)
    unknown = sorted(wrapped_layers(fixture.layer, fixture.config) - set(LAYERS))
    if unknown:
        return f"layer {', '.join(unknown)} is not implemented by the numpy reference"
    missing = sorted({d.get("name") for d in _definitions(fixture.activations)} - set(ACTIVATIONS))
    return f"activation {', '.join(map(repr, missing))} is not implemented by the numpy reference" if missing else None


def _definitions(activations: Mapping):
    for value in activations.values():
        if isinstance(value, Mapping) and "name" in value:
            yield value
        elif isinstance(value, Mapping):  # Stacked: one mapping per layer
            yield from _definitions(value)


def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``numpy-reference``: outputs as float32 (float64 for a float64 layer), plus the per-step trace.

    Under a mixed precision policy it still returns float32 values computed in float64: the port that
    ignores the policy's rounding, which measured tolerances let pass (SPEC 6.1)."""
    result = outputs(Problem.of(fixture))
    dtype = port_dtype(fixture.config)
    cast = {k: v.astype(dtype) for k, v in result.items() if k != "trace"}
    cast["trace"] = {k: v.astype(dtype) for k, v in result["trace"].items()}
    return cast


run.version = __version__
run.supports = supports
