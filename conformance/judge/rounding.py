"""Is a regenerated fixture the stored one, up to the rounding of the CPU it was regenerated on? (SPEC 4.5)

TensorFlow's matrix products (oneDNN's sgemm under Eigen) pick their kernels by instruction set, so the same
fixture regenerated on a CPU without AVX-512 differs from the stored one in the last bits. ``generate_fixtures.py
--check`` sorts each difference into one of three classes: identical (bitwise), platform rounding (within
``ULPS`` ulps of the array's scale and a ``TOLERANCE_FRACTION`` of the fixture's atol), or a real change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

IDENTICAL, ROUNDING, CHANGED = "identical", "platform rounding", "real change"
ULPS = 16  # measured at most 5 (oneDNN limited to AVX, SSE4.1, AVX2 on an AVX-512 CPU): a margin of three
TOLERANCE_FRACTION = 0.25  # measured at most 0.104 of atol (scale-gru-256u-100t, atol 2e-6)
BFLOAT16_MANTISSA_LOSS = 2.0 ** 16  # a bfloat16 ulp is 2^16 float32 ulps at the same magnitude
REFERENCE_SOURCE = "reference-float64"  # the tolerance basis's measurement of the expected arrays (SPEC 6.1)
MEASURED_DIGITS_SLACK = 0.01  # tolerance sources are written with 3 significant digits


@dataclass
class ArrayDifference:
    """How one array regenerated compares with the stored one; ``ulps`` and ``abs`` are the largest differences."""
    name: str
    kind: str
    ulps: float = 0.0
    abs: float = 0.0
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.detail else f"{self.name}: {self.kind}"


@dataclass
class FixtureDifference:
    """Every array's class and every other difference (which is always a real change)."""
    arrays: list[ArrayDifference] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.changes or any(a.kind == CHANGED for a in self.arrays):
            return CHANGED
        return ROUNDING if any(a.kind == ROUNDING for a in self.arrays) else IDENTICAL

    def largest(self) -> tuple[float, float]:
        """(ulps, absolute) of the largest platform-rounding difference, 0 where none."""
        found = [a for a in self.arrays if a.kind == ROUNDING]
        return max((a.ulps for a in found), default=0.0), max((a.abs for a in found), default=0.0)

    def __str__(self) -> str:
        shown = [a for a in self.arrays if a.kind == CHANGED] if self.kind == CHANGED else self.arrays
        return "; ".join(self.changes + [str(a) for a in shown if a.kind != IDENTICAL])


def array_ulp(stored: np.ndarray, value_dtype: str | None = None) -> float:
    """One ulp at the array's largest magnitude, in ``value_dtype`` (default: the array's own; ``bfloat16``
    for float32 arrays holding bfloat16 values). A rounding difference is a few ulps of the magnitudes summed,
    so an element that cancels to near zero may be thousands of its own ulps off: the array's scale is the unit."""
    finite = stored[np.isfinite(stored)]
    top = np.max(np.abs(finite)) if finite.size else stored.dtype.type(0)
    ulp = float(np.spacing(stored.dtype.type(top)))
    return ulp * BFLOAT16_MANTISSA_LOSS if value_dtype == "bfloat16" else ulp


