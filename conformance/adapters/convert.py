"""Keras layer semantics mapped onto a library's fused recurrent op (PyTorch ``nn.LSTM``, ONNX ``LSTM``).

A converter adapter supplies one function, ``rnn(Recurrent) -> [(sequence, states), ...]``,
that runs a single fused recurrent op over one or two directions. This module does the
rest the way Keras does it, so both adapters share one reading of the fixture:
gate blocks picked by the fixture's ``gates`` map (never by hard-coded offsets),
go_backwards output order, Bidirectional merging, stacks, stateful calls, and the one
case where a mask can be expressed as sequence lengths without changing the answer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np

from ..semantics import wrappers
from ..errors import Unsupported
from ..semantics.families import FAMILIES
from ..semantics.problem import Problem
from ..semantics.tolerance import port_dtype
from ..semantics.wrappers import MERGES, sub_mapping as _sub

# The fused ops (nn.LSTM, ONNX LSTM...) step vectors (batch, features): a family whose states have spatial axes
# (ConvLSTM1D/2D) has no counterpart there, so it is not listed and ``single``/``bidirectional`` refuse it.
STATES = {layer: fam.states for layer, fam in FAMILIES.items() if fam.state_axes == ("batch", "unit")}


def reorder(weight: np.ndarray, blocks: Mapping[str, Sequence[int]], order: Sequence[str]) -> np.ndarray:
    """The gate blocks of ``weight`` (last axis), rearranged into the target library's ``order``.

    ``blocks`` is the fixture's gate map for this weight (Keras gate name -> [start, stop)),
    ``order`` lists Keras gate names in the order the target library expects its blocks.
    """
    missing = [g for g in order if g not in blocks]
    if missing or len(order) != len(blocks):
        raise Unsupported(f"gate map {dict(blocks)} does not match the conversion order {tuple(order)}")
    return np.concatenate([weight[..., blocks[g][0]:blocks[g][1]] for g in order], axis=-1)


@dataclasses.dataclass(frozen=True)
class Half:
    """One direction of a fused op: its Keras weights and gate map, and its initial states (or None)."""
    reverse: bool                       # processes the sequence from the last step to the first
    weights: Mapping[str, np.ndarray]   # kernel, recurrent_kernel, bias (Keras names and layouts)
    gates: Mapping[str, Mapping]        # the fixture's gate map for those weights
    initial: Mapping[str, np.ndarray] | None  # "h" (and "c") initial states, or None for zeros


@dataclasses.dataclass(frozen=True)
class Recurrent:
    """What one fused op call needs. ``lengths`` is None, or the valid length of each row
    (right-padded sequences, already checked to give Keras's answer)."""
    layer: str
    config: Mapping
    activations: Mapping
    x: np.ndarray                       # (batch, time, features) float32
    lengths: np.ndarray | None
    halves: tuple[Half, ...]            # one (unidirectional) or two (forward, backward)

    @property
    def units(self) -> int:
        return int(self.config["units"])

    @property
    def use_bias(self) -> bool:
        return bool(self.config.get("use_bias", True))

    @property
    def dtype(self) -> type:
        """float64 for a float64 layer (SPEC 5.13), else float32 (mixed precision: float32 passes by decision)."""
        return port_dtype(self.config)


# An ``rnn`` returns, per half: the output sequence in *time order* (entry t is the output after
# consuming input step t; zeros past a row's length) and the final states {"h": .., "c": ..}.
RnnFunction = Callable[[Recurrent], list]


def activation_names(activations: Mapping, layer: str) -> tuple[str, str | None]:
    """(activation, recurrent_activation) names from the fixture's structured definitions."""
    act = activations["activation"]["name"]
    rec = activations["recurrent_activation"]["name"] if layer != "SimpleRNN" else None
    return act, rec


def lengths_for_mask(mask, reverses: Sequence[bool], return_sequences: bool, zero_output: bool,
                     library: str) -> np.ndarray | None:
    """Row lengths when the mask can be given to ``library`` as sequence lengths with Keras's result.

    Sequence lengths cut each row's tail: the op stops there, its states are the last valid
    step's and its outputs past the end are zeros. Keras instead holds the states at a masked
    step and outputs the *previous output* there (zeros only with zero_output_for_mask, which
    Bidirectional forces when returning sequences). The two agree only when the mask is
    right-padded, no row is empty, and the padding is either never returned (last output only)
    or returned as zeros; in a reversed direction the padding comes first, where Keras outputs
    zeros and holds the initial states, exactly as a reversed op with lengths does.
    """
    if mask is None:
        return None
    mask = np.asarray(mask, bool)
    steps = mask.shape[1]
    lengths = mask.sum(axis=1)
    if mask.all():
        return None
    right_padded = mask == (np.arange(steps)[None, :] < lengths[:, None])
    if not right_padded.all():
        raise Unsupported(
            f"the mask is not right-padded (masked steps before valid ones): Keras holds the state at a masked "
            f"step anywhere in a sequence, {library}'s sequence lengths can only cut a row's tail")
    if (lengths == 0).any():
        raise Unsupported(f"a fully masked row: Keras returns the initial states and zero outputs there, "
                          f"which {library} does not give for a sequence length of 0")
    if not all(reverses):  # a forward direction meets the padding after its last valid step
        if return_sequences and not zero_output:
            raise Unsupported(f"Keras outputs the previous output at trailing masked steps; {library} outputs "
                              "zeros past a sequence's length (only zero_output_for_mask=True would match)")
        if not return_sequences and zero_output:
            raise Unsupported(f"with zero_output_for_mask Keras's last output is 0 for a row ending masked; "
                              f"{library} returns the last valid step's output")
    return lengths.astype(np.int64)


def _initial(inputs: Mapping, layer: str, prefix: str = "") -> dict | None:
    names = {s: f"{prefix}initial_state_{s}" for s in STATES[layer]}
    if not any(n in inputs for n in names.values()):
        return None
    return {s: np.asarray(inputs[n], np.float32) for s, n in names.items() if n in inputs}


def single(rnn: RnnFunction, library: str, layer: str, config: Mapping, weights: Mapping, gates: Mapping,
           activations: Mapping, inputs: Mapping) -> dict[str, np.ndarray]:
    """One Keras recurrent layer: output (sequence in processing order, or the last output) and final states."""
    if layer not in STATES:
        raise Unsupported(f"{library} has no counterpart of Keras layer {layer!r}")
    backwards = bool(config.get("go_backwards", False))
    return_sequences = bool(config.get("return_sequences", False))
    lengths = lengths_for_mask(inputs.get("mask"), [backwards], return_sequences,
                               bool(config.get("zero_output_for_mask", False)), library)
    half = Half(backwards, weights, gates, _initial(inputs, layer))
    [(sequence, states)] = rnn(Recurrent(layer, config, activations, np.asarray(inputs["x"], np.float32),
                                         lengths, (half,)))
    if backwards:
        sequence = sequence[:, ::-1]  # Keras returns go_backwards outputs in processing order
    result = {"output": sequence if return_sequences else states["h"]}
    result.update({f"state_{s}": states[s] for s in STATES[layer]})
    return result


def bidirectional(rnn: RnnFunction, library: str, config: Mapping, weights: Mapping, gates: Mapping,
                  activations: Mapping, inputs: Mapping) -> dict[str, np.ndarray]:
    """Keras ``Bidirectional`` as one bidirectional op: both halves in time order, merged as Keras merges."""
    layer = config["wrapped"]
    if layer not in STATES:
        raise Unsupported(f"{library} has no counterpart of Keras layer {layer!r}")
    if config.get("go_backwards"):
        raise Unsupported(f"Bidirectional over a go_backwards layer runs its forward half backwards; "
                          f"{library}'s bidirectional op always runs the first half forwards")
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode is not None and merge_mode not in MERGES:
        raise Unsupported(f"merge_mode {merge_mode!r}")
    inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
    return_sequences = bool(inner.get("return_sequences", False))
    # Keras sets zero_output_for_mask = return_sequences on both wrapped copies
    lengths = lengths_for_mask(inputs.get("mask"), [False, True], return_sequences, return_sequences, library)
    halves = tuple(Half(name == "backward", _sub(weights, name), _sub(gates, name),
                        _initial(inputs, layer, f"{name}/")) for name in ("forward", "backward"))
    results = rnn(Recurrent(layer, inner, activations, np.asarray(inputs["x"], np.float32), lengths, halves))
    result = {}
    outputs = []
    for name, (sequence, states) in zip(wrappers.HALVES, results):
        outputs.append(sequence if return_sequences else states["h"])  # both in time order already
        result.update({wrappers.join(name, f"state_{s}"): states[s] for s in STATES[layer]})
    if merge_mode is None:
        result.update({wrappers.join(half, "output"): y for half, y in zip(wrappers.HALVES, outputs)})
    else:
        result["output"] = MERGES[merge_mode](*outputs)
    return result


def supports(fixture, check: Callable[[Recurrent], None], library: str) -> str | None:
    """Why ``library`` cannot compute this fixture, or None: the conversion walked with ``check`` (the
    library's own refusals, no library call) in place of the op, so it says exactly what ``run`` would."""
    def dry(spec: Recurrent) -> list:
        check(spec)
        batch, steps, _ = spec.x.shape
        return [(np.zeros((batch, steps, spec.units), np.float32),
                 {s: np.zeros((batch, spec.units), np.float32) for s in STATES[spec.layer]}) for _ in spec.halves]
    try:
        run_fixture(fixture, dry, library)
    except Unsupported as exc:
        return str(exc)
    return None


def run_fixture(fixture, rnn: RnnFunction, library: str) -> dict[str, np.ndarray]:
    """Every fixture shape the gallery has, through ``rnn``; outputs as float32 (float64 for a float64 layer).

    Bidirectional is the library's own bidirectional op; stacks and stateful calls are
    ``wrappers.compose`` over one op per plain layer (final states carried between calls).
    """
    args = (fixture.config, fixture.weights, fixture.gates, fixture.activations, fixture.inputs)
    calls = fixture.meta.get("calls")
    if fixture.layer == "Bidirectional" and not calls:
        result = bidirectional(rnn, library, *args)
    else:
        def run_layer(part: wrappers.Part) -> dict:
            return single(rnn, library, part.layer, part.config, part.weights, part.gates, part.activations,
                          part.inputs)
        result = wrappers.compose(Problem.of(fixture), run_layer)
    return {k: np.ascontiguousarray(v, dtype=port_dtype(fixture.config)) for k, v in result.items() if k != "trace"}
