"""The ``litert`` port: LiteRT's interpreter on the very flatbuffer the ``tflite`` adapter converts.

Real conversions into a private cache; the two interpreters are compared array for array.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

from conformance import gallery_dir, list_fixtures
from conformance.adapters import litert, tflite

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}



@pytest.mark.parametrize("fixture_id", ["lstm-seed-question", "stateful-lstm-three-calls"])
def test_litert_runs_the_tflite_conversion_and_matches_keras(fixture_id):
    fixture = FIXTURES[fixture_id]
    ours = litert.run(fixture.isolated())
    assert "cached conversion" not in litert.notes(fixture_id)
    theirs = tflite.run(fixture.isolated())
    assert "cached conversion" in tflite.notes(fixture_id)  # the same cache entry: the same flatbuffer
    assert sorted(ours) == sorted(theirs) == sorted(fixture.expected)
    for key in ours:
        np.testing.assert_allclose(ours[key], fixture.expected[key], rtol=1e-5, atol=1e-5)
    assert litert.run.info()["interpreter"] == "ai_edge_litert"
