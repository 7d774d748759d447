"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: an LSTM whose matmuls are convolutions over 1, 2 or 3 spatial axes;
gate blocks i, f, c, o; states h and c.

What Keras does, read in keras/src/layers/rnn/conv_lstm.py at the v3.15.1 tag (``ConvLSTMCell``):

- weights (``build``, lines 189-193 and 231): ``kernel_shape = self.kernel_size + (input_dim,
  self.filters * 4)``, the recurrent kernel ``self.kernel_size + (self.filters, self.filters * 4)``, the bias
  ``(self.filters * 4,)`` -- the same in tf.keras 2.12 (keras/layers/rnn/base_conv_lstm.py at v2.12.0,
  lines 170-174);
- gates (``call``, lines 268-298): ``ops.split(self.kernel, 4, axis=self.rank + 1)`` -- the last axis,
  blocks i, f, c, o as in LSTM -- and ``i = recurrent_activation(x_i + h_i)``, ``f`` likewise,
  ``c = f * c_tm1 + i * activation(x_c + h_c)``, ``o = recurrent_activation(x_o + h_o)``,
  ``h = o * activation(c)``;
- the input convolution (``input_conv``, lines 323-339): ``ops.conv(x, w, strides=self.strides, padding=padding,
  data_format=self.data_format, dilation_rate=self.dilation_rate)`` plus the bias;
- the recurrent convolution (``recurrent_conv``, lines 341-348): ``strides =
  argument_validation.standardize_tuple(1, self.rank, "strides", allow_zero=True)``; ``conv_out =
  ops.conv(x, w, strides=strides, padding="same", data_format=self.data_format)`` -- always strides 1,
  padding "same" and no dilation, whatever the layer's strides, padding and dilation_rate. tf.keras 2.12
  (keras/layers/rnn/base_conv_lstm.py at v2.12.0, ``recurrent_conv``, lines 310-317) does the same with
  ``padding="same"`` and strides 1.

``ops.conv`` is a cross-correlation (the kernel is not flipped). "same" pads each spatial axis with
``total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)`` zeros, ``total // 2`` before and the
rest after (TensorFlow's and XLA's SAME: an even kernel gets its extra zero at the end), ``out =
ceil(size / stride)``; "valid" pads nothing, ``out = (size - (k - 1) * dilation - 1) // stride + 1``. Only
channels_last: TensorFlow's CPU convolution refuses channels_first ("The Conv2D op currently only supports the
NHWC tensor format on the CPU"), so no fixture has it and the reference refuses it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...errors import Unsupported
from . import Family

GATES = ("i", "f", "c", "o")


def as_tuple(value, rank: int) -> tuple[int, ...]:
    """An int or a sequence of ``rank`` ints (Keras's ``standardize_tuple``) as a tuple of ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise Unsupported(f"expected {rank} values, got {list(value)}")
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def same_padding(size: int, kernel: int, stride: int, dilation: int, extra_before: bool = False) -> tuple[int, int]:
    """(zeros before, zeros after) of one axis for padding "same": TensorFlow puts an odd zero after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    before = total - total // 2 if extra_before else total // 2
    return before, total - before


