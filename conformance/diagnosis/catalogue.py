"""The catalogue of known reimplementation mistakes, each applied to the numpy reference.

When a port fails a fixture, the suite recomputes the fixture under every mistake that
applies to it; if the port's output matches one within tolerance, the failure message
names it in plain words. A mistake is data plus a small transformation of what the
reference reads (gate slices, weights, activations, inputs) or an ``Overrides`` of the
reference (a mistaken cell, layer config, result or Bidirectional merge), all defined here:
the reference itself computes Keras only.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable, Mapping

import numpy as np

from ..semantics import wrappers
from ..semantics.families import FAMILIES, conv_lstm
from ..semantics.tolerance import port_dtype
from .algebra import Mistake, Problem, _checked, _computed, _squared_error
from .precision import PRECISIONS, Precision

LSTM_ORDER = FAMILIES["LSTM"].gates
GRU_ORDER = FAMILIES["GRU"].gates
NAMED_LSTM_ORDERS = {
    ("i", "o", "f", "c"): "the ONNX order",
    ("i", "c", "f", "o"): "TensorFlow 1's LSTMCell order (i, j, f, o)",
    ("i", "f", "o", "c"): "the Caffe order (i, f, o, g)",
}

# -- transformations -------------------------------------------------------------------------------

def _map_gates(problem: Problem, gate_set: tuple, order: tuple) -> Problem | None:
    """The port reads block k of every weight as gate ``order[k]`` (Keras stores ``gate_set``)."""
    gates, changed = {}, False
    for name, blocks in problem.gates.items():
        if tuple(blocks) == gate_set:
            gates[name] = {gate: blocks[keras_gate] for keras_gate, gate in zip(gate_set, order)}
            changed = True
        else:
            gates[name] = blocks
    return dataclasses.replace(problem, gates=gates) if changed else None


def _activations(problem: Problem, change: Callable[[dict], dict | None]) -> Problem | None:
    """Apply ``change`` to every activation definition (also per layer of a stack)."""
    changed = False

    def walk(mapping):
        nonlocal changed
        out = {}
        for key, value in mapping.items():
            if "name" in value:
                new = change(dict(value))
                changed |= new is not None
                out[key] = new if new is not None else value
            else:
                out[key] = walk(value)
        return out

    activations = walk(problem.activations)
    return dataclasses.replace(problem, activations=activations) if changed else None


def _hard_sigmoid_slope(slope: float):
    def change(spec):
        if spec["name"] == "hard_sigmoid" and not np.isclose(spec["slope"], slope):
            return {**spec, "slope": slope}
        return None
    return lambda p: _activations(p, change)


def _sigmoid_for_hard_sigmoid(problem):
    return _activations(problem, lambda s: {"name": "sigmoid", "formula": "1 / (1 + exp(-x))"}
                        if s["name"] == "hard_sigmoid" else None)


def _weights(problem: Problem, change: Callable[[str, np.ndarray], np.ndarray | None]) -> Problem | None:
    weights, changed = {}, False
    for name, value in problem.weights.items():
        new = change(name, np.asarray(value))
        changed |= new is not None
        weights[name] = value if new is None else new
    return dataclasses.replace(problem, weights=weights) if changed else None


def _transposed(name, value):
    """A (rows, cols) kernel read from memory as if it were stored (cols, rows): reshape, then transpose."""
    if name.rsplit("/", 1)[-1] in ("kernel", "recurrent_kernel") and value.ndim == 2 and value.shape[0] > 1:
        return value.reshape(value.shape[1], value.shape[0]).T
    return None


def _no_bias(name, value):
    return np.zeros_like(value) if name.rsplit("/", 1)[-1] == "bias" and np.any(value) else None


def _forget_bias_twice(problem):
    """The port adds its own forget bias of 1 on top of Keras's (TF1's ``forget_bias=1.0``), also on a layer with
    ``use_bias=False`` (TF1 adds it to the forget pre-activation whether or not the layer has a bias)."""
    def change(name, value):
        blocks = problem.gates.get(name)
        if name.rsplit("/", 1)[-1] != "bias" or not blocks or "f" not in blocks:
            return None
        start, stop = blocks["f"]
        value = value.astype(np.result_type(value, port_dtype(problem.config)))  # a float64 layer adds in float64
        value[..., start:stop] += 1.0
        return value
    changed = _weights(problem, change)
    unbiased = any("f" in FAMILIES[layer].gates and not config.get("use_bias", True)
                   for layer, config in zip(_sublayers(problem), _configs(problem)) if layer in FAMILIES)
    return (changed or problem).overridden(cell=_forget_bias_without_bias) if unbiased else changed


def _forget_bias_without_bias(fam):
    """Overrides.cell: a layer without a bias (whose reference bias is zeros) with 1 on its forget pre-activation."""
    if "f" not in fam.gates:
        return fam.cell

    def cell(x, states, w, act, rec_act, config):
        if not config.get("use_bias", True):
            w = {**w, "bias": {**w["bias"], "f": w["bias"]["f"] + 1.0}}
        return fam.cell(x, states, w, act, rec_act, config)
    return cell


def _gru_bias_rows_swapped(problem):
    def change(name, value):
        if name.rsplit("/", 1)[-1] == "bias" and value.ndim == 2:
            return value[::-1].copy()
        return None
    return _weights(problem, change)


def _override(needs: Callable[[Problem], bool], **pieces):
    """A mistake computed by the reference with ``pieces`` of ``Overrides`` replaced, where ``needs`` holds."""
    def transform(problem):
        return problem.overridden(**pieces) if needs(problem) else None
    return transform


# -- the mistaken pieces: cells, layer configs and inputs, results, merges ---------------------------

def _h_computed(layer: str, new_h: Callable):
    """A cell override: ``layer``'s new h is ``new_h(trace values, previous states)``; other families as Keras."""
    def override(fam):
        if fam.layer != layer:
            return fam.cell

        def cell(x, states, w, act, rec_act, config):
            values, new = fam.cell(x, states, w, act, rec_act, config)
            values["h"] = new_h(values, states)
            return values, (values["h"], *new[1:])
        return cell
    return override


