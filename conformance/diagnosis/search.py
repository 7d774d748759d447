"""The search for what explains a failure: the six stages below, over the catalogue and the precision detector."""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ..records import Diagnosis
from ..semantics.tolerance import close
from .algebra import Mistake, Problem, _agrees, _checked, _computed, _squared_error, pair as _pair
from .catalogue import BY_KEY, CATALOGUE, PRECISION_MISTAKES
from .precision import _in_precision, _precision_words, precision


## Run only on a failure. In turn, stopping at the first that explains the failure (exact before statistical):
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
