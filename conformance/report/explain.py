"""``lstm-conformance explain``: one fixture computed step by step by the numpy reference, in plain text.

The seed question answered: which columns are which gate, the cell as Keras computes it, then every step of one
batch row, and the outputs against the fixture's expected values.
"""

from __future__ import annotations

import numpy as np

from ..errors import Unsupported
from ..format.fixtures import Fixture
from ..semantics import wrappers
from ..semantics.families import family
from ..semantics.problem import Problem
from ..semantics.wrappers import Part
from .gallery import fence, fmt, shape_text, trace_keys


class ExplainError(ValueError):
    """A fixture or batch row that cannot be explained (the command line's usage error)."""


EXPLAIN_STEPS = 12       # a longer sequence (the scale family) is walked for its first 3 steps and its last
EXPLAIN_THRESHOLD = 64   # a longer vector is summarised (first and last three values)


def _row(label: str, value, width: int, precision: int | None = None) -> str:
    """``  label  [values]`` with continuation lines of a 2-D array aligned under the first."""
    pad = " " * (width + 3)
    first, *rest = fmt(value, precision, EXPLAIN_THRESHOLD).splitlines()
    return "\n".join([f"  {label:{width}} {first}", *(pad + line for line in rest)])


def _walk(part: Part, batch: int, precision: int | None = None) -> tuple[list[str], dict]:
    """Every step of one plain layer for one batch row; returns the text and the reference's result (all rows)."""
    from ..semantics import reference
    from .gallery import _activations_text

    layer, config, inputs = part.layer, part.config, part.inputs
    fam = family(layer)
    pfx = part.prefix + "/" if part.prefix and not part.shared_weights else ""
    result = reference.forward(layer, dict(config, return_sequences=True), part.weights, part.gates,
                               part.activations, inputs)
    trace = result["trace"]
    w = fam.weights(config, part.weights, part.gates)
    state_names = fam.states
    backwards = bool(config.get("go_backwards", False))
    x = np.asarray(inputs["x"], np.float64)
    steps = x.shape[1]
    mask = inputs.get("mask")
    zero_masked = bool(config.get("zero_output_for_mask", False))

    body = [*([part.note, ""] if part.note else []),
            "Which columns are which gate (the fixture's `gates`: [start:stop] of the last axis):"]
    width = max(len(pfx + name) for name in part.weights)
    for name, weight in part.weights.items():
        ranges = "  ".join(f"{g} [{a}:{b}]" for g, (a, b) in part.gates.get(name, {}).items())
        body.append(f"  {pfx + name:{width}}  {shape_text(weight.shape):6} {ranges}")
    if not config.get("use_bias", True):
        body.append("  (use_bias=False: every bias term below is zero)")
    body += ["", f"The {layer} cell as Keras computes it:", *(f"  {line}" for line in fam.explain_lines(config)),
             *(f"  {line.replace('`', '')}" for line in _activations_text(part.activations))]
    order = list(range(steps - 1, -1, -1)) if backwards else list(range(steps))
    body += ["", "Processing order: input steps " + ", ".join(map(str, order))
             + (" (go_backwards: the returned sequence stays in this order)" if backwards else "")]
    previous = {}
    for n in state_names:
        given = inputs.get(f"initial_state_{n}")
        zeros = np.zeros(np.shape(result[f"state_{n}"])[1:])  # (units,), or ConvLSTM's (*positions, filters)
        previous[n] = zeros if given is None else np.asarray(given[batch], np.float64)
        body.append(f"initial {n}0 = " + ("zeros" if given is None else fmt(previous[n], precision)))
    if mask is not None:
        body.append(f"mask row {batch} (input order) = {fmt(mask[batch], precision)}")
    skipped = ("mask 0: skipped (gate values are computed but discarded, the states are held, the output "
               + ("is zeros: zero_output_for_mask)" if zero_masked else
                  "repeats the previous output, zeros before the first computed step)"))
    walked = set(range(steps)) if steps <= EXPLAIN_STEPS else {0, 1, 2, steps - 1}
    for k, t in enumerate(order):
        if k not in walked:
            if k - 1 in walked:
                body += ["", f"... steps {k} to {steps - 2} not shown ({steps - 1 - k} steps; the sequence has {steps})"]
            previous = {n: trace[n][batch, k] for n in state_names}
            continue
        computed = mask is None or bool(mask[batch, t])
        note = "" if mask is None else (", mask 1: computed" if computed else ", " + skipped)
        body += ["", f"step {k} = input step {t}{note}"]
        xt, h_prev = x[batch, t], previous["h"]
        rows = [("x_t", xt)] + [(f"{n}_prev", previous[n]) for n in state_names]
        step = {n: v[batch, k] for n, v in trace.items()}
        for label, value, tname in fam.pre_activations(w, config, xt, h_prev, step):
            rows += [(label, value), (tname, step[tname])]
        shown = {r[0] for r in rows}
        rows += [(n, trace[n][batch, k]) for n in trace_keys(trace) if n not in shown]
        rows.append(("output", result["output"][batch, k]))
        body += [_row(label, value, 9, precision) for label, value in rows]
        previous = {n: trace[n][batch, k] for n in state_names}
    return body, result