_lstm_without_cell_tanh = _h_computed("LSTM", lambda v, states: v["o"] * v["c"])   # h = o * c
_gru_interpolation_swapped = _h_computed("GRU", lambda v, states: (1 - v["z"]) * states[0] + v["z"] * v["hh"])


CELL_CLIP = 1.0   # the catalogue's own clipped port: the bound that shows on the gallery (whose |c| stays below 3)


def _cell_clipped(clip: float):
    """Overrides.cell: the cell state clipped to [-clip, clip] at every step, h made from the clipped c (TFLite's
    LSTM ``cell_clip``), in every family with a cell state."""
    def override(fam):
        if "c" not in fam.states:
            return fam.cell

        def cell(x, states, w, act, rec_act, config):
            values, new = fam.cell(x, states, w, act, rec_act, config)
            values["c"] = np.clip(values["c"], -clip, clip)
            values["h"] = values["o"] * act(values["c"])
            return values, (values["h"], values["c"], *new[2:])
        return cell
    return override


CLIP_GRID, CLIP_REFINE = 24, 80   # clips tried evenly over the possible range, then golden-section steps


def _fit_clip(fixture, result: Mapping) -> "Mistake | None":
    """The clipped-cell mistake at the clip the result shows: a bound below the largest |c| Keras reaches on this
    fixture (above it nothing is clipped), the one whose outputs are nearest the result (a grid over that range,
    then golden-section search around its best point, when that point is nearer the result than Keras is or is
    the top of the range, a clip that bites only a little).
    Returned states do not bound it: an initial state that is
    held (a fully masked row) is never clipped."""
    keys = _checked(fixture, result)
    try:
        keras = Problem.of(fixture).outputs()
    except Exception:  # noqa: BLE001 - a fixture the reference cannot compute: nothing to fit
        return None
    high = max((float(np.max(np.abs(v))) for k, v in keras["trace"].items() if k.rsplit("/", 1)[-1] == "c"),
               default=0.0)
    if not keys or not high > 0:
        return None

    def error(clip):
        wrong = _computed(_cell_clip_mistake(clip), fixture)
        return math.inf if wrong is None else _squared_error(result, wrong, keys)

    grid = np.linspace(high / CLIP_GRID, high, CLIP_GRID)
    errors = [error(c) for c in grid]
    best = int(np.argmin(errors))
    if errors[best] >= _squared_error(result, keras, keys) and best < CLIP_GRID - 1:
        return None   # no clip brings the outputs closer than Keras's: not worth refining (the failure is elsewhere)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, CLIP_GRID - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    left, right = b - ratio * (b - a), a + ratio * (b - a)
    e_left, e_right = error(left), error(right)
    for _ in range(CLIP_REFINE):
        if e_left <= e_right:
            b, right, e_right = right, left, e_left
            left = b - ratio * (b - a)
            e_left = error(left)
        else:
            a, left, e_left = left, right, e_right
            right = a + ratio * (b - a)
            e_right = error(right)
    return _cell_clip_mistake(float(left if e_left <= e_right else right))


