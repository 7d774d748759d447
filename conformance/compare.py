"""Validate what an implementation returned and compare it with a fixture's expected values.

The failure message is written to be pasted into a bug report as it is: fixture
``id@digest``, implementation and version, which output, max errors against the
tolerance, the first offending element as (batch, timestep, unit), expected vs got
there, the first diverging gate when a trace was returned, a diagnosis when the
output matches a known mistake, and a one-line repro command.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

ACCEPTED_DTYPES = ("float32", "float64")
TRACE_ORDER = ("i", "f", "c_tilde", "o", "z", "r", "hh", "c", "h")


@dataclasses.dataclass
class Outcome:
    """The verdict for one (implementation, fixture) pair."""
    ok: bool
    lines: list[str]
    max_abs_error: float | None = None
    mismatched: list[str] = dataclasses.field(default_factory=list)

    @property
    def message(self) -> str:
        return "\n".join(self.lines)


def validate(fixture, result) -> list[str]:
    """Problems with the shape of the returned mapping itself (keys, types, dtypes, shapes, finiteness)."""
    if not isinstance(result, Mapping):
        return [f"run() returned {type(result).__name__}, expected a mapping of output name -> numpy.ndarray"]
    expected = fixture.expected
    problems = [f"missing output {k!r}" for k in expected if k not in result]
    problems += [f"unexpected output {k!r} (allowed: {', '.join([*expected, 'trace'])})"
                 for k in result if k not in expected and k != "trace"]
    for name in expected:
        if name in result:
            problems += check_array(name, result[name], expected[name].shape)
    if "trace" in result and not isinstance(result["trace"], Mapping):
        problems.append(f"'trace' is {type(result['trace']).__name__}, expected a mapping of gate name -> array")
    return problems


def check_array(name: str, value, shape) -> list[str]:
    if not isinstance(value, np.ndarray):
        return [f"output {name!r} is {type(value).__name__}, expected numpy.ndarray"]
    if value.dtype.name not in ACCEPTED_DTYPES:
        return [f"output {name!r} has dtype {value.dtype.name}, expected float32 (float64 is accepted)"]
    if value.shape != tuple(shape):
        return [f"output {name!r} has shape {value.shape}, expected {tuple(shape)}"]
    if not np.all(np.isfinite(value)):
        return [f"output {name!r} contains NaN or Inf (first at index {np.argwhere(~np.isfinite(value))[0].tolist()})"]
    return []


def close(got, want, tolerance) -> np.ndarray:
    """Elementwise ``|got - want| <= atol + rtol * |want|`` (numpy.isclose, in float64)."""
    return np.isclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                      atol=tolerance["atol"], rtol=tolerance["rtol"])


def matches(fixture, result: Mapping) -> bool:
    """True when every expected output is present, well-formed and within tolerance."""
    return not validate(fixture, result) and all(
        close(result[k], v, fixture.tolerance).all() for k, v in fixture.expected.items())


def _step_label(fixture, t: int) -> str:
    steps = fixture.inputs["x"].shape[1]
    if fixture.config.get("go_backwards"):
        return f"timestep {t} (processing order; input step {steps - 1 - t}, go_backwards)"
    return f"timestep {t}"


def _describe_index(fixture, name: str, index: tuple) -> str:
    if len(index) == 3:
        return f"[batch {index[0]}, {_step_label(fixture, index[1])}, unit {index[2]}]"
    if len(index) == 2:
        return f"[batch {index[0]}, unit {index[1]}]"
    return str(list(index))


def first_bad(bad: np.ndarray) -> tuple:
    """The first offending index, ordered by timestep first for (batch, time, unit) arrays."""
    where = np.argwhere(bad)
    if bad.ndim == 3:
        where = where[np.lexsort((where[:, 2], where[:, 0], where[:, 1]))]
    return tuple(int(i) for i in where[0])


def localise_trace(fixture, trace) -> str | None:
    """The first step and gate at which the implementation's trace leaves the fixture's."""
    expected = fixture.trace
    if not isinstance(trace, Mapping) or not expected:
        return None
    first = None
    for gate in sorted(expected, key=lambda g: TRACE_ORDER.index(g) if g in TRACE_ORDER else 99):
        got = trace.get(gate)
        if not isinstance(got, np.ndarray) or got.shape != expected[gate].shape:
            continue
        bad = ~close(got, expected[gate], fixture.tolerance)
        if bad.any():
            step = int(np.argwhere(bad)[:, 1].min())
            if first is None or step < first[0]:
                first = (step, gate, float(np.abs(got[:, step] - expected[gate][:, step]).max()))
    if first is None:
        return "trace: every gate returned agrees with the fixture's trace"
    step, gate, err = first
    return f"trace: first diverging gate is {gate!r} at {_step_label(fixture, step)} (max abs error {err:.3g})"


def compare(fixture, result, impl_name: str, impl_version: str | None = None,
            repro: str | None = None, diagnose=None) -> Outcome:
    """Check ``result`` against ``fixture``; the Outcome's message stands alone in a bug report."""
    who = f"implementation {impl_name!r}" + (f" {impl_version}" if impl_version else "")
    head = f"{fixture.citation}: {who}"
    repro_line = f"repro: {repro}" if repro else None
    problems = validate(fixture, result)
    if problems:
        lines = [f"{head} returned unusable output:", *(f"  - {p}" for p in problems)]
        return Outcome(False, [*lines, *([repro_line] if repro_line else [])])

    lines, worst, mismatched = [], 0.0, []
    for name, want in fixture.expected.items():
        got = result[name]
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        bad = ~close(got, want, fixture.tolerance)
        if not bad.any():
            continue
        mismatched.append(name)
        nonzero = want != 0  # relative error is undefined where Keras gives exactly 0 (relu, masked steps)
        rel = float((diff[nonzero] / np.abs(want[nonzero].astype(np.float64))).max(initial=0.0))
        index = first_bad(bad)
        lines.append(f"  output {name!r}: {int(bad.sum())} of {bad.size} elements out of tolerance; "
                     f"max abs error {diff.max():.3g} (atol {fixture.tolerance['atol']:g}), "
                     f"max rel error {rel:.3g} over non-zero expected values (rtol {fixture.tolerance['rtol']:g})")
        lines.append(f"    first offending element {_describe_index(fixture, name, index)}: "
                     f"expected {float(want[index]):.7g}, got {float(got[index]):.7g}")
    if not mismatched:
        return Outcome(True, [f"{head}: all outputs within tolerance"], worst)

    lines.insert(0, f"{head} does not match Keras ({fixture.layer}, tags: {', '.join(fixture.tags) or '-'}):")
    located = localise_trace(fixture, result.get("trace"))
    if located:
        lines.append(f"  {located}")
    elif not any(result[m].ndim == 3 for m in mismatched):
        lines.append("  (final values only: return a 'trace' mapping to locate the first diverging step and gate)")
    if diagnose is not None:
        named = diagnose(fixture, result)
        if named:
            lines.append(f"  diagnosis: {named}")
    if repro_line:
        lines.append(repro_line)
    return Outcome(False, lines, worst, mismatched)
