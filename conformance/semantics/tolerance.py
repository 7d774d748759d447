"""Measured tolerances (SPEC 6.1): how far Keras disagrees with itself, times a stated margin.

A catalog entry with ``tolerance: measured`` gets its tolerance from ``catalog/tolerances.yaml``:
for each fixture, the largest ``|got - expected|`` that Keras itself produced across the matrix's
backends and versions (``keras`` and ``keras-load`` in every env's ``summary.json``, cases a ledger
entry explains left out) and that the float64 numpy reference produced. The rule::

    atol = 10 x max(largest measured difference, unit roundoff of the compute dtype),
           rounded up to one significant digit
    rtol = 0

The factor 10 is the generator's own cross-check margin (Keras and the reference agree within a
tenth of the tolerance). The floor (the unit roundoff, half the dtype's eps) keeps a tolerance from
collapsing to zero where every source happens to agree bit for bit. The fixture records the rule and the measurements as
``tolerance.basis``, so anyone citing it can see why its tolerance is what it is.

Why the reference is a source: it computes in float64, exactly what a port computing in float32
(or float64) where Keras computes in float16 or bfloat16 does, at worst. Including it decides that
such a port passes mixed-precision fixtures: they check the semantics of the policy (which dtype
the layer returns aside), not the rounding of one backend's half-precision kernels. Float64
fixtures, by the same rule, ask for float64: a port computing them in float32 fails.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import yaml

MARGIN = 10
RULE = (f"atol = {MARGIN} x max(largest measured |difference| from the expected values, unit roundoff of the "
        "compute dtype), rounded up to one significant digit; rtol = 0")
MEASURED_BY = ("keras", "keras-load")   # the implementations that are Keras itself
UNIT_ROUNDOFF = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}
POLICIES = {  # dtype policy name -> (variables, compute, outputs)
    "float32": ("float32", "float32", "float32"),
    "float64": ("float64", "float64", "float64"),
    "mixed_float16": ("float32", "float16", "float16"),
    "mixed_bfloat16": ("float32", "bfloat16", "bfloat16"),
}


class ToleranceError(Exception):
    pass


def precision(config: Mapping) -> dict:
    """``{policy, variables, compute, outputs}`` of a fixture's layer config (``dtype``, default float32)."""
    policy = config.get("dtype", "float32")
    if policy not in POLICIES:
        raise ToleranceError(f"dtype policy {policy!r} is not one of {', '.join(POLICIES)}")
    variables, compute, outputs = POLICIES[policy]
    return {"policy": policy, "variables": variables, "compute": compute, "outputs": outputs}


def port_dtype(config: Mapping) -> type:
    """The dtype a port computes and returns this layer in: float64 for a float64 layer, else float32 (under
    mixed precision too, which the measured tolerances let pass: SPEC 5.13)."""
    return np.float64 if precision(config)["compute"] == "float64" else np.float32


def stored_dtype(outputs: str) -> np.dtype:
    """The numpy dtype an expected array of this Keras output dtype is stored in: bfloat16 (which numpy
    lacks) as float32, whose values it is exactly; float16 and float64 as themselves."""
    return np.dtype(np.float32 if outputs == "bfloat16" else outputs)


def round_up(value: float) -> float:
    """``value`` rounded up to one significant digit (3.2e-4 -> 4e-4)."""
    if value <= 0:
        raise ToleranceError("a tolerance must be positive")
    exponent = math.floor(math.log10(value))
    digit = math.ceil(round(value / 10 ** exponent, 9))
    return float(f"{digit}e{exponent}") if digit < 10 else float(f"1e{exponent + 1}")


def from_measurements(sources: Mapping[str, float], compute: str) -> dict:
    """The tolerance (with its basis) that the rule gives for these measured differences."""
    if not sources:
        raise ToleranceError("no measurements")
    largest = max(sources.values())
    atol = round_up(MARGIN * max(largest, UNIT_ROUNDOFF[compute]))
    return {"atol": atol, "rtol": 0.0,
            "basis": {"rule": RULE, "compute_dtype": compute, "largest_measured": float(f"{largest:.3g}"),
                      "sources": {k: float(f"{v:.3g}") for k, v in sorted(sources.items())}}}


# -- catalog/tolerances.yaml ------------------------------------------------------------------------

def read_measurements(path: Path) -> dict[str, dict[str, float]]:
    """fixture id -> source -> largest measured difference; an absent file is no measurements."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("measurements", {}), dict):
        raise ToleranceError(f"{path}: expected a mapping with 'measurements: {{fixture id: {{source: value}}}}'")
    return {fid: {str(k): float(v) for k, v in sources.items()} for fid, sources in data["measurements"].items()}


def write_measurements(path: Path, measurements: Mapping[str, Mapping[str, float]], header: str) -> None:
    body = {"measurements": {fid: {k: float(f"{v:.3g}") for k, v in sorted(s.items())}
                             for fid, s in sorted(measurements.items())}}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, width=110))


# -- measuring ----------------------------------------------------------------------------------

def matrix_differences(result_dirs: Iterable[Path], fixture_ids: set[str]) -> dict[str, dict[str, float]]:
    """fixture id -> ``<env>/<impl>`` -> the largest difference Keras itself produced there.

    Read from each env's ``summary.json``; cases that were compared (passed or failed) count, cases
    a ledger entry explains (a known divergence of that Keras, not rounding) and skips do not."""
    found: dict[str, dict[str, float]] = {}
    for directory in result_dirs:
        summary = directory / "summary.json"
        if not summary.is_file():
            continue
        records = json.loads(summary.read_text()).get("cases", [])
        for record in records:
            if (record.get("impl") in MEASURED_BY and record.get("fixture") in fixture_ids
                    and record.get("status") in ("passed", "failed") and record.get("max_abs_error") is not None):
                source = f"{directory.name}/{record['impl']}"
                sources = found.setdefault(record["fixture"], {})
                sources[source] = max(sources.get(source, 0.0), float(record["max_abs_error"]))
    return found


def close(got, want, tolerance) -> np.ndarray:
    """Elementwise ``|got - want| <= atol + rtol * |want|`` (numpy.isclose, in float64)."""
    return np.isclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                      atol=tolerance["atol"], rtol=tolerance["rtol"])