def classify_array(name: str, stored: np.ndarray, regenerated: np.ndarray, atol: float,
                   value_dtype: str | None = None) -> ArrayDifference:
    """Identical (same dtype, shape and bytes), platform rounding, or a real change named with its first element
    beyond the bound (index, stored, regenerated, ulps)."""
    if stored.dtype != regenerated.dtype or stored.shape != regenerated.shape:
        return ArrayDifference(name, CHANGED, detail=f"{stored.dtype}{list(stored.shape)} on disk, "
                                                     f"{regenerated.dtype}{list(regenerated.shape)} now")
    if stored.tobytes() == regenerated.tobytes():
        return ArrayDifference(name, IDENTICAL)
    if stored.dtype.kind != "f":
        index = np.argwhere(stored != regenerated)[0].tolist()
        return ArrayDifference(name, CHANGED, detail=f"changed at {index}: stored {stored[tuple(index)]}, "
                                                     f"regenerated {regenerated[tuple(index)]}")
    old, new = stored.astype(np.float64), regenerated.astype(np.float64)
    unequal_specials = (~np.isfinite(old) | ~np.isfinite(new)) & ~((old == new) | (np.isnan(old) & np.isnan(new)))
    both_finite = np.isfinite(old) & np.isfinite(new)
    diff = np.where(both_finite, np.abs(old - new), 0.0)
    ulp = array_ulp(stored, value_dtype)
    ulps = diff / ulp
    beyond = unequal_specials | (ulps > ULPS) | (diff > atol * TOLERANCE_FRACTION)
    largest_ulps, largest_abs = float(ulps.max(initial=0.0)), float(diff.max(initial=0.0))
    if not beyond.any():
        return ArrayDifference(name, ROUNDING, largest_ulps, largest_abs,
                               f"platform rounding, at most {largest_ulps:.3g} ulps ({largest_abs:.3g})")
    index = tuple(np.argwhere(beyond)[0].tolist())
    at = "inf" if unequal_specials[index] else f"{ulps[index]:.3g}"
    unit = f"ulps of {ulp:.3g}" + (" (bfloat16)" if value_dtype == "bfloat16" else "")
    return ArrayDifference(name, CHANGED, largest_ulps, largest_abs,
                           f"changed at {list(index)}: stored {float(old[index])!r}, regenerated {float(new[index])!r} "
                           f"({at} {unit}); max abs difference {largest_abs:.3g}")


def value_dtypes(meta: Mapping) -> dict[str, str]:
    """Array name -> the dtype its values are in, where that is not the stored one: bfloat16 expected outputs."""
    outputs = (meta.get("precision") or {}).get("outputs")
    return {name: outputs for name in meta.get("outputs", [])} if outputs == "bfloat16" else {}


def tolerance_change(stored: Mapping, regenerated: Mapping, arrays_moved: float) -> str | None:
    """None when two tolerances differ only by the basis's measurement of the expected arrays (``reference-float64``
    and the ``largest_measured`` it may set), by no more than the arrays moved, with the same atol and rtol: the
    measurement follows the arrays' rounding, what the fixture asserts does not change. Else what differs."""
    if stored == regenerated:
        return None
    if not (isinstance(stored, Mapping) and isinstance(regenerated, Mapping)):
        return "field 'tolerance' differs"
    old, new = dict(stored), dict(regenerated)
    old_basis, new_basis = dict(old.pop("basis", None) or {}), dict(new.pop("basis", None) or {})
    old_sources, new_sources = dict(old_basis.pop("sources", {})), dict(new_basis.pop("sources", {}))
    old_value, new_value = old_sources.pop(REFERENCE_SOURCE, None), new_sources.pop(REFERENCE_SOURCE, None)
    old_basis.pop("largest_measured", None)
    new_basis.pop("largest_measured", None)
    if old != new or old_basis != new_basis or old_sources != new_sources:
        return "field 'tolerance' differs"
    if not (isinstance(old_value, (int, float)) and isinstance(new_value, (int, float))):
        return "field 'tolerance' differs"
    allowed = arrays_moved + MEASURED_DIGITS_SLACK * max(abs(old_value), abs(new_value))
    if abs(new_value - old_value) > allowed:
        return (f"field 'tolerance' differs: {REFERENCE_SOURCE} {old_value!r} on disk, {new_value!r} now, more "
                f"than the arrays moved ({arrays_moved:.3g})")
    if any(basis["basis"].get("largest_measured") != max([value, *others.values()])
           for basis, value, others in ((stored, old_value, old_sources), (regenerated, new_value, new_sources))):
        return "field 'tolerance' differs: largest_measured is not the largest source"
    return None
