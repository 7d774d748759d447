"""The numpy reference: the executable answer to "which columns are which gate?".

It never hard-codes a column offset: every weight is sliced with the fixture's
``gates`` map, and every activation is built from the fixture's structured
``activations`` definition. Computation is float64; the cell math is a few lines
per layer, and the time loop (masking, go_backwards, output selection) is shared.

Mistakes from ``conformance.mistakes`` are applied through ``Quirks``: the same
code, run the wrong way on purpose, so diagnosis compares against real numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from .errors import Unsupported

from . import __version__
LAYERS = ("LSTM", "GRU", "SimpleRNN")
WRAPPERS = ("Bidirectional", "Stacked")


@dataclasses.dataclass(frozen=True)
class Quirks:
    """Deliberate deviations from Keras, used to name a port's mistake. All off = Keras."""
    skip_cell_tanh: bool = False          # LSTM: h = o * c instead of o * act(c)
    swap_h_c: bool = False                # LSTM: returned state_h and state_c exchanged
    ignore_mask: bool = False
    masked_output_zeros: bool = False     # masked steps output zeros instead of the previous output
    masked_output_h0: bool = False        # leading masked steps output h0 instead of zeros
    ignore_initial_state: bool = False
    go_backwards_flip_output: bool = False  # returned sequence flipped back to input order
    go_backwards_ignored: bool = False
    gru_interpolation_swapped: bool = False  # h = (1-z)*h_prev + z*hh
    gru_reset_after_swapped: bool = False   # applies r before the matmul when reset_after=True, and vice versa
    bidi_halves_swapped: bool = False       # Bidirectional: forward and backward results exchanged
    bidi_backward_not_reversed: bool = False  # Bidirectional: backward sequence left in processing order


KERAS = Quirks()


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


def split(weight: np.ndarray, gates: Mapping[str, list]) -> dict[str, np.ndarray]:
    """Slice one weight into its gate blocks along the last axis, as ``gates`` says."""
    return {gate: weight[..., start:stop] for gate, (start, stop) in gates.items()}


def _bias_rows(bias: np.ndarray, units3: int):
    """GRU bias: (2, 3u) is [input; recurrent] with reset_after, (3u,) is input only."""
    if bias.ndim == 2:
        return bias[0], bias[1]
    return bias, np.zeros_like(bias)


# -- cells: one step each, returning the trace entries (gate values, then new states) --------------

def lstm_cell(x, states, w, act, rec_act, quirks):
    h, c = states
    pre = {g: x @ w["kernel"][g] + h @ w["recurrent_kernel"][g] + w["bias"][g] for g in "ifco"}
    i, f, o = rec_act(pre["i"]), rec_act(pre["f"]), rec_act(pre["o"])
    c_tilde = act(pre["c"])
    c_new = f * c + i * c_tilde
    h_new = o * (c_new if quirks.skip_cell_tanh else act(c_new))
    return {"i": i, "f": f, "c_tilde": c_tilde, "o": o, "c": c_new, "h": h_new}, (h_new, c_new)


def gru_cell(x, states, w, act, rec_act, quirks, reset_after):
    (h,) = states
    b_in, b_rec = w["bias"]["input"], w["bias"]["recurrent"]
    xz, xr, xh = (x @ w["kernel"][g] + b_in[g] for g in "zrh")
    hz, hr = (h @ w["recurrent_kernel"][g] + b_rec[g] for g in "zr")
    z, r = rec_act(xz + hz), rec_act(xr + hr)
    if reset_after != quirks.gru_reset_after_swapped:
        hh = act(xh + r * (h @ w["recurrent_kernel"]["h"] + b_rec["h"]))
    else:
        hh = act(xh + (r * h) @ w["recurrent_kernel"]["h"] + b_rec["h"])
    h_new = (1 - z) * h + z * hh if quirks.gru_interpolation_swapped else z * h + (1 - z) * hh
    return {"z": z, "r": r, "hh": hh, "h": h_new}, (h_new,)


def simple_rnn_cell(x, states, w, act, rec_act, quirks):
    (h,) = states
    h_new = act(x @ w["kernel"]["h"] + h @ w["recurrent_kernel"]["h"] + w["bias"]["h"])
    return {"h": h_new}, (h_new,)


