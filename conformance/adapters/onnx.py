"""The ``onnxruntime`` implementation: an ONNX ``LSTM`` / ``GRU`` / ``RNN`` node built from the fixture, run by ONNX Runtime.

The graph is what a converter emits for one Keras layer: one recurrent node whose
weights are initializers converted from Keras (docs/conversions.md has the tables),
activations and their parameters taken from the fixture's structured ``activations``.
ONNX Runtime does the arithmetic; ``convert`` arranges inputs and outputs the Keras way
(a stack is one graph per layer). Masks become ``sequence_lens`` only where that gives
Keras's answer; elsewhere ``Unsupported`` says why.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import Unsupported
from . import convert
from .requires import check_installed, distribution_version, require
from ..judge.contract import implementation

LIBRARY = "ONNX Runtime"
OPSET = 14          # the LSTM/GRU/RNN operators as of opset 14 (``layout`` added; we use the default 0)
IR_VERSION = 8      # the model format version ONNX Runtime releases since 1.10 read
OPS = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
# ONNX's gate blocks, named by the Keras gate they take: LSTM i,o,f,c from Keras's i,f,c,o;
# GRU z,r,h is Keras's z,r,h.
GATE_ORDER = {"LSTM": ("i", "o", "f", "c"), "GRU": ("z", "r", "h"), "SimpleRNN": ("h",)}


def _activation(definition) -> tuple[str, list, list]:
    """(ONNX activation name, alpha, beta) for a fixture activation; ONNX Runtime reads an alpha/beta
    only for the activations that take one, in the order of the activations list."""
    name = definition["name"]
    if name == "hard_sigmoid":  # ONNX HardSigmoid: max(0, min(1, alpha*x + beta))
        return "HardSigmoid", [float(definition["slope"])], [float(definition["offset"])]
    if name == "linear":        # ONNX Affine: alpha*x + beta
        return "Affine", [1.0], [0.0]
    simple = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
    if name not in simple:
        raise Unsupported(f"activation {name!r} has no ONNX recurrent-activation counterpart")
    return simple[name], [], []


@functools.lru_cache(maxsize=None)
def _libraries():
    return require("onnx"), require("onnxruntime")



def info() -> dict:
    check_installed("onnx")
    check_installed("onnxruntime")
    return {"onnxruntime": distribution_version("onnxruntime"), "onnx": distribution_version("onnx"), "opset": OPSET}


def weights(spec: convert.Recurrent) -> dict[str, np.ndarray]:
    """W, R and B in ONNX layout: [directions, gates*units, ...], blocks in ONNX gate order, B = [Wb, Rb]."""
    order = GATE_ORDER[spec.layer]
    out = {"W": [], "R": [], "B": []}
    for half in spec.halves:
        w, g = half.weights, half.gates
        out["W"].append(convert.reorder(np.asarray(w["kernel"]), g["kernel"], order).T)
        out["R"].append(convert.reorder(np.asarray(w["recurrent_kernel"]), g["recurrent_kernel"], order).T)
        if spec.use_bias:
            bias = convert.reorder(np.asarray(w["bias"]), g["bias"], order)
            # GRU reset_after: rows [input; recurrent] are Wb and Rb; otherwise the recurrent bias is 0
            out["B"].append(np.concatenate([bias[0], bias[1]]) if bias.ndim == 2
                            else np.concatenate([bias, np.zeros_like(bias)]))
    return {k: np.stack(v).astype(np.float32) for k, v in out.items() if v}


def _attributes(spec: convert.Recurrent) -> dict:
    if spec.dtype == np.float64:
        # tried: onnxruntime 1.32 says "LSTM operator does not support double yet" (GRU alike), and has no
        # double RNN kernel ("Could not find an implementation for RNN(14)"); microsoft/onnxruntime#28339
        raise Unsupported("a float64 layer: ONNX Runtime's CPU LSTM and GRU kernels do not support double, "
                          "and it has no double RNN kernel")
    act = spec.activations["activation"]
    if spec.layer == "LSTM":    # f (gates), g (cell input), h (cell output)
        functions = [spec.activations["recurrent_activation"], act, act]
    elif spec.layer == "GRU":   # f (gates), g (candidate)
        functions = [spec.activations["recurrent_activation"], act]
    else:
        functions = [act]
    names, alpha, beta = [], [], []
    for definition in functions * len(spec.halves):
        name, a, b = _activation(definition)
        names.append(name)
        alpha += a
        beta += b
    direction = "bidirectional" if len(spec.halves) == 2 else ("reverse" if spec.halves[0].reverse else "forward")
    attrs = {"hidden_size": spec.units, "direction": direction, "activations": names}
    if alpha:
        attrs.update(activation_alpha=alpha, activation_beta=beta)
    if spec.layer == "GRU":
        attrs["linear_before_reset"] = int(bool(spec.config.get("reset_after", True)))
    return attrs


def model(spec: convert.Recurrent):
    """The ONNX model: one recurrent node, weights as initializers, X / sequence_lens / initial states as inputs."""
    onnx, _ = _libraries()
    helper, tp = onnx.helper, onnx.TensorProto
    batch, steps, features = spec.x.shape
    directions = len(spec.halves)
    inits = [onnx.numpy_helper.from_array(v, name) for name, v in weights(spec).items()]
    state_shape = [directions, batch, spec.units]
    inputs = [helper.make_tensor_value_info("X", tp.FLOAT, [steps, batch, features])]
    node_inputs = ["X", "W", "R", "B" if spec.use_bias else ""]
    node_inputs.append("sequence_lens" if spec.lengths is not None else "")
    if spec.lengths is not None:
        inputs.append(helper.make_tensor_value_info("sequence_lens", tp.INT32, [batch]))
    for s in convert.STATES[spec.layer]:
        node_inputs.append(f"initial_{s}")
        inputs.append(helper.make_tensor_value_info(f"initial_{s}", tp.FLOAT, state_shape))
    outputs = ["Y", "Y_h", "Y_c"][:1 + len(convert.STATES[spec.layer])]
    node = helper.make_node(OPS[spec.layer], node_inputs, outputs, **_attributes(spec))
    graph = helper.make_graph(
        [node], f"keras_{spec.layer.lower()}", inputs,
        [helper.make_tensor_value_info("Y", tp.FLOAT, [steps, directions, batch, spec.units])]
        + [helper.make_tensor_value_info(o, tp.FLOAT, state_shape) for o in outputs[1:]], inits)
    result = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                               producer_name="lstm-conformance")
    onnx.checker.check_model(result, full_check=True)
    return result


def supports(fixture) -> str | None:
    """Why an ONNX recurrent node cannot express this fixture (activations, masks), or None."""
    return convert.supports(fixture, _attributes, LIBRARY)


def rnn(spec: convert.Recurrent) -> list:
    """Run the node with ONNX Runtime; outputs per direction in time order (ONNX's Y is time-ordered
    for the reverse direction too)."""
    _, ort = _libraries()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model(spec).SerializeToString(), options, providers=["CPUExecutionProvider"])
    batch = spec.x.shape[0]
    feed = {"X": np.ascontiguousarray(np.transpose(spec.x, (1, 0, 2)), np.float32)}
    if spec.lengths is not None:
        feed["sequence_lens"] = spec.lengths.astype(np.int32)
    zeros = np.zeros((batch, spec.units), np.float32)
    states = convert.STATES[spec.layer]
    for s in states:
        feed[f"initial_{s}"] = np.stack([np.asarray((h.initial or {}).get(s, zeros), np.float32) for h in spec.halves])
    y, *finals = session.run(None, feed)
    return [(np.transpose(y[:, k], (1, 0, 2)), {s: f[k] for s, f in zip(states, finals)})
            for k in range(len(spec.halves))]


@implementation(version=distribution_version("onnxruntime"), info=info, supports=supports)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``onnxruntime``."""
    _libraries()
    return convert.run_fixture(fixture, rnn, LIBRARY)
