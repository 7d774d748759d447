"""Broken plug-ins, one failure each; every other implementation in the run must be unaffected."""

import numpy as np

from conformance.reference import run as reference


def raises(fixture):
    raise RuntimeError(f"deliberate failure in impl_broken.raises on {fixture.id}")


def returns_nan(fixture):
    result = {k: v for k, v in reference(fixture).items() if k != "trace"}
    result["state_c"] = np.full_like(result["state_c"], np.nan)
    return result


def wrong_shape(fixture):
    result = {k: v for k, v in reference(fixture).items() if k != "trace"}
    result["output"] = result["output"][..., None]   # one axis too many
    return result