def _weights(layer, config, weights, gates, units):
    """Weights as {name: {gate: block}}, with a zero bias when use_bias is False."""
    sliced = {name: split(np.asarray(weights[name], np.float64), gates[name])
              for name in ("kernel", "recurrent_kernel")}
    gate_names = list(gates["kernel"])
    if config.get("use_bias", True):
        bias = np.asarray(weights["bias"], np.float64)
        if layer == "GRU":
            b_in, b_rec = _bias_rows(bias, 3 * units)
            sliced["bias"] = {"input": split(b_in, gates["bias"]), "recurrent": split(b_rec, gates["bias"])}
        else:
            sliced["bias"] = split(bias, gates["bias"])
    else:
        zero = {g: np.zeros(units) for g in gate_names}
        sliced["bias"] = {"input": zero, "recurrent": zero} if layer == "GRU" else zero
    return sliced


def forward(layer: str, config: Mapping, weights: Mapping, gates: Mapping, activations: Mapping,
            inputs: Mapping, quirks: Quirks = KERAS) -> dict[str, np.ndarray]:
    """Run one recurrent layer the way Keras does; return outputs, final states and the trace."""
    if layer not in LAYERS:
        raise Unsupported(f"layer {layer!r} is not implemented by the numpy reference")
    units = int(config["units"])
    act = activation(activations["activation"])
    rec_act = activation(activations["recurrent_activation"]) if "recurrent_activation" in activations else None
    w = _weights(layer, config, weights, gates, units)
    if layer == "LSTM":
        cell, state_names = (lambda x, s: lstm_cell(x, s, w, act, rec_act, quirks)), ("h", "c")
    elif layer == "GRU":
        reset_after = bool(config.get("reset_after", True))
        cell, state_names = (lambda x, s: gru_cell(x, s, w, act, rec_act, quirks, reset_after)), ("h",)
    else:
        cell, state_names = (lambda x, s: simple_rnn_cell(x, s, w, act, rec_act, quirks)), ("h",)

    x = np.asarray(inputs["x"], np.float64)
    batch, steps, _ = x.shape
    states = tuple(np.zeros((batch, units)) if quirks.ignore_initial_state or f"initial_state_{n}" not in inputs
                   else np.asarray(inputs[f"initial_state_{n}"], np.float64) for n in state_names)
    mask = inputs.get("mask")
    mask = np.ones((batch, steps), bool) if mask is None or quirks.ignore_mask else np.asarray(mask, bool)
    backwards = bool(config.get("go_backwards", False)) and not quirks.go_backwards_ignored
    order = range(steps - 1, -1, -1) if backwards else range(steps)
    zero_masked = bool(config.get("zero_output_for_mask", False)) or quirks.masked_output_zeros

    previous = states[0] if quirks.masked_output_h0 else np.zeros((batch, units))
    outputs, trace = [], {}
    for t in order:
        values, new_states = cell(x[:, t], states)
        keep = mask[:, t][:, None]
        states = tuple(np.where(keep, new, old) for new, old in zip(new_states, states))
        for n, s in zip(state_names, states):
            values[n] = s  # the trace records the state after the step: held where masked
        previous = np.where(keep, new_states[0], np.zeros_like(previous) if zero_masked else previous)
        outputs.append(previous)
        for k, v in values.items():
            trace.setdefault(k, []).append(v)

    sequence = np.stack(outputs, axis=1)
    if backwards and quirks.go_backwards_flip_output:
        sequence = sequence[:, ::-1]
    result = {"output": sequence if config.get("return_sequences", False) else outputs[-1]}
    final = dict(zip(state_names, states))
    if quirks.swap_h_c and layer == "LSTM":
        final = {"h": final["c"], "c": final["h"]}
    result.update({f"state_{n}": v for n, v in final.items()})
    result["trace"] = {k: np.stack(v, axis=1) for k, v in trace.items()}
    return result