def output_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """The length of one spatial axis after the input convolution."""
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        return max((size - (kernel - 1) * dilation - 1) // stride + 1, 0)
    raise Unsupported(f"padding {padding!r} (Keras's ConvLSTM takes 'valid' or 'same')")


def convolve(x: np.ndarray, kernel: np.ndarray, strides, padding: str, dilation,
             extra_before: bool = False) -> np.ndarray:
    """Keras's ``ops.conv``, channels_last: x (batch, *spatial, in) with kernel (*kernel_size, in, out)
    -> (batch, *out_spatial, out), a cross-correlation. The windows are ``sliding_window_view``'s,
    strided over positions and dilated within the window, contracted with the kernel by ``tensordot``."""
    rank = kernel.ndim - 2
    sizes = kernel.shape[:rank]
    strides, dilation = as_tuple(strides, rank), as_tuple(dilation, rank)
    if padding == "same":
        pads = [same_padding(n, k, s, d, extra_before)
                for n, k, s, d in zip(x.shape[1:1 + rank], sizes, strides, dilation)]
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    elif padding != "valid":
        raise Unsupported(f"padding {padding!r} (Keras's ConvLSTM takes 'valid' or 'same')")
    spans = [(k - 1) * d + 1 for k, d in zip(sizes, dilation)]
    if any(span > n for span, n in zip(spans, x.shape[1:1 + rank])):
        raise Unsupported(f"a kernel spanning {spans} does not fit the input's spatial shape {x.shape[1:1 + rank]}")
    windows = sliding_window_view(x, spans, axis=tuple(range(1, 1 + rank)))   # (batch, *positions, in, *spans)
    windows = windows[(slice(None), *(slice(None, None, s) for s in strides), slice(None),
                       *(slice(None, None, d) for d in dilation))]           # (batch, *out, in, *sizes)
    window_axes = [1 + rank, *range(2 + rank, 2 + 2 * rank)]                  # in, then the kernel positions
    kernel_axes = [rank, *range(rank)]
    return np.tensordot(windows, kernel, axes=(window_axes, kernel_axes))


Conv = Callable[..., np.ndarray]   # convolve's signature


def input_conv(x, kernel, config, conv: Conv = convolve):
    """The input convolution: the layer's strides, padding and dilation_rate."""
    rank = kernel.ndim - 2
    return conv(x, kernel, as_tuple(config.get("strides", 1), rank), config.get("padding", "valid"),
                as_tuple(config.get("dilation_rate", 1), rank))


def recurrent_conv(h, kernel, config, conv: Conv = convolve):
    """The recurrent convolution: always strides 1, padding "same", no dilation (Keras's ``recurrent_conv``:
    ``ops.conv(x, w, strides=strides, padding="same", data_format=self.data_format)`` with strides 1)."""
    ones = (1,) * (kernel.ndim - 2)
    return conv(h, kernel, ones, "same", ones)


def _channels_last(config):
    if config.get("data_format", "channels_last") != "channels_last":
        raise Unsupported(f"data_format {config.get('data_format')!r}: only channels_last ConvLSTM is in format v1 "
                          "(TensorFlow's CPU convolution refuses channels_first)")


def pre_activation(w, config, x, h, gate, recurrent=recurrent_conv, conv: Conv = convolve):
    """``conv_in(x, kernel[..., g]) + bias[g] + conv_rec(h, recurrent_kernel[..., g])`` over a batch."""
    return (input_conv(x, w["kernel"][gate], config, conv) + w["bias"][gate]
            + recurrent(h, w["recurrent_kernel"][gate], config, conv))


def make_cell(recurrent=recurrent_conv, conv: Conv = convolve):
    """The ConvLSTM cell with these convolutions (Keras's by default; ``mistakes`` passes mistaken ones)."""
    def cell(x, states, w, act, rec_act, config):
        _channels_last(config)
        h, c = states
        pre = {g: pre_activation(w, config, x, h, g, recurrent, conv) for g in GATES}
        i, f, o = rec_act(pre["i"]), rec_act(pre["f"]), rec_act(pre["o"])
        c_tilde = act(pre["c"])
        c_new = f * c + i * c_tilde
        h_new = o * act(c_new)
        return {"i": i, "f": f, "c_tilde": c_tilde, "o": o, "c": c_new, "h": h_new}, (h_new, c_new)
    return cell


def pre_activations(w, config, x, h, step):
    """One batch row (``x`` (*spatial, in), ``h`` (*spatial', filters)): every gate's pre-activation map."""
    return [(f"pre {g}", pre_activation(w, config, x[None], h[None], g)[0], "c_tilde" if g == "c" else g)
            for g in GATES]


@dataclasses.dataclass(frozen=True)
class ConvLSTMFamily(Family):
    rank: int = 2                       # spatial axes of the convolution: 1, 2 or 3 (ConvLSTM1D/2D/3D)

    def units(self, config: Mapping) -> int:
        return int(config["filters"])

    def full_config(self, config: Mapping) -> dict:
        """Keras's defaults written out; kernel_size, strides and dilation_rate as lists of ``rank`` ints."""
        full = super().full_config(config)
        for key in ("kernel_size", "strides", "dilation_rate"):
            full[key] = list(as_tuple(full[key], self.rank))
        return full

    def weight_shapes(self, config: Mapping, channels: int) -> dict[str, tuple]:
        sizes, filters = as_tuple(config["kernel_size"], self.rank), self.units(config)
        shapes = {"kernel": (*sizes, channels, 4 * filters), "recurrent_kernel": (*sizes, filters, 4 * filters)}
        if config.get("use_bias", True):
            shapes["bias"] = (4 * filters,)
        return shapes

    def state_shape(self, config: Mapping, x_shape: tuple) -> tuple:
        """(batch, *the input convolution's output positions, filters)."""
        _channels_last(config)
        sizes = as_tuple(config["kernel_size"], self.rank)
        strides = as_tuple(config.get("strides", 1), self.rank)
        dilation = as_tuple(config.get("dilation_rate", 1), self.rank)
        spatial = [output_size(int(n), k, s, d, config.get("padding", "valid"))
                   for n, k, s, d in zip(x_shape[2:2 + self.rank], sizes, strides, dilation)]
        return (int(x_shape[0]), *spatial, self.units(config))

    def explain_lines(self, config: Mapping) -> list[str]:
        options = (f"strides={config.get('strides')}, padding={config.get('padding')!r}, "
                   f"dilation_rate={config.get('dilation_rate')}")
        axes = "the spatial axis" if self.rank == 1 else f"the {self.rank} spatial axes"
        return [f"conv_in(v, k): ops.conv, a cross-correlation over {axes}, with {options}",
                "conv_rec(v, k): ops.conv with strides 1, padding 'same', no dilation (always, whatever the layer's)",
                *self.explain]


def _family(rank: int, axes: tuple[str, ...]) -> ConvLSTMFamily:
    return ConvLSTMFamily(
        layer=f"ConvLSTM{rank}D", gates=GATES, states=("h", "c"), trace=("i", "f", "c_tilde", "o", "c", "h"),
        cell=make_cell(), pre_activations=pre_activations, rank=rank,
        output_axes=("batch", "timestep", *axes, "filter"), state_axes=("batch", *axes, "filter"),
        config_keys=(("filters", None), ("kernel_size", None), ("strides", 1), ("padding", "valid"),
                     ("data_format", "channels_last"), ("dilation_rate", 1), ("activation", "tanh"),
                     ("recurrent_activation", "sigmoid"), ("use_bias", True), ("unit_forget_bias", True)),
        explain=("pre_g = conv_in(x_t, kernel[..., g]) + bias[g] + conv_rec(h_prev, recurrent_kernel[..., g])"
                 "   for each gate g (maps: positions x filters)",
                 "i, f, o = recurrent_activation(pre_i), recurrent_activation(pre_f), recurrent_activation(pre_o)",
                 "c_tilde = activation(pre_c)",
                 "c = f * c_prev + i * c_tilde;   h = o * activation(c)   (elementwise at every position)"),
    )


CONV_LSTM_1D = _family(1, ("row",))
CONV_LSTM_2D = _family(2, ("row", "col"))
CONV_LSTM_3D = _family(3, ("depth", "row", "col"))
FAMILIES = (CONV_LSTM_1D, CONV_LSTM_2D, CONV_LSTM_3D)
