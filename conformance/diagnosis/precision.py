"""Reduced precision: rounding to bfloat16 and float16, and the detector that tells an error of computing in
one of them from a mistake (``precision``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import numpy as np

from ..records import Diagnosis


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