def sub_mapping(mapping: Mapping, prefix: str) -> dict:
    """The entries of ``mapping`` under ``prefix/``, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in mapping.items() if k.startswith(prefix + "/")}


def _prefixed(result: Mapping, prefix: str) -> dict:
    out = {f"{prefix}/{k}": v for k, v in result.items() if k != "trace"}
    out["trace"] = {f"{prefix}/{k}": v for k, v in result["trace"].items()}
    return out


MERGES = {
    "concat": lambda a, b: np.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


def bidirectional(config, weights, gates, activations, inputs, quirks=KERAS):
    """Keras ``Bidirectional``: a forward copy and a go_backwards copy of the wrapped layer, merged.

    Keras sets ``zero_output_for_mask = return_sequences`` on both copies, and flips the
    backward sequence back to time order before merging (only when return_sequences).
    """
    inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
    inner["zero_output_for_mask"] = bool(inner.get("return_sequences", False))
    shared = {k: v for k, v in inputs.items() if "/" not in k}
    halves = {}
    for name, backwards in (("forward", bool(inner.get("go_backwards"))), ("backward", not inner.get("go_backwards"))):
        halves[name] = forward(config["wrapped"], {**inner, "go_backwards": backwards}, sub_mapping(weights, name),
                               sub_mapping(gates, name), activations, {**shared, **sub_mapping(inputs, name)}, quirks)
    if quirks.bidi_halves_swapped:
        halves = {"forward": halves["backward"], "backward": halves["forward"]}
    y_fw, y_bw = halves["forward"]["output"], halves["backward"]["output"]
    if inner.get("return_sequences") and not quirks.bidi_backward_not_reversed:
        y_bw = y_bw[:, ::-1]
    result = {"trace": {}}
    for name, half in halves.items():
        part = _prefixed({k: v for k, v in half.items() if k != "output"}, name)
        result["trace"].update(part.pop("trace"))
        result.update(part)
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode is None:
        result["forward/output"], result["backward/output"] = y_fw, y_bw
    else:
        result["output"] = MERGES[merge_mode](y_fw, y_bw)
    return result


def stacked(config, weights, gates, activations, inputs, quirks=KERAS):
    """Layers applied in sequence (``layers/<k>/...``); the mask reaches every layer, as Keras propagates it."""
    x, result = inputs["x"], {"trace": {}}
    for k, sub in enumerate(config["layers"]):
        prefix = f"layers/{k}"
        layer_inputs = {"x": x, **({"mask": inputs["mask"]} if "mask" in inputs else {}), **sub_mapping(inputs, prefix)}
        out = forward(sub["layer"], sub["config"], sub_mapping(weights, prefix), sub_mapping(gates, prefix),
                      activations[prefix], layer_inputs, quirks)
        x = out["output"]
        part = _prefixed({k2: v for k2, v in out.items() if k2 != "output"}, prefix)
        result["trace"].update(part.pop("trace"))
        result.update(part)
    result["output"] = x
    return result


def split_calls(inputs: Mapping, calls: Mapping) -> list[dict]:
    """The per-call inputs of a stateful fixture: ``x`` and ``mask`` cut along time by ``calls.steps``."""
    edges = np.cumsum([0, *calls["steps"]])
    return [{k: v[:, a:b] for k, v in inputs.items() if k in ("x", "mask")} for a, b in zip(edges[:-1], edges[1:])]


def stateful(layer, config, weights, gates, activations, inputs, calls, quirks=KERAS):
    """A stateful layer called once per chunk: the final states of a call are the next call's initial
    states, except at ``calls.reset_before`` (and the first call), where they start from zeros."""
    result, carried = {"trace": {}}, {}
    for k, chunk in enumerate(split_calls(inputs, calls)):
        if k in calls.get("reset_before", ()):
            carried = {}
        out = forward(layer, config, weights, gates, activations, {**chunk, **carried}, quirks)
        carried = {f"initial_state_{name[len('state_'):]}": v for name, v in out.items() if name.startswith("state_")}
        part = _prefixed(out, f"calls/{k}")
        result["trace"].update(part.pop("trace"))
        result.update(part)
    return result


def compute(layer: str, config: Mapping, weights: Mapping, gates: Mapping, activations: Mapping,
            inputs: Mapping, quirks: Quirks = KERAS, calls: Mapping | None = None) -> dict:
    """Any fixture layer: a single recurrent layer (stateful across ``calls`` if given), a
    Bidirectional wrapper or a stack."""
    if calls:
        return stateful(layer, config, weights, gates, activations, inputs, calls, quirks)
    if layer == "Bidirectional":
        return bidirectional(config, weights, gates, activations, inputs, quirks)
    if layer == "Stacked":
        return stacked(config, weights, gates, activations, inputs, quirks)
    return forward(layer, config, weights, gates, activations, inputs, quirks)


def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``numpy-reference``: outputs as float32, plus the per-step trace."""
    result = compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                     fixture.activations, fixture.inputs, calls=fixture.meta.get("calls"))
    cast = {k: v.astype(np.float32) for k, v in result.items() if k != "trace"}
    cast["trace"] = {k: v.astype(np.float32) for k, v in result["trace"].items()}
    return cast


run.version = __version__
