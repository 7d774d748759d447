"""A deliberately wrong LSTM: reads the gate blocks in ONNX order (i, o, f, c) instead of Keras' (i, f, c, o).

The mistake a port makes when it copies weights straight into an ONNX-style
kernel. It reuses the reference's cell with the wrong column slices, so the only
difference from a passing implementation is the gate order.
"""

import numpy as np

from conformance.reference import forward

ONNX_ORDER = ("i", "o", "f", "c")


def _wrong(fixture):
    units = int(fixture.config["units"])
    gates = {name: {g: [k * units, (k + 1) * units] for k, g in enumerate(ONNX_ORDER)} for name in fixture.gates}
    return forward(fixture.layer, fixture.config, fixture.weights, gates, fixture.activations, fixture.inputs)


def run(fixture):
    """Outputs only, as most ports return."""
    return {k: v.astype(np.float32) for k, v in _wrong(fixture).items() if k != "trace"}


def run_with_trace(fixture):
    """Outputs plus the per-step gate trace, so the suite can name the first diverging gate."""
    result = _wrong(fixture)
    return {k: (v if k == "trace" else v.astype(np.float32)) for k, v in result.items()}
