"""Ports with one catalogued mistake each: the numpy reference computed the wrong way on purpose.

``--impl conformance.fuzz.mistaken:<key>`` (the mistake's key from ``conformance/mistakes.py`` with
``_`` for ``-``, e.g. ``conformance.fuzz.mistaken:forget_bias_twice``) is a port that makes that
mistake wherever it applies and is right everywhere else. The fuzzer's meta test and benchmark run
every one of them; they also make a quick demonstration:

    lstm-conformance fuzz --impl conformance.fuzz.mistaken:masked_output_h0
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..semantics import reference
from ..diagnosis.algebra import Mistake
from ..diagnosis.catalogue import BY_KEY
from ..judge.contract import implementation as declare
from ..judge.registry import Implementation
from ..semantics.tolerance import port_dtype


def attribute(mistake: Mistake) -> str:
    return mistake.key.replace("-", "_")


def run_with(mistake: Mistake):
    """``run(fixture)``: the reference with ``mistake`` where it applies, the plain reference elsewhere."""
    def run(fixture):
        result = mistake.outputs(fixture)
        if result is None:
            result = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                                       fixture.activations, fixture.inputs, calls=fixture.meta.get("calls"))
        dtype = port_dtype(fixture.config)   # as numpy-reference returns: float64 for a float64 layer
        cast = {k: np.asarray(v, dtype) for k, v in result.items() if k != "trace"}
        cast["trace"] = {k: np.asarray(v, dtype) for k, v in result["trace"].items()}
        return cast
    declare(version=__version__)(run)
    run.__name__ = attribute(mistake)
    return run


def implementation(mistake: Mistake) -> Implementation:
    """The mistaken port as the suite's ``Implementation`` (named ``mistake-<key>``)."""
    value = f"{__name__}:{attribute(mistake)}"
    return Implementation(f"mistake-{mistake.key}", value, __version__, _loader=lambda: run_with(mistake))


def __getattr__(name: str):
    mistake = BY_KEY.get(name.replace("_", "-"))
    if mistake is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} (a mistake key from "
                             f"conformance/mistakes.py with _ for -, e.g. forget_bias_twice)")
    return run_with(mistake)