def _as_run(fixture: Fixture) -> list[Part]:
    """The plain layers of a fixture in the order the reference runs them, each with the inputs it was given."""
    from ..semantics import reference
    seen = []

    def run_layer(part: Part) -> dict:
        seen.append(part.replace(inputs=dict(part.inputs)))
        return reference.layer_outputs(part)
    wrappers.compose(Problem.of(fixture), run_layer)
    return seen


def explain_text(fixture: Fixture, batch: int = 0, precision: int | None = None) -> str:
    """The seed question answered for one fixture: gate columns, then every step of one batch row
    (values float32-exact, or with ``precision`` fixed decimals)."""
    from ..semantics import reference

    n_batch = fixture.inputs["x"].shape[1 if fixture.config.get("time_major") else 0]  # time_major: (time, batch, ..)
    if not 0 <= batch < n_batch:
        raise ExplainError(f"--batch {batch} is out of range: {fixture.id} has batch rows 0..{n_batch - 1}")
    if fixture.layer == "Model":
        return model_text(fixture, batch, precision)
    calls = fixture.meta.get("calls")
    # a stateful wrapper: every plain layer as the wrapper ran it, its x and carried states filled in
    recorded = calls and fixture.layer in wrappers.WRAPPERS
    try:
        parts = _as_run(fixture) if recorded else wrappers.parts(fixture)
    except Unsupported as exc:
        raise ExplainError(f"explain is not supported for {fixture.id}: {exc}; "
                         f"`lstm-conformance show {fixture.id}` prints its weights sliced by gate") from None
    body, last = [], None
    for k, part in enumerate(parts):
        if not recorded and fixture.layer == "Stacked" and last is not None:
            part.inputs["x"] = last["output"]
        if not recorded and calls and wrappers.carries(calls, k):
            part.inputs.update(wrappers.final_states(last))
        lines, last = _walk(part, batch, precision)
        body += [*(["", "-" * 40] if body else []), *lines]
    whole = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                              fixture.activations, fixture.inputs, calls=fixture.meta.get("calls"))
    body += ["", f"Outputs for batch row {batch}: the fixture's expected values (Keras) vs the numpy reference"]
    width = max(len(f"{name} reference") for name in fixture.expected)
    time_major = bool(fixture.config.get("time_major") and fixture.config.get("return_sequences"))
    for name, want in fixture.expected.items():
        if time_major and name == "output":  # (time, batch, units): the batch row is the second axis
            got, want = whole[name][:, batch], want[:, batch]
        else:
            got, want = whole[name][batch], want[batch]
        diff = float(np.abs(got - want).max())
        body += [_row(f"{name} expected", want, width, precision),
                 _row(f"{name} reference", got, width, precision),
                 f"  {name} max abs diff {diff:.3g} (atol {fixture.tolerance['atol']:g})"]
    stored, trace = fixture.trace, whole["trace"]
    common = [k for k in stored if k in trace]
    if common:
        worst = max(float(np.abs(trace[k] - stored[k]).max()) for k in common)
        body.append(f"The reference's trace agrees with the fixture's stored trace to max abs diff {worst:.3g}.")
    elif not stored:
        body.append("This fixture stores no trace (the scale family's would be most of the gallery); "
                    "the outputs above are what it checks.")
    head = [f"## `{fixture.citation}` explained ({fixture.layer}, batch row {batch})", "",
            fixture.description.strip(), ""]
    return "\n".join([*head, *fence(body), ""])


def model_text(fixture: Fixture, batch: int = 0, precision: int | None = None) -> str:
    """A Model fixture (SPEC 5.15) layer by layer for one batch row: what each layer does with the mask, the
    mask it was given and its output; then the output against Keras's. ``explain`` of a recurrent layer's steps
    is the single-layer fixtures' (the same families compute them here)."""
    from ..semantics import models, reference

    body = ["Layer by layer (the mask is made inside the model: Embedding mask_zero, Masking):", ""]
    descriptions = models.describe(fixture.config)

    def record(k, x_in, mask_in, y, mask_out):
        body.append(descriptions[k])
        body.append(f"  mask given  = {'none' if mask_in is None else fmt(np.asarray(mask_in[batch], int), precision)}")
        body.append(_row("output", np.asarray(y)[batch], 10, precision))
        body.append(f"  mask passed = {'none' if mask_out is None else fmt(np.asarray(mask_out[batch], int), precision)}")
        body.append("")

    problem = Problem.of(fixture)
    whole = models.compose_model(problem, reference.outputs, record=record)
    body.append(f"Output for batch row {batch}: the fixture's expected values (Keras) vs the numpy reference")
    want, got = fixture.expected["output"][batch], whole["output"][batch]
    body += [_row("expected", want, 9, precision), _row("reference", got, 9, precision),
             f"  max abs diff {float(np.abs(got - want).max()):.3g} (atol {fixture.tolerance['atol']:g})",
             "This fixture stores no trace (a Model's output is what it checks; the layers above are the "
             "reference's)."]
    head = [f"## `{fixture.citation}` explained (Model, batch row {batch})", "", fixture.description.strip(), "",
            f"Input row {batch}: " + fmt(np.asarray(fixture.inputs['x'][batch]), precision), ""]
    return "\n".join([*head, *fence(body), ""])