def _cell_clip_mistake(clip: float) -> "Mistake":
    has_c = lambda p: any("c" in FAMILIES[layer].states for layer in _layers(p) if layer in FAMILIES)  # noqa: E731
    return Mistake("cell-clipped", "the cell state clipped to a bound at every step (TFLite's cell_clip; the bound "
                   "fitted to the port's outputs)", _override(has_c, cell=_cell_clipped(clip)), "lstm-saturated",
                   fit=_fit_clip)


def _config(change: dict):
    return lambda layer, config, inputs: ({**config, **change}, inputs)


def _gru_reset_after_flipped(layer, config, inputs):
    if layer == "GRU":
        config = {**config, "reset_after": not config.get("reset_after", True)}
    return config, inputs


def _drop_inputs(prefix: str):
    return lambda layer, config, inputs: (config, {k: v for k, v in inputs.items() if not k.startswith(prefix)})


def _h_c_swapped(layer, config, inputs, result):
    if layer == "LSTM":
        result = {**result, "state_h": result["state_c"], "state_c": result["state_h"]}
    return result


def _go_backwards_flipped_back(layer, config, inputs, result):
    if config.get("go_backwards") and config.get("return_sequences"):
        result = {**result, "output": result["output"][:, ::-1]}
    return result


def _go_backwards_last_after_flip_back(layer, config, inputs, result):
    """The sequence flipped back to input order, then its last step taken: the output after the FIRST processed
    step (input step T-1; zeros where that step is masked, since no output precedes it)."""
    if config.get("go_backwards") and not config.get("return_sequences"):
        first = result["trace"]["h"][:, 0]
        if inputs.get("mask") is not None:
            keep = np.asarray(inputs["mask"], bool)[:, -1].reshape((-1,) + (1,) * (first.ndim - 1))
            first = np.where(keep, first, 0.0)
        result = {**result, "output": first}
    return result


OUTPUT_MASK = "mask (output only)"   # where _mask_to_output_only keeps the mask the layer no longer reads


def _mask_to_output_only(layer, config, inputs):
    """The layer computes every step (the mask moved where ``forward`` does not read it, for ``_masked_output``)."""
    if "mask" in inputs:
        inputs = {**{k: v for k, v in inputs.items() if k != "mask"}, OUTPUT_MASK: inputs["mask"]}
    return config, inputs


def _masked_output(layer, config, inputs, result):
    """The outputs masked as Keras masks them, from every step's h (the trace: states never held)."""
    if OUTPUT_MASK not in inputs:
        return result
    h = result["trace"]["h"]                                  # (batch, steps, ...), in processing order
    mask = np.asarray(inputs[OUTPUT_MASK], bool)
    mask = mask[:, ::-1] if config.get("go_backwards") else mask
    previous, outputs = np.zeros_like(h[:, 0]), []
    for k in range(h.shape[1]):
        keep = mask[:, k].reshape((-1,) + (1,) * (h.ndim - 2))
        previous = np.where(keep, h[:, k], 0.0 if config.get("zero_output_for_mask") else previous)
        outputs.append(previous)
    return {**result, "output": np.stack(outputs, axis=1) if config.get("return_sequences") else outputs[-1]}


def _h0_at_leading_masked_steps(layer, config, inputs, result):
    """Leading masked steps (in processing order) output h0 where Keras outputs zeros."""
    h0, mask = inputs.get("initial_state_h"), inputs.get("mask")
    if h0 is None or mask is None or config.get("zero_output_for_mask"):
        return result
    mask = np.asarray(mask, bool)
    if config.get("go_backwards"):
        mask = mask[:, ::-1]
    leading = np.cumsum(mask, axis=1) == 0                  # (batch, steps): no step computed yet
    output = np.array(result["output"], copy=True)
    if config.get("return_sequences"):
        output = np.where(leading[..., None], np.asarray(h0, np.float64)[:, None, :], output)
    else:
        output = np.where(leading[:, -1:], h0, output)     # a fully masked row: h0 instead of zeros
    return {**result, "output": output}


