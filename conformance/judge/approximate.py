"""Approximate ports (int8, fixed point): an error profile, and the semantics judged by the nearest explanation.

A quantized port never meets a float tolerance, so a port that declares its numeric format
(``@implementation(numeric_format=...)``, SPEC 7.8) is judged otherwise: the error against the reference is
reported as a profile (max and median abs error per output, also in units of the format's
step), and the verdict is about the *semantics*. The returned outputs are compared, by RMS
distance over every output checked, with the correct reference (Keras, computed in float64)
and with every catalogued mistake that applies to the fixture (``diagnosis.catalogue``, less
the reduced-precision ones, which compute Keras's semantics; a mistake with a parameter
with the catalogue's own value, never fitted to the port's output). The port passes when the
nearest mistake is at least ``MARGIN`` times as far from its output as the reference is;
otherwise the verdict fails and names the nearest mistake.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping

import numpy as np

from ..diagnosis import search as mistakes
from ..diagnosis.catalogue import BY_KEY, PRECISION_MISTAKES
from ..records import Approximate, OutputError
from .verdict import Status, Verdict

# The nearest catalogued mistake must be at least MARGIN times as far from the port's output as the reference.
# Why 2: a correct port with RMS error e beside a mistake that moves the outputs by s has a margin of about
# sqrt(1 + s**2 / e**2), a port making that mistake about e / sqrt(e**2 + s**2) < 1; 2 asks the mistake to move
# the outputs by 1.7 times the port's own error. Measured on TFLite 2.21 int8 over the gallery (docs/approximate.md):
# 105 of 127 judged cases have a margin of 5 or more, none lies between 1.95 and 2.2, and every case below 2 has
# a max error of 16 steps or more (those at 2 or more: 1.9 steps, median); the deliberately wrong int8 ports: < 1.
MARGIN = 2.0
RESOLVABLE = 4.0   # steps of the format (RMS) a mistake must move the outputs by to take part

_AP_FIXED = re.compile(r"ap_u?fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,[^>]*)?>")


@dataclasses.dataclass(frozen=True)
class Format:
    """A port's numeric format and the size of its step (None where the tool reports none)."""
    name: str
    step: float | None = None


class FormatError(ValueError):
    """A numeric format declaration that cannot be read."""


def parse_format(declared) -> Format:
    """``int8`` (step: the tool's quantization scale, given as ``{"format": "int8", "step": s}``),
    ``ap_fixed<W,I>`` (step 2**-(W-I)), or any name with an explicit step."""
    if isinstance(declared, Format):
        return declared
    if isinstance(declared, Mapping):
        name, step = declared.get("format"), declared.get("step")
    else:
        name, step = declared, None
    if not isinstance(name, str) or not name.strip():
        raise FormatError(f"numeric_format {declared!r}: expected a format name such as 'int8' or 'ap_fixed<16,6>', "
                          "or a mapping {'format': name, 'step': size}")
    name = name.strip()
    fixed = _AP_FIXED.fullmatch(name.replace(" ", ""))
    if step is None and fixed:
        width, integer = int(fixed.group(1)), int(fixed.group(2))
        if width < 1 or width <= integer - 64:
            raise FormatError(f"numeric_format {name!r}: W={width} bits cannot hold I={integer} integer bits")
        step = 2.0 ** -(width - integer)
    if step is not None and (not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0):
        raise FormatError(f"numeric_format {name!r}: step {step!r} is not a positive number")
    return Format(name, None if step is None else float(step))


def declared(contract, fixture) -> Format | None:
    """The format the implementation's contract (``judge.contract.Contract``) declares for ``fixture``: a name, a
    mapping, or a callable taking the fixture, asked after the run so it can give the step the tool reported;
    None: a float port."""
    value = contract.numeric_format
    if callable(value):
        value = value(fixture)
    return None if value is None else parse_format(value)


def _rms(result: Mapping, other: Mapping, keys) -> float:
    diff = np.concatenate([(np.asarray(result[k], np.float64) - np.asarray(other[k], np.float64)).ravel()
                           for k in keys])
    return float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0


def profile(result: Mapping, want: Mapping, keys, step: float | None) -> tuple[OutputError, ...]:
    """Per output: max and median abs error against ``want``, and both in steps of the format."""
    out = []
    for k in keys:
        error = np.abs(np.asarray(result[k], np.float64) - np.asarray(want[k], np.float64)).ravel()
        worst, median = float(error.max(initial=0.0)), float(np.median(error)) if error.size else 0.0
        out.append(OutputError(k, worst, median, None if step is None else worst / step,
                               None if step is None else median / step))
    return tuple(out)


