"""numpy-lstm-port: a Keras-compatible LSTM forward pass in plain numpy.

Written the way a port author writes one, from the Keras documentation and
source rather than from lstm-conformance's reference: the gate layout is
hard-coded (Keras packs kernel, recurrent_kernel and bias as four blocks of
``units`` columns in the order i, f, c, o), and the masking and go_backwards
rules follow Keras 3 on TensorFlow. ``run(fixture)`` is the entry point that
lstm-conformance calls; anything this port does not do raises
``conformance.Unsupported`` so the suite shows a skip, never a pass.
"""

from __future__ import annotations

import numpy as np

from conformance import Unsupported

__version__ = "0.1.0"

GATE_ORDER = ("i", "f", "c", "o")   # Keras' column blocks in kernel, recurrent_kernel and bias
KNOWN_INPUTS = {"x", "mask", "initial_state_h", "initial_state_c"}
FLOAT = np.float32                  # computed in float32, as Keras and most inference engines do ...
DTYPES = {"float64": np.float64}    # ... except a layer whose dtype policy asks for float64


def sigmoid(x):
    """Logistic without overflow warnings for large |x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def make_activation(spec):
    """An activation from the fixture's structured definition (hard_sigmoid brings slope and offset)."""
    name = spec["name"]
    if name == "tanh":
        return np.tanh
    if name == "sigmoid":
        return sigmoid
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "linear":
        return lambda x: x
    if name == "hard_sigmoid":  # Keras 2 and Keras 3 differ only in the slope
        slope, offset = float(spec["slope"]), float(spec["offset"])
        return lambda x: np.clip(slope * x + offset, 0.0, 1.0)
    raise Unsupported(f"activation {name!r} is not implemented by numpy-lstm-port")


def lstm(x, kernel, recurrent_kernel, bias, h0, c0, mask, activation, recurrent_activation,
         go_backwards=False, zero_output_for_mask=False):
    """Run an LSTM over ``x`` (batch, time, features); return (outputs per processed step, h, c).

    Keras rules: a masked step keeps h and c and repeats the previous output
    (zeros before the first unmasked step, or always zeros with
    ``zero_output_for_mask``); go_backwards reads the input from the last step
    to the first and returns the outputs in that processing order.
    """
    units = recurrent_kernel.shape[0]
    if kernel.shape[1] != 4 * units or recurrent_kernel.shape[1] != 4 * units:
        raise ValueError(f"expected 4*units={4 * units} columns, got kernel {kernel.shape}, "
                         f"recurrent_kernel {recurrent_kernel.shape}")
    h, c = h0, c0
    previous = np.zeros_like(h0)
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    outputs = []
    for t in steps:
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        block = dict(zip(GATE_ORDER, np.split(z, 4, axis=1)))   # the hard-coded Keras layout
        i, f, o = (recurrent_activation(block[gate]) for gate in "ifo")
        c_new = f * c + i * activation(block["c"])
        h_new = o * activation(c_new)
        keep = mask[:, t, None]
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        previous = np.where(keep, h_new, np.zeros_like(h0) if zero_output_for_mask else previous)
        outputs.append(previous)
    return np.stack(outputs, axis=1), h, c


def run(fixture):
    """Entry point ``numpy-lstm-port``: output plus the final state_h and state_c, as float32 (float64 for a
    float64 layer; under mixed precision float32, which the gallery accepts).

    A stateful fixture (``fixture.meta["calls"]``) is the layer called once per chunk of
    ``calls.steps`` timesteps; its outputs are named ``calls/<k>/output`` etc.
    """
    if fixture.layer != "LSTM":
        raise Unsupported(f"numpy-lstm-port implements LSTM only, not {fixture.layer}")
    config = fixture.config
    if config.get("time_major"):
        raise Unsupported("time_major=True is not implemented by numpy-lstm-port")
    calls = fixture.meta.get("calls")
    if config.get("stateful") and not calls:
        raise Unsupported("a stateful LSTM fixture without 'calls' is not understood by numpy-lstm-port")
    unknown = set(fixture.inputs) - KNOWN_INPUTS
    if unknown:
        raise Unsupported(f"inputs {sorted(unknown)} are not understood by numpy-lstm-port")
    # dropout and recurrent_dropout do nothing at inference, so they are ignored here.

    activation = make_activation(fixture.activations["activation"])
    recurrent_activation = make_activation(fixture.activations["recurrent_activation"])
    dtype = DTYPES.get(config.get("dtype"), FLOAT)
    w = {name: np.asarray(value, dtype) for name, value in fixture.weights.items()}
    x = np.asarray(fixture.inputs["x"], dtype)
    batch, steps, units = x.shape[0], x.shape[1], int(config["units"])
    bias = w["bias"] if config.get("use_bias", True) else np.zeros(4 * units, dtype)
    zeros = np.zeros((batch, units), dtype)
    h = np.asarray(fixture.inputs.get("initial_state_h", zeros), dtype)
    c = np.asarray(fixture.inputs.get("initial_state_c", zeros), dtype)
    mask = np.asarray(fixture.inputs.get("mask", np.ones((batch, steps), bool)), bool)

    def call(x, mask, h0, c0):
        sequence, h, c = lstm(x, w["kernel"], w["recurrent_kernel"], bias, h0, c0, mask,
                              activation, recurrent_activation,
                              go_backwards=bool(config.get("go_backwards", False)),
                              zero_output_for_mask=bool(config.get("zero_output_for_mask", False)))
        output = sequence if config.get("return_sequences", False) else sequence[:, -1]
        # Final states are always returned, whether or not the layer was built with return_state.
        return {"output": output.astype(dtype), "state_h": h.astype(dtype), "state_c": c.astype(dtype)}

    if not calls:
        return call(x, mask, h, c)
    # Stateful: each call starts from the previous call's final states (zeros after a reset).
    result, start = {}, 0
    for k, length in enumerate(calls["steps"]):
        if k in calls.get("reset_before", ()):
            h, c = zeros, zeros
        part = call(x[:, start:start + length], mask[:, start:start + length], h, c)
        h, c = part["state_h"], part["state_c"]
        result.update({f"calls/{k}/{name}": value for name, value in part.items()})
        start += length
    return result


run.version = __version__