def _halves_swapped(config, halves):
    return wrappers.merge_bidirectional(config, {"forward": halves["backward"], "backward": halves["forward"]})


def _backward_not_reversed(config, halves):
    backward = dict(halves["backward"])
    if config.get("return_sequences"):
        backward["output"] = backward["output"][:, ::-1]  # undone by the merge's own flip: left in processing order
    return wrappers.merge_bidirectional(config, {**halves, "backward": backward})


def _layers(problem) -> set:
    """Recurrent layer classes inside the fixture (through wrappers)."""
    return wrappers.wrapped_layers(problem.layer, problem.config)


def _configs(problem):
    return wrappers.layer_configs(problem.layer, problem.config)


def _masked(problem):
    return "mask" in problem.inputs and not np.all(problem.inputs["mask"])


def _has_initial_state(problem):
    return any("initial_state" in k for k in problem.inputs)


# -- ConvLSTM: kernel layouts, the recurrent convolution, "same" padding -------------------------------

def _conv_kernels(read: Callable[[np.ndarray], np.ndarray]):
    """Every convolution kernel (ndim >= 3: (*kernel_size, in, 4*filters)) read by the port as ``read`` does."""
    def change(name, value):
        if name.rsplit("/", 1)[-1] in ("kernel", "recurrent_kernel") and value.ndim >= 3:
            return read(value)
        return None
    return lambda p: _weights(p, change)


def _read_oihw(value):
    """Keras's (*k, in, out) bytes taken as PyTorch's Conv weight (out, in, *k), then arranged back as (*k, in, out)."""
    *sizes, n_in, n_out = value.shape
    return value.reshape(n_out, n_in, *sizes).transpose(*range(2, 2 + len(sizes)), 1, 0)


def _read_hwoi(value):
    """Keras's (*k, in, out) bytes taken as (*k, out, in): the gate blocks cut along the input-channel axis."""
    *sizes, n_in, n_out = value.shape
    return value.reshape(*sizes, n_out, n_in).swapaxes(-1, -2)


def _recurrent_valid_padded_back(h, kernel, config, conv=conv_lstm.convolve):
    """The recurrent convolution 'valid' (no zeros around h), its smaller result zero-padded back to h's size."""
    rank = kernel.ndim - 2
    sizes, out_shape = kernel.shape[:rank], h.shape[:-1] + kernel.shape[-1:]
    if any(n < k for n, k in zip(h.shape[1:1 + rank], sizes)):
        return np.zeros(out_shape)  # no valid position at all: nothing but the zeros padded back
    out = conv(h, kernel, (1,) * rank, "valid", (1,) * rank)
    pads = [conv_lstm.same_padding(n, k, 1, 1) for n, k in zip(h.shape[1:1 + rank], sizes)]
    return np.pad(out, [(0, 0), *pads, (0, 0)])


def _recurrent_dilated(h, kernel, config, conv=conv_lstm.convolve):
    """The recurrent convolution given the layer's dilation_rate (Keras's is never dilated)."""
    rank = kernel.ndim - 2
    return conv(h, kernel, (1,) * rank, "same", conv_lstm.as_tuple(config.get("dilation_rate", 1), rank))


def _conv_cell(**pieces):
    """Overrides.cell: ConvLSTM layers with these convolutions, every other family as Keras computes it."""
    return lambda fam: conv_lstm.make_cell(**pieces) if isinstance(fam, conv_lstm.ConvLSTMFamily) else fam.cell


def _conv_configs(problem) -> list:
    return [c for layer, c in zip(_sublayers(problem), _configs(problem))
            if isinstance(FAMILIES.get(layer), conv_lstm.ConvLSTMFamily)]


def _sublayers(problem) -> list[str]:
    """The layer class of each config ``_configs`` lists (Bidirectional: the wrapped one)."""
    if problem.layer == "Stacked":
        return [sub["layer"] for sub in problem.config["layers"]]
    return [problem.config["wrapped"] if problem.layer == "Bidirectional" else problem.layer]


def _dilated(problem) -> bool:
    return any(max(np.atleast_1d(c.get("dilation_rate", 1))) > 1 for c in _conv_configs(problem))


