"""SimpleRNN: one block h; state h; no recurrent activation."""

from __future__ import annotations

from . import Family


def cell(x, states, w, act, rec_act, config):
    (h,) = states
    h_new = act(x @ w["kernel"]["h"] + h @ w["recurrent_kernel"]["h"] + w["bias"]["h"])
    return {"h": h_new}, (h_new,)


def pre_activations(w, config, x, h, step):
    return [("pre h", x @ w["kernel"]["h"] + h @ w["recurrent_kernel"]["h"] + w["bias"]["h"], "h")]


FAMILY = Family(
    layer="SimpleRNN", gates=("h",), states=("h",), trace=("h",), cell=cell, pre_activations=pre_activations,
    recurrent_activation=False,
    config_keys=(("units", None), ("activation", "tanh"), ("use_bias", True)),
    explain=("pre_h = x_t @ kernel + h_prev @ recurrent_kernel + bias", "h = activation(pre_h)"),
)
