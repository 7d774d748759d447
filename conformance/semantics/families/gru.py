"""GRU: gate blocks z, r, h; state h; bias (2, 3u) [input; recurrent] with reset_after, (3u,) without."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import Family, split


def cell(x, states, w, act, rec_act, config):
    (h,) = states
    b_in, b_rec = w["bias"]["input"], w["bias"]["recurrent"]
    xz, xr, xh = (x @ w["kernel"][g] + b_in[g] for g in "zrh")
    hz, hr = (h @ w["recurrent_kernel"][g] + b_rec[g] for g in "zr")
    z, r = rec_act(xz + hz), rec_act(xr + hr)
    hh = act(candidate(w, config, x, h, r))
    h_new = z * h + (1 - z) * hh
    return {"z": z, "r": r, "hh": hh, "h": h_new}, (h_new,)


def candidate(w, config, x, h, r):
    """The pre-activation of hh: r applied after the recurrent matmul (reset_after=True) or before it."""
    b_in, b_rec = w["bias"]["input"], w["bias"]["recurrent"]
    if config.get("reset_after", True):
        return x @ w["kernel"]["h"] + b_in["h"] + r * (h @ w["recurrent_kernel"]["h"] + b_rec["h"])
    return x @ w["kernel"]["h"] + b_in["h"] + (r * h) @ w["recurrent_kernel"]["h"] + b_rec["h"]


def pre_activations(w, config, x, h, step):
    b_in, b_rec = w["bias"]["input"], w["bias"]["recurrent"]
    rows = [(f"pre {g}", x @ w["kernel"][g] + b_in[g] + h @ w["recurrent_kernel"][g] + b_rec[g], g) for g in "zr"]
    return rows + [("pre hh", candidate(w, config, x, h, step["r"]), "hh")]


@dataclasses.dataclass(frozen=True)
class GRUFamily(Family):
    def bias(self, bias: np.ndarray, gates) -> dict:
        """(2, 3u) is [input; recurrent] (reset_after=True); (3u,) is the input bias only."""
        b_in, b_rec = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
        return {"input": split(b_in, gates), "recurrent": split(b_rec, gates)}

    def weight_shapes(self, config, channels: int) -> dict[str, tuple]:
        """As every family's, with the bias (2, 3u) [input; recurrent] when reset_after (Keras's default)."""
        shapes = super().weight_shapes(config, channels)
        if "bias" in shapes and config.get("reset_after", True):
            shapes["bias"] = (2, *shapes["bias"])
        return shapes

    def explain_lines(self, config) -> list[str]:
        other = "(reset_after=False)" if config.get("reset_after", True) else "(reset_after=True)"
        return [line for line in self.explain if not line.endswith(other)]


FAMILY = GRUFamily(
    layer="GRU", gates=("z", "r", "h"), states=("h",), trace=("z", "r", "hh", "h"),
    cell=cell, pre_activations=pre_activations,
    config_keys=(("units", None), ("activation", "tanh"), ("recurrent_activation", "sigmoid"),
                 ("use_bias", True), ("reset_after", True)),
    explain=("pre_z = x_t @ kernel[:, z] + b_in[z] + h_prev @ recurrent_kernel[:, z] + b_rec[z]   (same for r)",
             "z, r = recurrent_activation(pre_z), recurrent_activation(pre_r)",
             "pre_hh = x_t @ kernel[:, h] + b_in[h] + r * (h_prev @ recurrent_kernel[:, h] + b_rec[h])"
             "   (reset_after=True)",
             "pre_hh = x_t @ kernel[:, h] + bias[h] + (r * h_prev) @ recurrent_kernel[:, h]   (reset_after=False)",
             "hh = activation(pre_hh);   h = z * h_prev + (1 - z) * hh"),
)
