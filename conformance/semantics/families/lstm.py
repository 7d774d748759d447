"""LSTM: gate blocks i, f, c, o; states h and c."""

from __future__ import annotations

from . import Family


def cell(x, states, w, act, rec_act, config):
    h, c = states
    pre = {g: x @ w["kernel"][g] + h @ w["recurrent_kernel"][g] + w["bias"][g] for g in "ifco"}
    i, f, o = rec_act(pre["i"]), rec_act(pre["f"]), rec_act(pre["o"])
    c_tilde = act(pre["c"])
    c_new = f * c + i * c_tilde
    h_new = o * act(c_new)
    return {"i": i, "f": f, "c_tilde": c_tilde, "o": o, "c": c_new, "h": h_new}, (h_new, c_new)


def pre_activations(w, config, x, h, step):
    return [(f"pre {g}", x @ w["kernel"][g] + h @ w["recurrent_kernel"][g] + w["bias"][g],
             "c_tilde" if g == "c" else g) for g in "ifco"]


FAMILY = Family(
    layer="LSTM", gates=("i", "f", "c", "o"), states=("h", "c"), trace=("i", "f", "c_tilde", "o", "c", "h"),
    cell=cell, pre_activations=pre_activations,
    config_keys=(("units", None), ("activation", "tanh"), ("recurrent_activation", "sigmoid"),
                 ("use_bias", True), ("unit_forget_bias", True)),
    explain=("pre_g = x_t @ kernel[:, g] + h_prev @ recurrent_kernel[:, g] + bias[g]   for each gate g",
             "i, f, o = recurrent_activation(pre_i), recurrent_activation(pre_f), recurrent_activation(pre_o)",
             "c_tilde = activation(pre_c)",
             "c = f * c_prev + i * c_tilde;   h = o * activation(c)"),
)
