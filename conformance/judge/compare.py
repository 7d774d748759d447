"""Validate what an implementation returned and compare it with a fixture's expected values.

The failure message is written to be pasted into a bug report as it is: fixture
``id@digest``, implementation and version, which output, max errors against the
tolerance, the first offending element as (batch, timestep, unit), expected vs got
there, the first diverging gate and batch row when a trace was returned (or why
it could not be compared), the diagnosis lines (``diagnosis: ...``: a known mistake, or what else explains
the failure), and a one-line repro command. An implementation that declares it returns only some outputs
(``returns``) is checked on those: PARTIAL when they agree, never PASSED. The verdict carries each of these
as structure (``records``); the message is rendered from it. Values print with the digits that tell expected
from got apart (``records.digits``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Collection, Mapping

import numpy as np

from ..semantics.families import FAMILIES, TRACE_ORDER, Family
from ..semantics.tolerance import close
from ..records import Diagnosis, Mismatch, Precision, Trace
from . import approximate
from .verdict import Status, Verdict
from ..semantics.wrappers import call_index, wrapped_layers

ACCEPTED_DTYPES = ("float32", "float64")


def validate(fixture, result, returns: Collection[str] | None = None) -> list[str]:
    """Problems with the shape of the returned mapping itself (keys, types, dtypes, shapes, finiteness).

    ``returns``: the outputs the implementation declares it returns; a missing output outside them is no problem.
    """
    if not isinstance(result, Mapping):
        return [f"run() returned {type(result).__name__}, expected a mapping of output name -> numpy.ndarray"]
    expected = fixture.expected
    problems = [f"missing output {k!r}" for k in expected
                if k not in result and (returns is None or k in returns)]
    problems += [f"unexpected output {k!r} (allowed: {', '.join([*expected, 'trace'])})"
                 for k in result if k not in expected and k != "trace"]
    for name in expected:
        if name in result:
            problems += check_array(name, result[name], expected[name])
    if "trace" in result and not isinstance(result["trace"], Mapping):
        problems.append(f"'trace' is {type(result['trace']).__name__}, expected a mapping of gate name -> array")
    return problems


def check_array(name: str, value, want: np.ndarray) -> list[str]:
    """``value`` is an array of the expected shape, finite, in float32 or float64 (or the fixture's own dtype:
    float16 under mixed_float16)."""
    shape, wanted = want.shape, want.dtype.name
    others = [d for d in ACCEPTED_DTYPES if d != wanted]
    if not isinstance(value, np.ndarray):
        return [f"output {name!r} is {type(value).__name__}, expected numpy.ndarray"]
    if value.dtype.name not in (wanted, *others):
        return [f"output {name!r} has dtype {value.dtype.name}, expected {wanted} "
                f"({' and '.join(others)} {'is' if len(others) == 1 else 'are'} accepted)"]
    if value.shape != tuple(shape):
        return [f"output {name!r} has shape {value.shape}, expected {tuple(shape)}"]
    if not np.all(np.isfinite(value)):
        return [f"output {name!r} contains NaN or Inf (first at index {np.argwhere(~np.isfinite(value))[0].tolist()})"]
    return []


FLOAT32_SIZED = 64 * 2.0 ** -24   # relative: a float32 computation's error after tens of roundings


def float64_hint(fixture, worst: float) -> Precision | None:
    """A float64 fixture failed by an error no larger than float32 rounding: the port computes in float32."""
    if (fixture.meta.get("precision") or {}).get("compute") != "float64":
        return None
    scale = max(float(np.max(np.abs(v.astype(np.float64)), initial=0.0)) for v in fixture.expected.values())
    if worst > FLOAT32_SIZED * max(scale, 1.0):
        return None
    return Precision("float64", "float32", worst)


def matches(fixture, result: Mapping) -> bool:
    """True when every expected output is present, well-formed and within tolerance."""
    return not validate(fixture, result) and all(
        close(result[k], v, fixture.tolerance).all() for k, v in fixture.expected.items())


def _step_label(fixture, name: str, t: int) -> str:
    """``timestep t``, with the input step it read when the layer runs backwards (per call when stateful)."""
    if not fixture.config.get("go_backwards"):
        return f"timestep {t}"
    steps, offset = fixture.inputs["x"].shape[1], 0
    k = call_index(name)
    calls = fixture.meta.get("calls")
    if k is not None and calls and k < len(calls["steps"]):
        steps, offset = int(calls["steps"][k]), int(sum(calls["steps"][:k]))
    return f"timestep {t} (processing order; input step {offset + steps - 1 - t}, go_backwards)"


def family_of(fixture) -> Family:
    """The family whose output axes label this fixture's arrays (a wrapper's: the layer it wraps)."""
    layers = sorted(wrapped_layers(fixture.layer, fixture.config)) if fixture.layer not in FAMILIES else [fixture.layer]
    return FAMILIES.get(layers[0] if layers else "", FAMILIES["LSTM"])


def _describe_index(fixture, name: str, index: tuple) -> str:
    """``[batch b, timestep t, unit u]`` for a sequence, ``[batch b, unit u]`` for a state (the family's own axis
    names), else the bare index."""
    return family_of(fixture).label(tuple(index), lambda t: _step_label(fixture, name, t))


def _time_major_sequence(fixture, name: str, array: np.ndarray) -> bool:
    """Whether ``name`` is a returned sequence stored (time, batch, units): Keras 2's ``time_major=True``."""
    return bool(name == "output" and array.ndim == 3 and fixture.config.get("time_major"))


