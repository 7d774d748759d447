"""The ``torch`` implementation: ``torch.nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` with converted Keras weights.

This is PyTorch's own fused recurrent module doing the arithmetic; the adapter only
converts the weights (docs/conversions.md has the tables) and arranges inputs and outputs
the Keras way (``convert``). Where PyTorch cannot express a Keras feature the
adapter raises ``Unsupported`` with the reason instead of stepping a cell by hand:
hand-stepping would test the adapter, not PyTorch.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import Unsupported
from . import convert
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

LIBRARY = "PyTorch"
MODULES = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
# PyTorch's gate blocks, named by the Keras gate they take: LSTM i,f,g,o is Keras's i,f,c,o;
# GRU r,z,n takes Keras's r,z,h blocks (Keras stores z,r,h).
GATE_ORDER = {"LSTM": ("i", "f", "c", "o"), "GRU": ("r", "z", "h"), "SimpleRNN": ("h",)}


@functools.lru_cache(maxsize=None)
def _torch():
    torch = require("torch")
    # The suite calls run() in a fresh thread per fixture; with intra-op parallelism each new thread
    # starts its own OpenMP team (0.1-1 s a call). Fixture matrices are tiny: one thread is faster.
    torch.set_num_threads(1)
    return torch


def info() -> dict:
    check_installed("torch")
    return {"torch": distribution_version("torch")}


def _module_kwargs(spec: convert.Recurrent) -> dict:
    """The module's constructor options; Unsupported for what PyTorch's modules cannot compute."""
    act, rec = convert.activation_names(spec.activations, spec.layer)
    if spec.layer == "SimpleRNN":
        if act not in ("tanh", "relu"):
            raise Unsupported(f"nn.RNN's nonlinearity is tanh or relu, not {act!r}")
        return {"nonlinearity": act}
    if act != "tanh":
        raise Unsupported(f"nn.{MODULES[spec.layer]} uses tanh as its activation, not {act!r}")
    if rec != "sigmoid":
        raise Unsupported(f"nn.{MODULES[spec.layer]} uses the logistic sigmoid on its gates, not {rec!r}")
    if spec.layer == "GRU" and not spec.config.get("reset_after", True):
        raise Unsupported("nn.GRU applies the reset gate after the recurrent matmul (Keras reset_after=True); "
                          "reset_after=False has no PyTorch equivalent")
    return {}


def state_dict(spec: convert.Recurrent) -> dict[str, np.ndarray]:
    """Keras weights as PyTorch parameters: transposed kernels, gate blocks reordered, biases split."""
    order = GATE_ORDER[spec.layer]
    params = {}
    for half in spec.halves:
        suffix = "_l0_reverse" if len(spec.halves) == 2 and half.reverse else "_l0"
        w, g = half.weights, half.gates
        params[f"weight_ih{suffix}"] = convert.reorder(np.asarray(w["kernel"]), g["kernel"], order).T
        params[f"weight_hh{suffix}"] = convert.reorder(np.asarray(w["recurrent_kernel"]), g["recurrent_kernel"], order).T
        if spec.use_bias:
            bias = convert.reorder(np.asarray(w["bias"]), g["bias"], order)
            if bias.ndim == 2:  # GRU reset_after: [input; recurrent] rows are b_ih and b_hh
                params[f"bias_ih{suffix}"], params[f"bias_hh{suffix}"] = bias[0], bias[1]
            else:
                params[f"bias_ih{suffix}"], params[f"bias_hh{suffix}"] = bias, np.zeros_like(bias)
    return {k: np.ascontiguousarray(v, spec.dtype) for k, v in params.items()}


def check(spec: convert.Recurrent) -> None:
    """Unsupported for what nn.LSTM/GRU/RNN cannot compute (no torch needed to say so)."""
    _module_kwargs(spec)
    if len(spec.halves) == 1 and spec.halves[0].reverse and spec.lengths is not None:
        raise Unsupported("go_backwards with a padded mask: PyTorch reverses a padded row only inside a "
                          "bidirectional module, a flipped input would put the padding first")


def supports(fixture) -> str | None:
    return convert.supports(fixture, check, LIBRARY)


def rnn(spec: convert.Recurrent) -> list:
    """One nn.LSTM/GRU/RNN call (bidirectional for two halves); outputs per half in time order."""
    torch = _torch()
    check(spec)
    kwargs = _module_kwargs(spec)
    bidirectional = len(spec.halves) == 2
    flipped = not bidirectional and spec.halves[0].reverse  # go_backwards: PyTorch has no reverse-only mode
    batch, steps, features = spec.x.shape
    module = getattr(torch.nn, MODULES[spec.layer])(features, spec.units, num_layers=1, bias=spec.use_bias,
                                                   batch_first=True, bidirectional=bidirectional, **kwargs,
                                                   dtype=getattr(torch, np.dtype(spec.dtype).name))
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(spec).items()}, strict=True)
    module.eval()
    states = convert.STATES[spec.layer]
    zeros = np.zeros((batch, spec.units), spec.dtype)
    initial = [torch.from_numpy(np.stack([np.asarray((h.initial or {}).get(s, zeros), spec.dtype)
                                          for h in spec.halves])) for s in states]
    with torch.inference_mode():
        x = torch.from_numpy(np.array(spec.x, spec.dtype))  # a writable copy
        if flipped:
            x = torch.flip(x, dims=[1])
        if spec.lengths is not None:
            x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(spec.lengths), batch_first=True,
                                                        enforce_sorted=False)
        y, final = module(x, tuple(initial) if spec.layer == "LSTM" else initial[0])
        if spec.lengths is not None:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=steps)
        if flipped:
            y = torch.flip(y, dims=[1])  # back to time order; convert puts it in Keras's processing order
        final = final if spec.layer == "LSTM" else (final,)
        y = y.numpy()
        finals = [f.numpy() for f in final]
    return [(y[..., k * spec.units:(k + 1) * spec.units], {s: f[k] for s, f in zip(states, finals)})
            for k in range(len(spec.halves))]


@implementation(version=distribution_version("torch"), info=info, supports=supports)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``torch``."""
    _torch()
    return convert.run_fixture(fixture, rnn, LIBRARY)
