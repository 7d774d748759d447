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

from . import reference, wrappers
from .compare import close
from .families import FAMILIES, conv_lstm
from .records import Diagnosis
from .reference import Overrides
from .tolerance import port_dtype

LSTM_ORDER = FAMILIES["LSTM"].gates
GRU_ORDER = FAMILIES["GRU"].gates
NAMED_LSTM_ORDERS = {
    ("i", "o", "f", "c"): "the ONNX order",
    ("i", "c", "f", "o"): "TensorFlow 1's LSTMCell order (i, j, f, o)",
    ("i", "f", "o", "c"): "the Caffe order (i, f, o, g)",
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """What the reference computes, in the form ``reference.compute`` takes."""
    layer: str
    config: Mapping
    weights: Mapping
    gates: Mapping
    activations: Mapping
    inputs: Mapping
    calls: Mapping | None
    overrides: Overrides = reference.KERAS
    post: Callable[[dict], dict] | None = None   # the port's result made from what the reference computed

    @classmethod
    def of(cls, fixture) -> "Problem":
        return cls(fixture.layer, fixture.config, dict(fixture.weights), fixture.gates, fixture.activations,
                   dict(fixture.inputs), fixture.meta.get("calls"))

    def outputs(self) -> dict:
        result = reference.compute(self.layer, self.config, self.weights, self.gates, self.activations,
                                   self.inputs, self.overrides, self.calls)
        return result if self.post is None else self.post(result)

    def overridden(self, **pieces) -> "Problem":
        """This problem with ``pieces`` of ``Overrides`` applied after the ones it already has (a second mistake
        composes with the first: cells wrap, layer hooks run in turn; two different merges do not compose)."""
        return dataclasses.replace(self, overrides=chain(self.overrides, Overrides(**pieces)))

    def posted(self, post: Callable[[dict], dict]) -> "Problem":
        """This problem with ``post`` applied to the result after any ``post`` it already has."""
        first = self.post
        return dataclasses.replace(self, post=post if first is None else (lambda result: post(first(result))))


class NotComposable(Exception):
    """Two mistakes that replace the same piece (two Bidirectional merges): their pair is not evaluated."""


def chain(first: Overrides, second: Overrides) -> Overrides:
    """``first``'s overrides, then ``second``'s: ``second``'s cell wraps the cell ``first`` makes, and layer hooks
    run first's then second's."""
    def then(a, b, both):
        return b if a is None else a if b is None else both
    cell = then(first.cell, second.cell,
                lambda fam: second.cell(dataclasses.replace(fam, cell=first.cell(fam))))
    before = then(first.before_layer, second.before_layer,
                  lambda layer, config, inputs: second.before_layer(layer, *first.before_layer(layer, config, inputs)))
    after = then(first.after_layer, second.after_layer,
                 lambda layer, config, inputs, result: second.after_layer(
                     layer, config, inputs, first.after_layer(layer, config, inputs, result)))
    if first.merge is not None and second.merge is not None:
        raise NotComposable("two Bidirectional merges")
    return Overrides(cell=cell, before_layer=before, after_layer=after, merge=first.merge or second.merge)


@dataclasses.dataclass(frozen=True)
class Mistake:
    key: str
    description: str                            # completes "matches the reference computed with ..."
    transform: Callable[[Problem], Problem | None]  # None: the mistake does not apply to this fixture
    fixture: str                                # the gallery fixture tagged to catch it
    # the same mistake with its parameter read from the port's result (None: it has no parameter, or the result
    # does not show one); the diagnosis recomputes it so, the catalogue's own port uses ``transform``
    fit: Callable[[object, Mapping], "Mistake | None"] | None = None    # (fixture, result) -> the fitted mistake

    def outputs(self, fixture) -> dict | None:
        problem = self.transform(Problem.of(fixture))
        return None if problem is None else problem.outputs()

    def fitted(self, fixture, result: Mapping | None) -> "Mistake":
        found = None if self.fit is None or result is None else self.fit(fixture, result)
        return found or self


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
            for name, value in wrappers.sub_mapping(result, f"calls/{2 * k}").items():
                if not name.startswith("state_"):
                    out[f"calls/{k}/{name}"] = value
            for name, value in wrappers.sub_mapping(result, f"calls/{2 * k + 1}").items():
                if name.startswith("state_"):
                    out[f"calls/{k}/{name}"] = value
            first_pass = wrappers.sub_mapping(result.get("trace", {}), f"calls/{2 * k}")
            trace.update({f"calls/{k}/{name}": value for name, value in first_pass.items()})
        out["trace"] = trace
        return out
    return dataclasses.replace(problem, inputs=inputs, calls=doubled).posted(post)


# -- reduced precision: every tensor of the computation stored in bfloat16 or float16 -------------------

def round_bfloat16(a) -> np.ndarray:
    """``a`` rounded to bfloat16 (round to nearest, ties to even, on the upper 16 bits of float32), as float64."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def round_float16(a) -> np.ndarray:
    """``a`` rounded to IEEE float16 (numpy's, round to nearest even), as float64."""
    return np.asarray(a, np.float64).astype(np.float16).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Precision:
    name: str                     # as numpy and the runtimes spell it
    short: str                    # bf16, f16
    unit_roundoff: float          # 2**-(significand bits): the largest relative error of one rounding
    round: Callable[[np.ndarray], np.ndarray]


PRECISIONS = (Precision("bfloat16", "bf16", 2.0 ** -8, round_bfloat16),
              Precision("float16", "f16", 2.0 ** -11, round_float16))


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
        inputs = {k: (v if k == "mask" else rnd(v)) for k, v in problem.inputs.items()}
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


# -- diagnosis -----------------------------------------------------------------------------------------
#
# Run only on a failure. In turn, stopping at the first that explains the failure (exact before statistical):
#   1. one catalogued mistake reproduced within tolerance (``matching``);
#   2. returned outputs that hold what was expected for other outputs of the same shape (``permuted``);
#   3. two catalogued mistakes at once reproduced within tolerance (``exact_pairs``; a precision mistake counts);
#   4. an error spread over every element at the size of rounding to bfloat16 or float16 (``precision``);
#   5. one catalogued mistake up to the error of reduced precision (``rounded_single``: a real runtime in bfloat16
#      that also makes the mistake);
#   6. else the catalogued mistake closest to the result, when it explains at least half of the squared error
#      (``closest``).

EXPLAINED_SHARE = 0.5   # the closest mistake is named only when it removes at least this share of the squared error
ROUNDING_LEFT = 0.9     # a mistake named "in reduced precision" removes at least this share of the squared error
MAX_PAIRS = 200         # pairs of mistakes composed at most, per failure (worst case over the gallery: 0.4 s of CPU)


def _checked(fixture, result: Mapping) -> list[str]:
    """The expected outputs the result holds, as arrays of the expected shape (a partial port returns only some)."""
    return [k for k, v in fixture.expected.items()
            if isinstance(result.get(k), np.ndarray) and result[k].shape == np.shape(v)]


def _agrees(fixture, result: Mapping, wanted: Mapping, keys) -> bool:
    return all(np.shape(wanted.get(k)) == result[k].shape and close(result[k], wanted[k], fixture.tolerance).all()
               for k in keys)


def _computed(mistake_or_problem, fixture) -> dict | None:
    """A mistake's outputs on this fixture; None where it does not apply or cannot be computed here."""
    try:
        wrong = mistake_or_problem.outputs(fixture)
    except Exception:  # noqa: BLE001 - a mistake that cannot be computed here simply does not match
        return None
    return None if wrong is None else {k: v for k, v in wrong.items() if k != "trace"}


def _singles(fixture, keys, result: Mapping | None = None) -> dict[str, dict]:
    """Every catalogued mistake that applies and is distinguishable from Keras on ``keys``: key -> outputs (a
    mistake with a parameter, fitted to ``result``)."""
    out = {}
    for mistake in CATALOGUE:
        wrong = _computed(mistake.fitted(fixture, result), fixture)
        if wrong is not None and not _agrees(fixture, wrong, fixture.expected, keys):
            out[mistake.key] = wrong
    return out


def matching(fixture, result: Mapping, singles: Mapping[str, dict] | None = None) -> list[Mistake]:
    """Every catalogued mistake whose outputs the returned ``result`` reproduces within tolerance (on the outputs
    it returned)."""
    keys = _checked(fixture, result)
    if not keys:
        return []
    singles = _singles(fixture, keys, result) if singles is None else singles
    return [BY_KEY[key] for key, wrong in singles.items() if _agrees(fixture, result, wrong, keys)]


def permuted(fixture, result: Mapping) -> list[str]:
    """``output 'X' holds what was expected for 'Y'``, for every returned output that is wrong where it is but
    agrees with another expected output of the same shape (a runtime that orders its outputs differently)."""
    lines = []
    for name in _checked(fixture, result):
        got = result[name]
        if close(got, fixture.expected[name], fixture.tolerance).all():
            continue
        others = [k for k, v in fixture.expected.items()
                  if k != name and np.shape(v) == got.shape and close(got, v, fixture.tolerance).all()]
        if others:
            also = (f" (equally {', '.join(map(repr, others[1:]))}, equal to it on this fixture)"
                    if len(others) > 1 else "")
            lines.append(f"output {name!r} holds what was expected for {others[0]!r}{also}")
    return lines


# Reduced precision. Errors are measured at each output's own scale: |got - want| / max(|want|, s), where s is
# the median magnitude of that output's non-zero expected values (an element near zero is judged by the absolute
# error the output's typical values would have); each distinct (expected, returned) pair of values counts once (a
# final state that is also the output is one element), and at least MIN_ELEMENTS are needed to judge anything.
# An error is consistent with computing in precision P when
#   (a) spread: at least SPREAD of the elements P cannot hold exactly (non-zero expected values whose rounding to P
#       moves them by more than float32 arithmetic would: FLOAT32_NOISE, four float32 roundings) are off by more
#       than FLOAT32_NOISE;
#   (b) as large as P: at least REACHED of them are off by at least their own rounding error to P (the result of a
#       computation carried out in P is no closer to the exact value than the nearest P number, but where a last
#       operation ran wider; a computation in a finer precision leaves most elements closer than that);
#   (c) no larger than P explains: no element is off by more than WITHIN * P's unit roundoff (4 bits lost to
#       accumulation; computing every gallery fixture with each step rounded to P, to nearest, stays below 15);
#   (d) not one-sided: it is not so that at most BALANCE (or at least 1 - BALANCE) of the elements in error err away
#       from zero and that chance does not explain it (two-sided binomial p < CHANCE for errors either way with even
#       odds). Rounding to nearest errs both ways; a scaling, an offset or a one-sided mistake errs one way; so does
#       rounding toward zero, which is not claimed.
# The coarsest consistent precision is named (a finer one would have erred less); none when the error is
# concentrated (some elements exact: (a)), somewhere far off ((c)) or one-sided ((d)). Over the gallery, these name
# the precision of 98% of runs emulated in bfloat16 or float16 (rounding every step, only the outputs, or all but
# the pre-activations), never float16 for a bfloat16 run nor bfloat16 for a float16 one; for outputs scaled by
# 0.98, 1.003, 1.01, 1.02 or 1.05 they claim something once in 625 (float16, for 1.003 on a 16-value fixture);
# they claim bfloat16 for 0.4% of the catalogued mistakes (each a mistake whose effect on that fixture is a few
# percent, bfloat16's own size) and float16 for none.
SPREAD, REACHED, WITHIN, BALANCE, CHANCE, FLOAT32_NOISE = 0.9, 0.75, 16, 0.1, 0.01, 2.0 ** -21
MIN_ELEMENTS = 8        # distinct non-zero expected elements: fewer cannot show how an error is distributed


def _one_sided(k: int, n: int) -> bool:
    """``k`` of ``n`` errors away from zero is one-sided: outside [BALANCE, 1 - BALANCE], and beyond chance."""
    fewer = min(k, n - k)
    if n == 0 or fewer >= BALANCE * n:
        return False
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(fewer + 1))
    return 2 * tail < CHANCE


def precision(result: Mapping, want: Mapping, keys) -> tuple[Precision, float, bool] | None:
    """The precision whose rounding error the result's error against ``want`` (float64) is consistent with, the
    median relative error, and whether every returned value is exactly a number of that precision; or None."""
    wants, gots, scales = [], [], []
    for k in keys:
        w = np.asarray(want[k], np.float64).ravel()
        if np.any(w):
            wants.append(w)
            gots.append(np.asarray(result[k], np.float64).ravel())
            scales.append(np.maximum(np.abs(w), np.median(np.abs(w[w != 0]))))
    if not wants:
        return None
    # each distinct (expected, returned) element once: a final state returned also as the output is one element
    w, g, scale = np.unique(np.stack([np.concatenate(wants), np.concatenate(gots), np.concatenate(scales)]), axis=1)
    if np.count_nonzero(w) < MIN_ELEMENTS:
        return None
    error = np.abs(g - w) / scale
    for p in PRECISIONS:
        rounding = np.abs(p.round(w) - w) / scale
        seen = (w != 0) & (rounding > FLOAT32_NOISE)   # elements P cannot hold exactly: there an error must show
        off = seen & (error > FLOAT32_NOISE)
        if not off.any() or np.mean(off[seen]) < SPREAD or np.mean(error[seen] >= rounding[seen]) < REACHED:
            continue
        away = int(np.sum((g - w)[off] * np.sign(w[off]) > 0))
        if error.max() <= WITHIN * p.unit_roundoff and not _one_sided(away, int(off.sum())):
            return p, float(np.median(error[seen])), bool(np.all(p.round(g) == g))
    return None


def _precision_words(found, numbers: bool = True) -> str:
    """``precision()``'s finding in words; ``numbers=False``: without this case's own numbers (a cause)."""
    p, median, representable = found
    text = f"consistent with computing in {p.name}"
    if numbers:
        text += f" (median rel error {median:.2g}; {p.short} unit roundoff {p.unit_roundoff:.2g})"
    if p.name == "float16":
        text += (" or with TensorFloat-32 matmuls (as many significand bits), or with bfloat16 matmul operands "
                 "and float32 elsewhere (e.g. OpenVINO's CPU default on bfloat16 hardware)")
    return text + ("; every returned value is exactly a " + p.name + " number" if representable and numbers else "")


def _in_precision(found, line: str | None = None, cause: str | None = None, **named) -> Diagnosis:
    """The diagnosis naming a precision (``found``: ``precision()``'s answer), by itself or after a mistake."""
    p, median, _ = found
    return Diagnosis((line or _precision_words(found),), cause or _precision_words(found, numbers=False),
                     precision=p.name, median_rel_error=median, **named)


def _squared_error(result: Mapping, want: Mapping, keys) -> float:
    return float(sum(np.sum((np.asarray(result[k], np.float64) - np.asarray(want[k], np.float64)) ** 2)
                     for k in keys))


def _pair(first: Mistake, second: Mistake) -> Mistake:
    """``first`` then ``second`` on one problem (its outputs: None where either does not apply; NotComposable
    raised where they replace the same piece)."""
    def transform(problem):
        changed = first.transform(problem)
        return None if changed is None else second.transform(changed)
    return Mistake(f"{first.key}+{second.key}", f"{first.description}, and {second.description}", transform, "")


def _shares(result: Mapping, keys, singles: Mapping[str, dict], want: Mapping) -> dict[str, float]:
    """The share of the squared error against Keras (``want``) each single mistake removes (negative: adds)."""
    baseline = _squared_error(result, want, keys)
    if baseline == 0:
        return {key: 0.0 for key in singles}
    return {key: 1 - _squared_error(result, wrong, keys) / baseline for key, wrong in singles.items()}


def exact_pairs(fixture, result: Mapping, keys, singles: Mapping[str, dict], want: Mapping) -> Diagnosis | None:
    """Two catalogued mistakes at once, reproduced within tolerance. Tried: pairs of applicable mistakes (composed
    in catalogue order, the rounding of a precision mistake last) one of which by itself brings the outputs closer
    to the result (a smaller squared error than Keras's; a pair neither of whose halves does is no suspect), the
    most promising first (by the share of the squared error the better half removes, then the other), at most
    MAX_PAIRS, stopping at the first match. Two precision mistakes are no pair."""
    share = _shares(result, keys, singles, want)
    order = [m.fitted(fixture, result) for m in CATALOGUE if m.key in singles]
    suspects = sorted(((first, second) for a, first in enumerate(order) for second in order[a + 1:]
                       if max(share[first.key], share[second.key]) > 0
                       and not (first in PRECISION_MISTAKES and second in PRECISION_MISTAKES)),
                      key=lambda pair: (-max(share[m.key] for m in pair), -min(share[m.key] for m in pair)))
    for first, second in suspects[:MAX_PAIRS]:
        wrong = _computed(_pair(first, second), fixture)   # None too where they do not compose
        if wrong is not None and _agrees(fixture, result, wrong, keys):
            text = (f"matches the reference computed with two mistakes at once: {first.description} "
                    f"[mistake {first.key}]; and {second.description} [mistake {second.key}]")
            return Diagnosis((text,), text, mistake=f"{first.key}+{second.key}")
    return None


def rounded_single(result: Mapping, keys, singles: Mapping[str, dict], want: Mapping) -> Diagnosis | None:
    """A catalogued mistake made in reduced precision by a real runtime, which no emulation reproduces bit for bit:
    the first single mistake whose outputs the result matches up to the error of reduced precision (``precision``),
    among those that remove at least ROUNDING_LEFT of the squared error (what is left is rounding) and differ from
    Keras by more than rounding would."""
    share = _shares(result, keys, singles, want)
    for key, wrong in singles.items():
        if BY_KEY[key] in PRECISION_MISTAKES or share[key] < ROUNDING_LEFT or precision(wrong, want, keys):
            continue  # a mistake that differs from Keras like rounding does cannot be told apart from it so
        found = precision(result, wrong, keys)
        if found is not None:
            said = (f"matches the reference computed with {BY_KEY[key].description} [mistake {key}], "
                    "in reduced precision: ")
            return _in_precision(found, said + _precision_words(found), said + _precision_words(found, numbers=False),
                                 mistake=key)
    return None


def closest(result: Mapping, keys, singles: Mapping[str, dict], want: Mapping) -> Diagnosis | None:
    """The catalogued mistake whose outputs are nearest the result, when it removes at least EXPLAINED_SHARE of
    the squared error against Keras."""
    baseline = _squared_error(result, want, keys)
    if not singles or baseline == 0:
        return None
    key, error = min(((k, _squared_error(result, w, keys)) for k, w in singles.items()), key=lambda kv: kv[1])
    share = 1 - error / baseline
    if share < EXPLAINED_SHARE:
        return None
    left = max(float(np.max(np.abs(np.asarray(result[k], np.float64) - singles[key][k]))) for k in keys)
    cause = f"closest catalogued mistake: {BY_KEY[key].description} [mistake {key}]"
    return Diagnosis((f"{cause}: it explains {share:.0%} of the squared error (max abs error left {left:.3g})",),
                     cause, mistake=key, explained=share, residual=left)


def _reference(fixture) -> dict:
    """Keras's outputs from the reference in float64 (the fixture's stored float32 values where it cannot)."""
    try:
        return Problem.of(fixture).outputs()
    except Exception:  # noqa: BLE001 - e.g. an activation the reference does not implement
        return {k: np.asarray(v, np.float64) for k, v in fixture.expected.items()}


SEARCH_LIMIT = 50_000   # step-values (batch x steps x units) above which diagnosis searches no mistake


def step_values(fixture) -> int:
    """batch x steps x the widest output's last axis: what one reference run of the fixture computes, roughly."""
    x = np.shape(fixture.inputs["x"])
    return int(x[0] * x[1] * max(np.shape(v)[-1] for v in fixture.expected.values()))


def diagnosis(fixture, result: Mapping) -> Diagnosis | None:
    """What explains the failure, as structure (``records.Diagnosis``: the mistake, precision or other finding,
    and each finding in words); None when the returned outputs agree with the fixture (nothing to diagnose)."""
    keys = _checked(fixture, result)
    if not keys or _agrees(fixture, result, fixture.expected, keys):
        return None
    work = step_values(fixture)
    if work > SEARCH_LIMIT:  # the scale family: each catalogued mistake is a whole reference run
        found = precision(result, _reference(fixture), keys)
        skipped = (f"catalogued mistakes not searched: this fixture is large ({work:,} step-values; each of "
                   f"the {len(CATALOGUE)} mistakes, and their pairs, is a whole run of it); the small "
                   "fixtures of the same layer show the same mistakes")
        if found is None:
            return Diagnosis((skipped,))
        named = _in_precision(found)
        return dataclasses.replace(named, findings=(skipped, *named.findings))
    singles = _singles(fixture, keys, result)
    found = matching(fixture, result, singles)
    if found:
        text = f"matches the reference computed with {found[0].description}"
        if len(found) > 1:
            text += " (equally consistent with: " + "; ".join(m.description for m in found[1:]) + ")"
        text += f" [mistake {found[0].key}]"
        return Diagnosis((text,), text, mistake=found[0].key, also=tuple(m.key for m in found[1:]))
    lines = ["no single catalogued mistake matches"]
    moved = permuted(fixture, result)
    lines += moved
    wrong = [k for k in keys if not close(result[k], fixture.expected[k], fixture.tolerance).all()]
    if len(moved) == len(wrong):
        return Diagnosis(tuple(lines), moved[0] if moved else None)
    want = _reference(fixture)
    explained = (exact_pairs(fixture, result, keys, singles, want)
                 or next((_in_precision(p) for p in [precision(result, want, keys)] if p), None)
                 or rounded_single(result, keys, singles, want)
                 or closest(result, keys, singles, want))
    if explained is None:
        return Diagnosis(tuple(lines), moved[0] if moved else None)
    return dataclasses.replace(explained, findings=(*lines, *explained.findings),
                               cause=moved[0] if moved else explained.cause)


def diagnose(fixture, result: Mapping) -> str | None:
    """``diagnosis`` in words, one line per finding (``compare`` prefixes each with ``diagnosis:``); None when
    the returned outputs agree with the fixture."""
    found = diagnosis(fixture, result)
    return None if found is None else "\n".join(found.findings)
