"""LSTM and GRU forward passes written out as plain numpy loops, apart from ``conformance.semantics.reference``.

An independent second computation: the wrong ports in tests/impls/ change one line of these loops, and tests
compare the reference against them, so neither check goes through the code it checks. Only what the ports need:
tanh/sigmoid, input ``x`` (no mask, no initial state), Keras' gate order (LSTM i,f,c,o; GRU z,r,h).
"""

from __future__ import annotations

import numpy as np

from conformance import Unsupported

ACTIVATIONS = {"tanh": np.tanh, "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v))}


def _activations(fixture, activations=None) -> tuple:
    acts = activations if activations is not None else fixture.activations
    try:
        return ACTIVATIONS[acts["activation"]["name"]], ACTIVATIONS[acts["recurrent_activation"]["name"]]
    except KeyError as exc:
        raise Unsupported(f"the test loops know tanh and sigmoid only, not {exc}") from None


def _sequence(fixture, config) -> np.ndarray:
    if set(fixture.inputs) != {"x"} or config.get("time_major"):
        raise Unsupported("the test loops take a batch-major input x only (no mask, no initial state)")
    x = np.asarray(fixture.inputs["x"], np.float64)
    return x[:, ::-1] if config.get("go_backwards") else x


def _outputs(config, steps: list, **states) -> dict:
    """Keras' outputs: the steps in processing order with return_sequences, else the last; then the states."""
    output = np.stack(steps, axis=1) if config.get("return_sequences") else steps[-1]
    return {"output": output, **{f"state_{k}": v for k, v in states.items()}}


def lstm(fixture, config=None, weights=None, activations=None, x=None, forget_extra=0.0) -> dict:
    """One LSTM layer; ``forget_extra`` is added to the forget pre-activation (0 for Keras)."""
    config = config if config is not None else fixture.config
    weights = weights if weights is not None else fixture.weights
    act, rec = _activations(fixture, activations)
    seq = _sequence(fixture, config) if x is None else x
    units = int(config["units"])
    kernel, recurrent = np.asarray(weights["kernel"], np.float64), np.asarray(weights["recurrent_kernel"], np.float64)
    bias = np.asarray(weights["bias"], np.float64) if config.get("use_bias", True) else np.zeros(4 * units)
    h = np.zeros((seq.shape[0], units))
    c = np.zeros_like(h)
    steps = []
    for t in range(seq.shape[1]):
        z = seq[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = rec(f + forget_extra) * c + rec(i) * act(g)
        h = rec(o) * act(c)
        steps.append(h)
    return _outputs(config, steps, h=h, c=c)


def gru(fixture, reset_before_matmul=None) -> dict:
    """One GRU layer; ``reset_before_matmul`` overrides where the reset gate goes (Keras: before iff not
    reset_after)."""
    config = fixture.config
    act, rec = _activations(fixture)
    seq = _sequence(fixture, config)
    units, after = int(config["units"]), bool(config.get("reset_after", True))
    before = (not after) if reset_before_matmul is None else reset_before_matmul
    kernel = np.asarray(fixture.weights["kernel"], np.float64)
    recurrent = np.asarray(fixture.weights["recurrent_kernel"], np.float64)
    bias = (np.asarray(fixture.weights["bias"], np.float64) if config.get("use_bias", True)
            else np.zeros((2, 3 * units) if after else 3 * units))
    b_in, b_rec = (bias[0], bias[1]) if after else (bias, np.zeros(3 * units))
    h = np.zeros((seq.shape[0], units))
    steps = []
    for t in range(seq.shape[1]):
        xs = seq[:, t] @ kernel + b_in
        hs = h @ recurrent[:, :2 * units] + b_rec[:2 * units]
        z = rec(xs[:, :units] + hs[:, :units])
        r = rec(xs[:, units:2 * units] + hs[:, units:])
        if before:
            hh = act(xs[:, 2 * units:] + (r * h) @ recurrent[:, 2 * units:] + b_rec[2 * units:])
        else:
            hh = act(xs[:, 2 * units:] + r * (h @ recurrent[:, 2 * units:] + b_rec[2 * units:]))
        h = z * h + (1 - z) * hh
        steps.append(h)
    return _outputs(config, steps, h=h)


def float32(outputs: dict) -> dict:
    return {k: v.astype(np.float32) for k, v in outputs.items()}
