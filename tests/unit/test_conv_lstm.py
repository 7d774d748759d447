"""The ConvLSTM families: the numpy convolution against a direct loop, shapes, labels and gate slicing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conformance import Unsupported, reference
from conformance.families import FAMILIES, conv_lstm

CONV_1D, CONV_2D, CONV_3D = FAMILIES["ConvLSTM1D"], FAMILIES["ConvLSTM2D"], FAMILIES["ConvLSTM3D"]


def direct_conv(x, kernel, strides, padding, dilation):
    """The convolution written out element by element: out[b, p, o] = sum over window k, channel i of
    x_padded[b, p * stride + k * dilation, i] * kernel[k, i, o], TensorFlow's SAME padding (odd zero after)."""
    rank = kernel.ndim - 2
    sizes = kernel.shape[:rank]
    if padding == "same":
        pads = []
        for n, k, s, d in zip(x.shape[1:1 + rank], sizes, strides, dilation):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    outs = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(x.shape[1:1 + rank], sizes, strides, dilation)]
    result = np.zeros((x.shape[0], *outs, kernel.shape[-1]))
    for b in range(x.shape[0]):
        for pos in itertools.product(*(range(n) for n in outs)):
            for k in itertools.product(*(range(n) for n in sizes)):
                at = tuple(p * s + kk * d for p, kk, s, d in zip(pos, k, strides, dilation))
                result[(b, *pos)] += x[(b, *at)] @ kernel[k]
    return result


CASES = [  # (spatial, kernel size, strides, padding, dilation)
    ((7,), (3,), (1,), "valid", (1,)),
    ((7,), (2,), (1,), "same", (1,)),
    ((8,), (3,), (2,), "valid", (1,)),
    ((6,), (3,), (2,), "same", (1,)),
    ((7,), (3,), (1,), "valid", (2,)),
    ((5,), (3,), (1,), "same", (2,)),
    ((5, 4), (3, 2), (1, 1), "same", (1, 1)),
    ((6, 5), (3, 3), (2, 2), "same", (1, 1)),
    ((5, 6), (2, 3), (1, 2), "valid", (1, 1)),
    ((5, 5), (3, 3), (1, 1), "same", (2, 2)),
    ((6, 5), (2, 2), (1, 1), "valid", (2, 1)),
    ((3, 4, 4), (3, 3, 3), (1, 1, 1), "valid", (1, 1, 1)),   # ConvLSTM3D: depth, rows, columns
    ((3, 4, 4), (2, 3, 3), (1, 1, 1), "same", (1, 1, 1)),
    ((3, 5, 5), (3, 3, 3), (1, 2, 2), "valid", (1, 1, 1)),
    ((4, 3, 5), (2, 2, 3), (2, 1, 2), "same", (1, 1, 1)),
    ((5, 4, 4), (2, 2, 2), (1, 1, 1), "same", (2, 1, 2)),
]


@pytest.mark.parametrize("spatial, sizes, strides, padding, dilation", CASES)
def test_convolve_matches_a_direct_loop(spatial, sizes, strides, padding, dilation):
    rng = np.random.default_rng(len(spatial) * 100 + sum(sizes))
    x = rng.normal(size=(2, *spatial, 3))
    kernel = rng.normal(size=(*sizes, 3, 4))
    got = conv_lstm.convolve(x, kernel, strides, padding, dilation)
    want = direct_conv(x, kernel, strides, padding, dilation)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    fam = (CONV_1D, CONV_2D, CONV_3D)[len(spatial) - 1]
    config = {"filters": 4, "kernel_size": list(sizes), "strides": list(strides), "padding": padding,
              "dilation_rate": list(dilation)}
    assert fam.state_shape(config, (2, 1, *spatial, 3)) == got.shape


def test_same_padding_puts_the_odd_zero_after_and_can_be_asked_to_put_it_before():
    assert conv_lstm.same_padding(5, 2, 1, 1) == (0, 1)
    assert conv_lstm.same_padding(5, 2, 1, 1, extra_before=True) == (1, 0)
    assert conv_lstm.same_padding(6, 3, 2, 1) == (0, 1)   # out 3: (3-1)*2 + 3 - 6 = 1 zero
    assert conv_lstm.same_padding(5, 3, 1, 2) == (2, 2)   # dilated span 5


def test_the_recurrent_convolution_is_same_stride_one_and_undilated_whatever_the_layer_says():
    rng = np.random.default_rng(1)
    h, kernel = rng.normal(size=(1, 3, 3, 2)), rng.normal(size=(3, 3, 2, 2))
    config = {"strides": [2, 2], "padding": "valid", "dilation_rate": [2, 2]}
    np.testing.assert_allclose(conv_lstm.recurrent_conv(h, kernel, config),
                               direct_conv(h, kernel, (1, 1), "same", (1, 1)))


