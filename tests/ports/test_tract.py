"""The ``tract`` port: tract on the graph tf2onnx writes (real conversions, a private cache)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tract")
pytest.importorskip("tf2onnx")
pytest.importorskip("tensorflow")

from conformance import ConversionError, gallery_dir, list_fixtures
from conformance.adapters import tract

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}



def test_a_fused_bidirectional_lstm_with_initial_states_matches_keras():
    fixture = FIXTURES["bidirectional-lstm-return-state"]
    result = tract.run(fixture.isolated())
    assert sorted(result) == sorted(fixture.expected)
    for key in result:
        np.testing.assert_allclose(result[key], fixture.expected[key], rtol=1e-5, atol=1e-5)


def test_a_loop_graph_is_a_conversion_error_with_tracts_own_words():
    with pytest.raises(ConversionError, match=r"tract .*Unimplemented\(Loop\)"):
        tract.run(FIXTURES["lstm-mask-trailing"].isolated())
