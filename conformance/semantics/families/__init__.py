"""The recurrent layer families, one module each: gates, states, trace, cell, weight slicing, explain text.

Everything that needs to know what an LSTM, a GRU or a SimpleRNN is asks here: the numpy
reference (``cell``, ``weights``), comparison labels (``output_axes``), the gallery and
``explain`` (``trace``, ``explain``, ``pre_activations``), diagnosis (``gates``), the adapters
(``states``), the generator (``gate_slices``, ``config_keys``, ``weight_shapes``, ``state_shape``) and
the JSON Schema (``LAYERS``, checked by a test). Adding a family is one module here plus catalog entries (docs/EXTENDING.md).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from ...errors import Unsupported

Cell = Callable[..., tuple[dict, tuple]]   # cell(x, states, w, act, rec_act, config) -> (trace values, new states)


def split(weight: np.ndarray, gates: Mapping[str, list]) -> dict[str, np.ndarray]:
    """Slice one weight into its gate blocks along the last axis, as the fixture's ``gates`` says."""
    return {gate: weight[..., start:stop] for gate, (start, stop) in gates.items()}


@dataclasses.dataclass(frozen=True)
class Family:
    layer: str                          # the Keras layer class name, and the fixture's ``layer``
    gates: tuple[str, ...]              # gate blocks along the last axis of every weight, in Keras's order
    states: tuple[str, ...]             # outputs state_<s>, inputs initial_state_<s>
    trace: tuple[str, ...]              # per-step trace entries, in computation order
    cell: Cell                          # one step, Keras's maths
    explain: tuple[str, ...]            # the cell as Keras computes it, in words (explain)
    pre_activations: Callable           # (w, config, x_t, h_prev, trace_step) -> [(label, value, trace name)]
    recurrent_activation: bool = True   # has a recurrent_activation (SimpleRNN has not)
    output_axes: tuple[str, ...] = ("batch", "timestep", "unit")   # labels of a returned sequence's axes
    state_axes: tuple[str, ...] = ("batch", "unit")                # labels of a final state's axes
    # (Keras option, Keras's default) of every layer option a fixture writes out, in order (None: no default)
    config_keys: tuple[tuple[str, object], ...] = ()

    def units(self, config: Mapping) -> int:
        """The width of one gate block, which is the size of a state's last axis: ``units``."""
        return int(config["units"])

    def full_config(self, config: Mapping) -> dict:
        """The layer options with Keras's defaults written out (``config_keys``), in order."""
        return {key: config.get(key, default) for key, default in self.config_keys}

    def weight_shapes(self, config: Mapping, channels: int) -> dict[str, tuple]:
        """The shape of each weight, in Keras's order, for inputs with ``channels`` features (last axis)."""
        units = self.units(config)
        width = units * len(self.gates)
        shapes = {"kernel": (channels, width), "recurrent_kernel": (units, width)}
        if config.get("use_bias", True):
            shapes["bias"] = (width,)
        return shapes

    def state_shape(self, config: Mapping, x_shape: tuple) -> tuple:
        """The shape of each state (and of one step's output) for an input ``x`` of ``x_shape``
        (batch, time, ..., channels)."""
        return (int(x_shape[0]), self.units(config))

    def weights(self, config: Mapping, weights: Mapping, gates: Mapping) -> dict:
        """Weights as {name: {gate: block}} in float64, a zero bias when use_bias is False."""
        units = self.units(config)
        sliced = {name: split(np.asarray(weights[name], np.float64), gates[name])
                  for name in ("kernel", "recurrent_kernel")}
        if config.get("use_bias", True):
            sliced["bias"] = self.bias(np.asarray(weights["bias"], np.float64), gates["bias"])
        else:
            sliced["bias"] = self.bias(np.zeros(len(self.gates) * units), {g: [k * units, (k + 1) * units]
                                                                          for k, g in enumerate(self.gates)})
        return sliced

    def bias(self, bias: np.ndarray, gates: Mapping) -> dict:
        return split(bias, gates)

    def explain_lines(self, config: Mapping) -> list[str]:
        return list(self.explain)

    def gate_slices(self, units: int, has_bias: bool) -> dict:
        """The ``gates`` map a fixture of this family carries: [start, stop] of each block, per weight."""
        blocks = {g: [k * units, (k + 1) * units] for k, g in enumerate(self.gates)}
        return {name: dict(blocks) for name in ("kernel", "recurrent_kernel", *(("bias",) if has_bias else ()))}

    def label(self, index: tuple, step_label: Callable[[int], str]) -> str:
        """``[batch 0, timestep 3, unit 1]`` for an output or state element (any rank the family returns)."""
        axes = self.output_axes if len(index) == len(self.output_axes) else (
            self.state_axes if len(index) == len(self.state_axes) else None)
        if axes is None:
            return str(list(index))
        return "[" + ", ".join(step_label(i) if axis == "timestep" else f"{axis} {i}"
                               for axis, i in zip(axes, index)) + "]"


from . import conv_lstm, gru, lstm, simple_rnn  # noqa: E402 - the family modules use Family

FAMILIES: dict[str, Family] = {f.layer: f for f in (lstm.FAMILY, gru.FAMILY, simple_rnn.FAMILY,
                                                    *conv_lstm.FAMILIES)}
LAYERS = tuple(FAMILIES)
WRAPPERS = ("Bidirectional", "Stacked")
# the skip of an adapter that builds one layer (or wrapper) from its config, on a Model fixture
NOT_ONE_LAYER = ("layer 'Model' is a small model of several layers (SPEC 5.15), not one recurrent layer: this "
                 "adapter builds one layer from its config; the converting ports run its model file")
# every trace entry of every family, in computation order (gates first, states last)
TRACE_ORDER = tuple(dict.fromkeys([n for f in FAMILIES.values() for n in f.trace if n not in ("c", "h")] + ["c", "h"]))


def family(layer: str) -> Family:
    """The family of a plain recurrent layer; Unsupported (a skip, with the reason) for anything else."""
    if layer == "Model":
        raise Unsupported(NOT_ONE_LAYER)
    try:
        return FAMILIES[layer]
    except (KeyError, TypeError):
        raise Unsupported(f"layer {layer!r} is not a known recurrent layer family "
                          f"(known: {', '.join(LAYERS)})") from None