def distances(fixture, result: Mapping, keys) -> tuple[dict, dict[str, float], dict[str, float]]:
    """(the reference's outputs, RMS distance of the result to each applicable catalogued mistake's outputs, RMS
    distance of each mistake's outputs to the reference's: how far the mistake moves them)."""
    want = mistakes._reference(fixture)
    # the catalogue's own mistakes, not fitted to the result: a parameter fitted to a quantized output (a cell clip
    # bound) absorbs its rounding noise and would come out nearer than Keras for a correct port
    semantic = {k: v for k, v in mistakes._singles(fixture, keys).items()
                if BY_KEY[k] not in PRECISION_MISTAKES}
    return (want, {key: _rms(result, wrong, keys) for key, wrong in semantic.items()},
            {key: _rms(want, wrong, keys) for key, wrong in semantic.items()})


def assess(fixture, result: Mapping, fmt: Format, margin: float = MARGIN) -> Approximate:
    """The error profile and the semantic judgement of ``result`` (every expected output returned)."""
    keys = [k for k in fixture.expected if k in result]
    want, to_mistakes, effect = distances(fixture, result, keys)
    to_reference = _rms(result, want, keys)
    # a mistake that moves the outputs by less than RESOLVABLE steps of the format cannot be told from its rounding
    unresolved = tuple(sorted(k for k, e in effect.items() if fmt.step is not None and e < RESOLVABLE * fmt.step))
    to_mistakes = {k: d for k, d in to_mistakes.items() if k not in unresolved}
    nearest = min(to_mistakes, key=to_mistakes.get) if to_mistakes else None
    to_nearest = to_mistakes[nearest] if nearest else None
    ratio = (None if nearest is None else math.inf if to_reference == 0 else to_nearest / to_reference)
    holds = ratio is None or ratio >= margin
    return Approximate(format=fmt.name, step=fmt.step, outputs=profile(result, want, keys, fmt.step),
                       rms_to_reference=to_reference, nearest_mistake=nearest, rms_to_nearest=to_nearest,
                       margin=ratio, required_margin=margin, mistakes_compared=len(to_mistakes), unresolved=unresolved,
                       holds=holds)


def judge(fixture, result: Mapping, fmt: Format, head: str, done) -> Verdict:
    """The verdict for an approximate port's valid result (``head``: fixture citation and implementation;
    ``done``: ``Verdict`` with repro and version bound)."""
    found = assess(fixture, result, fmt)
    lines = [f"  {line}" for line in found.lines()]
    worst = max(o.max_abs_error for o in found.outputs)
    if found.holds:
        return done(Status.PASSED, "\n".join([f"{head}: approximate port ({fmt.name}): semantics nearest Keras",
                                              *lines]), worst, reason=f"approximate ({fmt.name}): nearest Keras",
                    approximate=found)
    mistake = BY_KEY[found.nearest_mistake]
    if found.margin < 1:
        why = f"nearer a catalogued mistake than Keras: {mistake.description} [mistake {mistake.key}]"
    else:
        why = (f"not nearer Keras by the margin than a catalogued mistake: {mistake.description} "
               f"[mistake {mistake.key}]")
    return done(Status.FAILED, "\n".join([f"{head}: approximate port ({fmt.name}): {why}", *lines]), worst,
                reason=f"approximate ({fmt.name}): {why}", approximate=found)


# -- measuring the rule over a run: ``python -m conformance.judge.approximate SUMMARY.json...`` --------------------------

def hold_rates(summary: Mapping) -> dict:
    """Per implementation and fixture family (the id's first word): how many judged cases the margin holds for,
    how many it fails (with the fixture, nearest mistake, margin and worst error in steps), and the other statuses."""
    rates: dict = {}
    for case in summary["cases"]:
        found = case.get("approximate")
        family = case["fixture"].split("-")[0]
        row = rates.setdefault(case["impl"], {}).setdefault(family, {"holds": 0, "fails": [], "other": {}})
        if not found:
            row["other"][case["status"]] = row["other"].get(case["status"], 0) + 1
        elif found["holds"]:
            row["holds"] += 1
        else:
            steps = max((o["max_steps"] or 0) for o in found["outputs"])
            row["fails"].append((case["fixture"], found["nearest_mistake"], found["margin"], steps))
    return rates


def main(argv=None) -> int:
    import json
    import sys
    for path in (argv if argv is not None else sys.argv[1:]):
        summary = json.loads(open(path, encoding="utf-8").read())
        for impl, families in hold_rates(summary).items():
            held = sum(r["holds"] for r in families.values())
            judged = held + sum(len(r["fails"]) for r in families.values())
            print(f"{impl}: the margin holds for {held} of {judged} judged cases ({path})")
            for family, row in sorted(families.items()):
                other = ", ".join(f"{n} {s}" for s, n in sorted(row["other"].items()))
                print(f"  {family:14} holds {row['holds']:3}  fails {len(row['fails']):3}" + (f"  ({other})" if other
                                                                                             else ""))
                for fixture, mistake, margin, steps in row["fails"]:
                    shown = "inf" if margin is None else f"{margin:.2f}"
                    print(f"    {fixture}: nearest {mistake}, margin {shown}, max error {steps:.1f} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
