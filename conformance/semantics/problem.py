"""A layer problem: the six things that decide what a recurrent layer computes, as one value.

The reference computes it, ``wrappers`` takes it apart into plain layers (each a ``Part``, a problem with a
prefix), the mistakes change it (``diagnosis.algebra``) and the generator draws it (``generate.entries``).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class Problem:
    """A fixture's layer, config, weights, gate map, activation definitions and inputs, and its stateful calls."""
    layer: str              # LSTM, GRU, SimpleRNN, ConvLSTM1D/2D, Bidirectional, Stacked
    config: Mapping
    weights: Mapping
    gates: Mapping
    activations: Mapping
    inputs: Mapping         # x, mask, initial_state_<s> (prefixed in a wrapper)
    calls: Mapping | None = None   # stateful: steps per call, reset_before

    @classmethod
    def of(cls, fixture) -> "Problem":
        """A fixture's problem (weights and inputs copied into plain dicts: a changed copy never reaches it)."""
        return cls(fixture.layer, fixture.config, dict(fixture.weights), fixture.gates, fixture.activations,
                   dict(fixture.inputs), fixture.meta.get("calls"))

    def replace(self, **changes) -> "Problem":
        return dataclasses.replace(self, **changes)