def first_bad(bad: np.ndarray) -> tuple:
    """The first True index of ``bad`` (which must have one); timestep first, then batch, for (B, T, U)."""
    where = np.argwhere(bad)
    if bad.ndim == 3:
        where = where[np.lexsort((where[:, 2], where[:, 0], where[:, 1]))]
    return tuple(int(i) for i in where[0])


def _first_bad_in_time(bad: np.ndarray) -> tuple:
    """The first True index of a trace array (batch, time, ...): earliest timestep, then batch row, then the
    rest in C order (``first_bad``'s order for (B, T, U), for every rank)."""
    t, b, *rest = (int(i) for i in np.argwhere(np.moveaxis(bad, 1, 0))[0])
    return (b, t, *rest)


def _element_words(fixture, index: tuple) -> str:
    """``unit 3`` (or ``row 1, col 2, filter 0``): the axes after batch and timestep, named by the family."""
    axes = family_of(fixture).output_axes
    if len(axes) != len(index):
        return f"element {list(index[2:])}"
    return ", ".join(f"{axis} {i}" for axis, i in zip(axes[2:], index[2:]))


def _gate_rank(name: str) -> int:
    """Computation order within a step (gates, then c, then h), so a tie names the gate that went wrong first."""
    short = name.rsplit("/", 1)[-1]
    return TRACE_ORDER.index(short) if short in TRACE_ORDER else len(TRACE_ORDER)


def _trace_order(names) -> list[str]:
    """Names grouped by part (``forward/``, ``layers/0/``...), in computation order within each."""
    return sorted(names, key=lambda k: (k.rpartition("/")[0], _gate_rank(k)))


def _trace_problem(got, want: np.ndarray) -> str | None:
    """Why one returned trace entry cannot be compared, or None when it can."""
    if not isinstance(got, np.ndarray):
        return f"{type(got).__name__}, not numpy.ndarray"
    if got.dtype.kind not in "fiu":
        return f"dtype {got.dtype.name}, not float32 or float64"
    if got.shape == want.shape:
        return None
    if got.ndim >= 3 and got.shape == (want.shape[1], want.shape[0], *want.shape[2:]):
        return f"shape {got.shape}, which looks time-major"
    return f"shape {got.shape}"


def _expected_trace(expected: Mapping, axes: str = "(batch, time, units)") -> str:
    """The names and shapes of the fixture's trace, for a message about a trace that does not fit."""
    names = _trace_order(expected)
    shapes = {expected[k].shape for k in names}
    if len(shapes) == 1:
        return f"expected names {', '.join(map(repr, names))}, each of shape {shapes.pop()} {axes}"
    return f"expected names and shapes {axes} " + ", ".join(f"{k!r} {expected[k].shape}" for k in names)