def _even_kernel(problem) -> bool:
    """Some "same" convolution pads an odd number of zeros: every recurrent one with an even kernel size."""
    return any(int(k) % 2 == 0 for c in _conv_configs(problem) for k in np.atleast_1d(c.get("kernel_size", 1)))


def _stateful_not_carried(problem):
    if not problem.calls or len(problem.calls["steps"]) < 2:
        return None
    return dataclasses.replace(problem, calls={**problem.calls, "reset_before": list(range(len(problem.calls["steps"])))})


def _states_advanced_twice(problem):
    """Each call of a stateful layer run over its chunk twice: the outputs are the first pass's, the returned (and
    carried) states the second pass's, which starts from the first pass's final states."""
    calls = problem.calls
    if not calls or not calls.get("steps"):
        return None
    steps = [int(n) for n in calls["steps"]]
    chunks = wrappers.split_calls(problem.inputs, calls)
    inputs = dict(problem.inputs)
    for name in ("x", "mask"):
        if name in inputs:
            inputs[name] = np.concatenate([c[name] for c in chunks for _ in range(2)], axis=1)
    doubled = {**calls, "steps": [n for n in steps for _ in range(2)],
               "reset_before": [2 * k for k in calls.get("reset_before", ())]}

    def post(result):
        """Call k: outputs and trace from pass 2k, states from pass 2k + 1."""
        out, trace = {}, {}
        for k in range(len(steps)):
            call, first, second = (wrappers.call_prefix(n) for n in (k, 2 * k, 2 * k + 1))
            for name, value in wrappers.sub_mapping(result, first).items():
                if not name.startswith("state_"):
                    out[wrappers.join(call, name)] = value
            for name, value in wrappers.sub_mapping(result, second).items():
                if name.startswith("state_"):
                    out[wrappers.join(call, name)] = value
            first_pass = wrappers.sub_mapping(result.get("trace", {}), first)
            trace.update({wrappers.join(call, name): value for name, value in first_pass.items()})
        out["trace"] = trace
        return out
    return dataclasses.replace(problem, inputs=inputs, calls=doubled).posted(post)


# -- reduced precision: every tensor of the computation stored in bfloat16 or float16 -------------------

def _rounded_cell(rnd: Callable):
    """Overrides.cell: every tensor a step reads or makes rounded (x, states, pre-activations, gates, new states);
    the matmuls accumulate in float64, as bfloat16 and float16 hardware accumulates in float32."""
    def through(act):
        return None if act is None else (lambda v: rnd(act(rnd(v))))

    def override(fam):
        def cell(x, states, w, act, rec_act, config):
            values, new = fam.cell(rnd(x), tuple(rnd(s) for s in states), w, through(act), through(rec_act), config)
            return {k: rnd(v) for k, v in values.items()}, tuple(rnd(s) for s in new)
        return cell
    return override


def _reduced_precision(precision: Precision):
    """The whole computation in ``precision``: weights and inputs rounded once, every step as ``_rounded_cell``,
    every returned array rounded."""
    rnd = precision.round

    def after(layer, config, inputs, result):
        return {k: (v if k == "trace" else rnd(v)) for k, v in result.items()}

    def transform(problem):
        weights = {k: rnd(v) for k, v in problem.weights.items()}
        inputs = {k: (v if k == "mask" or np.asarray(v).dtype.kind == "i" else rnd(v))  # a Model's token ids stay
                  for k, v in problem.inputs.items()}
        return dataclasses.replace(problem, weights=weights, inputs=inputs).overridden(
            cell=_rounded_cell(rnd), after_layer=after)
    return transform


