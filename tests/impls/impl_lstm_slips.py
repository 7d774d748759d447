"""A plain numpy LSTM written apart from the reference, with one realistic slip per entry point.

Each ``run_*`` is a port a user might write: its own step loop (Keras gate order i, f, c, o; sigmoid, tanh or
hard_sigmoid), with one thing done the way another framework or a hasty reading does it. The diagnosis tests run
the suite's diagnosis on what these return, so the mistake must be recognised from a port that shares no code with
the catalogue.
"""

import numpy as np

ACTIVATIONS = {
    "sigmoid": lambda x, **_: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x, **_: np.tanh(x),
    "hard_sigmoid": lambda x, slope, offset, **_: np.clip(slope * x + offset, 0.0, 1.0),
    "linear": lambda x, **_: x,
    "relu": lambda x, **_: np.maximum(x, 0.0),
}


def _activation(spec):
    params = {k: v for k, v in spec.items() if k not in ("name", "formula")}
    return lambda x: ACTIVATIONS[spec["name"]](x, **params)


def lstm(fixture, forget_bias=0.0, cell_clip=None, last_after_flip=False, mask_output_only=False, dtype=None,
         trace=False):
    """The LSTM layer of ``fixture``, in ``dtype`` (default the fixture's: float32 unless the layer is float64),
    with the per-step trace (gates after activation, states after the step, in processing order) if asked."""
    config, w, inputs = fixture.config, fixture.weights, fixture.inputs
    dtype = dtype or (np.float64 if config.get("dtype") == "float64" else np.float32)
    units = int(config["units"])
    act = _activation(fixture.activations["activation"])
    rec_act = _activation(fixture.activations["recurrent_activation"])
    x = np.asarray(inputs["x"], np.float64)
    batch, steps = x.shape[:2]
    kernel, recurrent = np.asarray(w["kernel"], np.float64), np.asarray(w["recurrent_kernel"], np.float64)
    bias = np.asarray(w["bias"], np.float64) if config.get("use_bias", True) else np.zeros(4 * units)
    bias = bias + np.concatenate([np.zeros(units), np.full(units, forget_bias), np.zeros(2 * units)])
    h = np.asarray(inputs.get("initial_state_h", np.zeros((batch, units))), np.float64)
    c = np.asarray(inputs.get("initial_state_c", np.zeros((batch, units))), np.float64)
    mask = np.asarray(inputs.get("mask", np.ones((batch, steps))), bool)
    order = range(steps - 1, -1, -1) if config.get("go_backwards") else range(steps)
    out, outputs, steps_seen = np.zeros((batch, units)), [], {}
    for t in order:
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c_new = rec_act(f) * c + rec_act(i) * act(g)
        if cell_clip is not None:
            c_new = np.clip(c_new, -cell_clip, cell_clip)
        h_new = rec_act(o) * act(c_new)
        keep = mask[:, t:t + 1]
        if mask_output_only:   # the state runs on through masked steps; only the output holds
            h, c = h_new, c_new
        else:
            h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        out = np.where(keep, h_new, np.zeros_like(out) if config.get("zero_output_for_mask") else out)
        seen = {"i": rec_act(i), "f": rec_act(f), "c_tilde": act(g), "o": rec_act(o), "c": c, "h": h}
        for name, value in seen.items():
            steps_seen.setdefault(name, []).append(value)
        outputs.append(out)
    sequence = np.stack(outputs, axis=1)
    if last_after_flip:        # flipped back to input order, then the "last" step taken: the first one processed
        last = sequence[:, ::-1][:, -1]
    else:
        last = outputs[-1]
    result = {"output": sequence if config.get("return_sequences") else last, "state_h": h, "state_c": c}
    if trace:
        result["trace"] = {name: np.stack(values, axis=1) for name, values in steps_seen.items()}
    return {k: ({n: t.astype(dtype) for n, t in v.items()} if k == "trace" else v.astype(dtype))
            for k, v in result.items()}


def run_tf1_forget_bias(fixture):
    """TF1's LSTMCell(forget_bias=1.0): 1 added to the forget pre-activation, bias or no bias."""
    return lstm(fixture, forget_bias=1.0)


def run_tf1_forget_bias_float32_with_trace(fixture):
    """TF1's forget bias, computed and returned in float32 whatever the layer's dtype, with the trace."""
    return lstm(fixture, forget_bias=1.0, dtype=np.float32, trace=True)


def run_last_after_flip(fixture):
    """go_backwards: the output sequence flipped back to input order before its last step is taken."""
    return lstm(fixture, last_after_flip=bool(fixture.config.get("go_backwards")))


def run_cell_clip(clip: float):
    """TFLite's LSTM with ``cell_clip=clip``: the cell state clipped to [-clip, clip] at every step."""
    return lambda fixture: lstm(fixture, cell_clip=clip)


def run_mask_output_only(fixture):
    """The mask applied to the output only: masked steps hold the output but still advance h and c."""
    return lstm(fixture, mask_output_only=True)