def _trace_axes(fixture) -> str:
    axes = family_of(fixture).output_axes
    return "(batch, time, units)" if len(axes) == 3 else "(" + ", ".join(axes) + ")"


def _within_rounding(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where a trace returned in a coarser dtype than the fixture's (float32 for a float64 layer) is off by no more
    than storing the expected value in that dtype (one unit roundoff, doubled): not where the computation diverged."""
    if got.dtype.kind != "f" or want.dtype.kind != "f" or got.dtype.itemsize >= want.dtype.itemsize:
        return np.zeros(got.shape, bool)
    return np.abs(got.astype(np.float64) - want) <= np.finfo(got.dtype).eps * np.abs(want)


def trace_of(fixture, trace) -> Trace | None:
    """What the implementation's trace says: the first (gate, step, batch row) leaving the fixture's trace,
    and every entry that could not be compared, so a wrong name or layout is never taken for agreement."""
    if not isinstance(trace, Mapping):
        return None
    expected = fixture.trace
    if not expected:
        return Trace(stored=False)
    problems: dict[str, list[str]] = {}
    for name in trace:
        if name not in expected:
            problems.setdefault("unknown name", []).append(repr(name))
    compared, first, first_rounded = [], None, None
    for gate in _trace_order(g for g in expected if g in trace):
        got, want = trace[gate], expected[gate]
        problem = _trace_problem(got, want)
        if problem:
            problems.setdefault(problem, []).append(repr(gate))
            continue
        compared.append(gate)
        bad = ~close(got, want, fixture.tolerance)
        if bad.any():
            index = _first_bad_in_time(bad)
            if first_rounded is None or index[1] < first_rounded[1][1]:  # a tie keeps the gate computed first
                first_rounded = (gate, index)
        bad &= ~_within_rounding(got, want)
        if bad.any():
            index = _first_bad_in_time(bad)
            if first is None or index[1] < first[1][1]:
                first = (gate, index)
    first = first or first_rounded   # where every entry is off by its dtype's rounding only, that rounding
    found = Trace(compared=tuple(compared),
                  not_compared=tuple((why, tuple(names)) for why, names in problems.items()),
                  wanted=_expected_trace(expected, _trace_axes(fixture)) if problems else "")
    if first is None:
        return found
    gate, index = first
    b, t = index[:2]
    got, want = trace[gate], expected[gate]
    return dataclasses.replace(
        found, gate=gate, timestep=t, step=_step_label(fixture, gate, t), batch=b,
        element=_element_words(fixture, index), index=index, expected=float(want[index]), got=float(got[index]),
        max_abs_error=float(np.abs(got[:, t].astype(np.float64) - want[:, t]).max()))


def localise_trace(fixture, trace) -> list[str]:
    """``trace_of`` in words, one line each (none when no trace was returned)."""
    found = trace_of(fixture, trace)
    return found.lines() if found is not None else []


def mismatch(fixture, name: str, got: np.ndarray, bad: np.ndarray, diff: np.ndarray) -> Mismatch:
    """Output ``name``'s errors and its first offending element (``bad``: out of tolerance, ``diff``: abs error)."""
    want = fixture.expected[name]
    nonzero = want != 0  # relative error is undefined where Keras gives exactly 0 (relu, masked steps)
    rel = float((diff[nonzero] / np.abs(want[nonzero].astype(np.float64))).max(initial=0.0))
    time_major = _time_major_sequence(fixture, name, bad)
    index = first_bad(np.swapaxes(bad, 0, 1)) if time_major else first_bad(bad)  # (batch, time, unit)
    at = (index[1], index[0], *index[2:]) if time_major else index   # where it lies in the array
    return Mismatch(name, want.dtype.name, int(bad.sum()), int(bad.size), float(diff.max()), rel,
                    float(fixture.tolerance["atol"]), float(fixture.tolerance["rtol"]), index,
                    _describe_index(fixture, name, index), float(want[at]), float(got[at]), time_major)


def compare(fixture, result, impl_name: str, impl_version: str | None = None,
            repro: str | None = None, diagnose=None, can_trace: bool = True,
            returns: Collection[str] | None = None, numeric_format=None) -> Verdict:
    """Check ``result`` against ``fixture``: passed or failed, with a message that stands alone in a bug report.

    ``can_trace``: whether the implementation could return a ``trace`` (else no hint to return one).
    ``returns``: the outputs the implementation declares it returns (None: all). Outputs it leaves out are not
    compared; when everything it returned agrees the verdict is PARTIAL, never PASSED, and says what was not
    checked. ``diagnose(fixture, result)``: a ``records.Diagnosis`` for a failure (or its text, one finding a
    line), each finding shown as ``diagnosis: ...``. ``numeric_format``: an approximate port's
    ``approximate.Format``: judged by its semantics, not the tolerance (``approximate.judge``, SPEC 7.8).
    """
    who = f"implementation {impl_name!r}" + (f" {impl_version}" if impl_version else "")
    head = f"{fixture.citation}: {who}"
    repro_line = f"repro: {repro}" if repro else None
    done = functools.partial(Verdict, repro=repro, impl_version=impl_version)
    problems = validate(fixture, result, returns)
    if problems:
        lines = [f"{head} returned unusable output:", *(f"  - {p}" for p in problems)]
        return done(Status.FAILED, "\n".join([*lines, *([repro_line] if repro_line else [])]),
                    reason=f"returned unusable output: {problems[0]}")

    checked = [k for k in fixture.expected if k in result]
    left_out = [k for k in fixture.expected if k not in result]
    not_returned = (f"not returned (the implementation declares it returns only "
                    f"{', '.join(map(repr, sorted(returns or ())))}): {', '.join(map(repr, left_out))}")
    if not checked:
        return done(Status.SKIPPED, f"{head} returns none of this fixture's outputs; {not_returned}",
                    reason=f"returns none of this fixture's outputs; {not_returned}")

    if numeric_format is not None:
        verdict = approximate.judge(fixture, {k: result[k] for k in checked}, numeric_format, head, done)
        if verdict.ok and left_out:
            return dataclasses.replace(verdict, status=Status.PARTIAL, message=f"{verdict.message}\n  {not_returned}",
                                       reason=f"partial: {not_returned}")
        if not verdict.ok and repro_line:
            return dataclasses.replace(verdict, message=f"{verdict.message}\n{repro_line}")
        return verdict

    worst, mismatches = 0.0, []
    for name in checked:
        want, got = fixture.expected[name], result[name]
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        bad = ~close(got, want, fixture.tolerance)
        if bad.any():
            mismatches.append(mismatch(fixture, name, got, bad, diff))
    if not mismatches and left_out:
        return done(Status.PARTIAL, f"{head}: partial: the outputs returned are within tolerance "
                                    f"(checked: {', '.join(map(repr, checked))}); {not_returned}", worst,
                    reason=f"partial: {not_returned}")
    if not mismatches:
        return done(Status.PASSED, f"{head}: all outputs within tolerance", worst,
                    reason="all outputs within tolerance")

    reason = f"does not match Keras ({fixture.layer}, tags: {', '.join(fixture.tags) or '-'})"
    lines = [f"{head} {reason}:", *(line for m in mismatches for line in m.lines())]
    if left_out:
        lines.append(f"  {not_returned}")
    hint = float64_hint(fixture, worst)
    if hint:
        lines.append(f"  {hint.line()}")
    trace = trace_of(fixture, result.get("trace"))
    if trace is not None:
        lines += [f"  {line}" for line in trace.lines()]
    elif can_trace and not any(result[m.output].ndim == len(family_of(fixture).output_axes) for m in mismatches):
        lines.append("  (final values only: return a 'trace' mapping to locate the first diverging step and gate)")
    named = diagnose(fixture, result) if diagnose is not None else None
    if isinstance(named, str):
        named = Diagnosis.of_text(named) if named.strip() else None
    if named is not None:
        lines += [f"  diagnosis: {finding}" for finding in named.findings]
    if repro_line:
        lines.append(repro_line)
    return done(Status.FAILED, "\n".join(lines), worst, mismatches, reason=reason, trace=trace,
                diagnosis=named, precision=hint)