def _build() -> list[Mistake]:
    mistakes = []
    for order in itertools.permutations(LSTM_ORDER):
        if order == LSTM_ORDER:
            continue  # PyTorch's i, f, g, o is this order: no mistake
        label = ",".join(order)
        named = NAMED_LSTM_ORDERS.get(order)
        mistakes.append(Mistake(
            f"lstm-gate-order-{''.join(order)}",
            f"LSTM gate order {label}" + (f" — {named}" if named else "") + " instead of Keras's i,f,c,o",
            lambda p, order=order: _map_gates(p, LSTM_ORDER, order), "lstm-large-bias"))
    has = lambda layer: (lambda p: layer in _layers(p))  # noqa: E731
    option = lambda key: (lambda p: any(c.get(key) for c in _configs(p)))  # noqa: E731
    mistakes += [
        Mistake("gru-gate-order-rzh", "GRU gate order r,z,h — PyTorch's r,z,n — instead of Keras's z,r,h",
                lambda p: _map_gates(p, GRU_ORDER, ("r", "z", "h")), "gru-reset-after-large-bias"),
        Mistake("kernel-transposed", "the kernels read transposed (memory layout (4u, n) taken as (n, 4u))",
                lambda p: _weights(p, _transposed), "lstm-units3-features2-batch3"),
        Mistake("bias-ignored", "the bias ignored", lambda p: _weights(p, _no_bias), "lstm-large-bias"),
        Mistake("forget-bias-twice", "the forget-gate bias of 1 added a second time (as TF1's forget_bias=1.0 does)",
                _forget_bias_twice, "lstm-seed-question"),
        Mistake("hard-sigmoid-keras2", "hard_sigmoid as Keras 2 computes it, clip(0.2x + 0.5, 0, 1)",
                _hard_sigmoid_slope(0.2), "lstm-hard-sigmoid-keras3"),
        Mistake("hard-sigmoid-keras3", "hard_sigmoid as Keras 3 computes it, clip(x/6 + 0.5, 0, 1)",
                _hard_sigmoid_slope(1 / 6), "lstm-hard-sigmoid-keras2"),
        Mistake("sigmoid-for-hard-sigmoid", "the logistic sigmoid where the layer uses hard_sigmoid",
                _sigmoid_for_hard_sigmoid, "lstm-hard-sigmoid-keras3"),
        Mistake("go-backwards-flipped-back", "the go_backwards output sequence flipped back to input order "
                "(Keras returns it in processing order)",
                _override(lambda p: option("go_backwards")(p) and option("return_sequences")(p),
                          after_layer=_go_backwards_flipped_back),
                "lstm-go-backwards-sequences"),
        Mistake("go-backwards-last-after-flip-back", "the go_backwards last output taken after flipping the "
                "sequence back to input order: the output of the first step processed, input step T-1 (Keras "
                "returns the last processed, input step 0)",
                _override(lambda p: any(c.get("go_backwards") and not c.get("return_sequences") for c in _configs(p)),
                          after_layer=_go_backwards_last_after_flip_back),
                "lstm-go-backwards"),
        Mistake("go-backwards-ignored", "go_backwards ignored (the sequence processed forwards)",
                _override(option("go_backwards"), before_layer=_config({"go_backwards": False})), "lstm-go-backwards"),
        Mistake("masked-output-zeros", "zeros output at masked steps instead of the previous output",
                _override(lambda p: _masked(p) and not any(c.get("zero_output_for_mask") for c in _configs(p)),
                          before_layer=_config({"zero_output_for_mask": True})),
                "lstm-mask-middle"),
        Mistake("masked-output-h0", "h0 output at leading masked steps (Keras outputs zeros there; in a stateful "
                "call, h0 is the state carried from the previous call)",
                _override(lambda p: _masked(p) and (_has_initial_state(p) or bool(p.calls)),
                          after_layer=_h0_at_leading_masked_steps),
                "lstm-mask-leading-initial-state"),
        _cell_clip_mistake(CELL_CLIP),
        Mistake("mask-output-only", "the mask applied to the output only: masked steps repeat the previous "
                "output but still advance the states (Keras holds h and c there)",
                _override(_masked, before_layer=_mask_to_output_only, after_layer=_masked_output),
                "lstm-mask-middle"),
        Mistake("mask-ignored", "the mask ignored", _override(_masked, before_layer=_drop_inputs("mask")), "lstm-mask-trailing"),
        Mistake("initial-state-ignored", "the initial state ignored (zeros used)",
                _override(_has_initial_state, before_layer=_drop_inputs("initial_state_")), "lstm-initial-state"),
        Mistake("h-c-swapped", "the final states h and c exchanged",
                _override(has("LSTM"), after_layer=_h_c_swapped), "lstm-return-state"),
        Mistake("cell-tanh-omitted", "h = o * c, without the activation applied to the cell state",
                _override(has("LSTM"), cell=_lstm_without_cell_tanh), "lstm-basic"),
        Mistake("gru-reset-after-mixed-up", "the GRU reset gate applied on the wrong side of the recurrent "
                "matmul (reset_after formula mixed up)", _override(has("GRU"), before_layer=_gru_reset_after_flipped),
                "gru-reset-after-return-sequences"),
        Mistake("gru-interpolation-swapped", "h = (1-z)*h_prev + z*hh (z and 1-z swapped; Keras: z*h_prev + (1-z)*hh)",
                _override(has("GRU"), cell=_gru_interpolation_swapped), "gru-reset-after-basic"),
        Mistake("gru-bias-rows-swapped", "the two GRU bias rows exchanged (Keras: [input; recurrent])",
                _gru_bias_rows_swapped, "gru-reset-after-large-bias"),
        Mistake("bidirectional-halves-swapped", "the forward and backward halves of Bidirectional exchanged",
                _override(lambda p: p.layer == "Bidirectional", merge=_halves_swapped),
                "bidirectional-lstm-concat-sequences"),
        Mistake("bidirectional-mask-not-zeroed", "Bidirectional's masked steps not zeroed: each half repeats its "
                "previous output there (Keras sets zero_output_for_mask = return_sequences on both halves)",
                _override(lambda p: p.layer == "Bidirectional" and _masked(p) and bool(p.config.get("return_sequences")),
                          before_layer=_config({"zero_output_for_mask": False})),
                "bidirectional-lstm-mask-sequences"),
        Mistake("bidirectional-backward-not-reversed", "the Bidirectional backward sequence left in processing "
                "order (Keras flips it back to time order)",
                _override(lambda p: p.layer == "Bidirectional" and p.config.get("return_sequences"),
                          merge=_backward_not_reversed),
                "bidirectional-lstm-sum-sequences"),
        Mistake("stateful-state-not-carried", "the state reset between calls of a stateful layer",
                _stateful_not_carried, "stateful-lstm-three-calls"),
        Mistake("states-advanced-twice", "the states of a stateful layer advanced twice per call (each call's "
                "chunk run a second time from the states it ended with; those states returned and carried)",
                _states_advanced_twice, "stateful-lstm-three-calls"),
        Mistake("conv-lstm-kernel-oihw", "the ConvLSTM kernels read in PyTorch's Conv layout (out, in, *kernel_size) "
                "instead of Keras's (*kernel_size, in, 4*filters)", _conv_kernels(_read_oihw), "conv-lstm2d-basic"),
        Mistake("conv-lstm-gate-axis", "the ConvLSTM kernels read as (*kernel_size, 4*filters, in): the gate blocks "
                "cut along what is Keras's input-channel axis, not its last axis", _conv_kernels(_read_hwoi),
                "conv-lstm1d-basic"),
        Mistake("conv-lstm-recurrent-valid", "the ConvLSTM recurrent convolution with padding 'valid' and its result "
                "zero-padded back (Keras pads h: its recurrent convolution is always 'same', strides 1)",
                _override(lambda p: bool(_conv_configs(p)), cell=_conv_cell(recurrent=_recurrent_valid_padded_back)),
                "conv-lstm2d-same-sequences"),
        Mistake("conv-lstm-recurrent-dilated", "the ConvLSTM recurrent convolution dilated like the input convolution "
                "(Keras's recurrent convolution has no dilation)",
                _override(_dilated, cell=_conv_cell(recurrent=_recurrent_dilated)), "conv-lstm2d-dilation2"),
        Mistake("conv-lstm-same-padding-before", "'same' padding with the odd zero of an even kernel before the data "
                "(TensorFlow and XLA put it after)",
                _override(_even_kernel, cell=_conv_cell(conv=functools.partial(conv_lstm.convolve, extra_before=True))),
                "conv-lstm1d-same-even-kernel"),
    ]
    # last: composed with another mistake (diagnosis tries pairs in catalogue order), the rounding wraps it
    mistakes += [Mistake(f"reduced-precision-{p.short}",
                         f"every tensor rounded to {p.name} (weights, inputs, each step's pre-activations, gates "
                         f"and states): a runtime computing in {p.name}", _reduced_precision(p), "lstm-basic")
                 for p in PRECISIONS]
    return mistakes


CATALOGUE: list[Mistake] = _build()
BY_KEY = {m.key: m for m in CATALOGUE}
PRECISION_MISTAKES = [BY_KEY[f"reduced-precision-{p.short}"] for p in PRECISIONS]