def test_weight_and_state_shapes_are_keras_layouts():
    config = CONV_2D.full_config({"filters": 3, "kernel_size": 3})
    assert config["kernel_size"] == [3, 3] and config["strides"] == [1, 1] and config["dilation_rate"] == [1, 1]
    assert config["padding"] == "valid" and config["data_format"] == "channels_last"
    assert CONV_2D.weight_shapes(config, 2) == {"kernel": (3, 3, 2, 12), "recurrent_kernel": (3, 3, 3, 12),
                                                "bias": (12,)}
    assert CONV_2D.state_shape(config, (4, 5, 6, 7, 2)) == (4, 4, 5, 3)
    one = CONV_1D.full_config({"filters": 2, "kernel_size": [2], "padding": "same", "use_bias": False})
    assert CONV_1D.weight_shapes(one, 5) == {"kernel": (2, 5, 8), "recurrent_kernel": (2, 2, 8)}
    assert CONV_1D.state_shape(one, (1, 3, 9, 5)) == (1, 9, 2)
    three = CONV_3D.full_config({"filters": 2, "kernel_size": [2, 3, 3], "strides": [1, 2, 2]})
    assert three["kernel_size"] == [2, 3, 3] and three["dilation_rate"] == [1, 1, 1]
    assert CONV_3D.weight_shapes(three, 4) == {"kernel": (2, 3, 3, 4, 8), "recurrent_kernel": (2, 3, 3, 2, 8),
                                               "bias": (8,)}
    assert CONV_3D.state_shape(three, (2, 6, 3, 5, 5, 4)) == (2, 2, 2, 2, 2)   # (batch, time, 3, 5, 5, channels)


def test_labels_name_rows_columns_and_filters():
    step = lambda t: f"timestep {t}"  # noqa: E731
    assert CONV_2D.label((1, 2, 3, 0, 1), step) == "[batch 1, timestep 2, row 3, col 0, filter 1]"
    assert CONV_2D.label((1, 3, 0, 1), step) == "[batch 1, row 3, col 0, filter 1]"
    assert CONV_1D.label((0, 1, 4, 1), step) == "[batch 0, timestep 1, row 4, filter 1]"
    assert CONV_1D.label((0, 4, 1), step) == "[batch 0, row 4, filter 1]"
    assert CONV_3D.label((1, 2, 0, 3, 1, 0), step) == "[batch 1, timestep 2, depth 0, row 3, col 1, filter 0]"


def test_gate_blocks_are_sliced_from_the_last_axis_in_keras_order():
    filters = 2
    kernel = np.arange(3 * 3 * 2 * 4 * filters, dtype=float).reshape(3, 3, 2, 4 * filters)
    gates = CONV_2D.gate_slices(filters, has_bias=True)
    assert gates["kernel"] == {"i": [0, 2], "f": [2, 4], "c": [4, 6], "o": [6, 8]}
    w = CONV_2D.weights({"filters": filters}, {"kernel": kernel, "recurrent_kernel": kernel[:, :, :2],
                                               "bias": np.arange(8.0)}, gates)
    for k, g in enumerate(conv_lstm.GATES):
        np.testing.assert_array_equal(w["kernel"][g], kernel[..., 2 * k:2 * k + 2])
    np.testing.assert_array_equal(w["bias"]["f"], [2.0, 3.0])
    no_bias = CONV_2D.weights({"filters": filters, "use_bias": False},
                              {"kernel": kernel, "recurrent_kernel": kernel[:, :, :2]}, CONV_2D.gate_slices(2, False))
    assert not any(np.any(b) for b in no_bias["bias"].values())


def test_the_cell_is_the_lstm_equations_over_convolutions():
    rng = np.random.default_rng(2)
    config = CONV_1D.full_config({"filters": 2, "kernel_size": 3, "padding": "same"})
    shapes = CONV_1D.weight_shapes(config, 3)
    raw = {name: rng.normal(size=shape) for name, shape in shapes.items()}
    w = CONV_1D.weights(config, raw, CONV_1D.gate_slices(2, True))
    x, h, c = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 5, 2))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    values, (h1, c1) = CONV_1D.cell(x, (h, c), w, np.tanh, sig, config)
    z = (direct_conv(x, raw["kernel"], (1,), "same", (1,)) + raw["bias"]
         + direct_conv(h, raw["recurrent_kernel"], (1,), "same", (1,)))
    i, f, g, o = (z[..., 2 * k:2 * k + 2] for k in range(4))
    want_c = sig(f) * c + sig(i) * np.tanh(g)
    np.testing.assert_allclose(c1, want_c)
    np.testing.assert_allclose(h1, sig(o) * np.tanh(want_c))
    assert list(values) == list(CONV_1D.trace)


def test_forward_holds_every_position_of_a_masked_row():
    rng = np.random.default_rng(3)
    config = {**CONV_1D.full_config({"filters": 2, "kernel_size": 3, "padding": "same"}), "return_sequences": True}
    raw = {name: rng.normal(size=shape).astype(np.float32) for name, shape in CONV_1D.weight_shapes(config, 1).items()}
    inputs = {"x": rng.normal(size=(2, 3, 4, 1)), "mask": np.array([[1, 0, 1], [1, 1, 1]], bool)}
    acts = {"activation": {"name": "tanh"}, "recurrent_activation": {"name": "sigmoid"}}
    out = reference.forward("ConvLSTM1D", config, raw, CONV_1D.gate_slices(2, True), acts, inputs)
    assert out["output"].shape == (2, 3, 4, 2) and out["state_c"].shape == (2, 4, 2)
    np.testing.assert_array_equal(out["output"][0, 1], out["output"][0, 0])   # masked: the previous output
    np.testing.assert_array_equal(out["trace"]["c"][0, 1], out["trace"]["c"][0, 0])  # and the state held
    assert not np.array_equal(out["output"][1, 1], out["output"][1, 0])


def test_channels_first_and_unknown_padding_are_refused():
    with pytest.raises(Unsupported, match="channels_first"):
        CONV_2D.state_shape({"filters": 1, "kernel_size": 1, "data_format": "channels_first"}, (1, 1, 2, 2, 1))
    with pytest.raises(Unsupported, match="causal"):
        conv_lstm.convolve(np.zeros((1, 3, 1)), np.zeros((2, 1, 1)), 1, "causal", 1)
