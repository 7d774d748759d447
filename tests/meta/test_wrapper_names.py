"""Wrapper names (``forward/…``, ``backward/…``, ``layers/<k>/…``, ``calls/<k>/…``) are built and read only by
``conformance.semantics.wrappers``: anywhere else in the package a string literal spelling one is a second
definition of the format's names, which this test finds (module and line)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from conformance.semantics import wrappers
from conformance.semantics.problem import Problem

PACKAGE = Path(__file__).resolve().parents[2] / "conformance"
PREFIXES = ("forward/", "backward/", "layers/", "calls/")


def spelled_names(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal, f-string pieces included, that starts with a wrapper prefix."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(PREFIXES):
            found.append((node.lineno, node.value))
    return found


def test_no_module_but_wrappers_spells_a_wrapper_name():
    home = PACKAGE / "semantics" / "wrappers.py"
    spelled = [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}" for path in sorted(PACKAGE.rglob("*.py"))
               if path != home for line, text in spelled_names(path)]
    assert not spelled, "wrapper names spelled outside semantics/wrappers.py:\n" + "\n".join(spelled)


def test_the_finder_sees_plain_and_formatted_literals(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('a = "calls/0/output"\nb = f"layers/{k}"\nc = "``layers/<k>`` in a docstring"\n')
    assert spelled_names(module) == [(1, "calls/0/output"), (2, "layers/")]


def test_names_built_by_wrappers_read_back():
    name = wrappers.join(wrappers.call_prefix(12), "state_h")
    assert name == "calls/12/state_h" and wrappers.call_index(name) == 12
    assert wrappers.call_index(wrappers.join(wrappers.layer_prefix(1), "output")) is None
    assert wrappers.join("", "output") == "output"
    assert wrappers.under("layers/1/x", wrappers.layer_prefix(1)) and not wrappers.under("layers/10/x", "layers/1")


def test_a_part_is_a_problem_of_one_plain_layer():
    """A stack's parts carry the stack's problem cut per layer: weights unprefixed, its own activations."""
    weights = {"layers/0/kernel": np.zeros(1), "layers/1/kernel": np.ones(1)}
    activations = {"layers/0": {"activation": "tanh"}, "layers/1": {"activation": "relu"}}
    stack = Problem("Stacked", {"layers": [{"layer": "GRU", "config": {}}, {"layer": "LSTM", "config": {}}]},
                    weights, {}, activations, {"x": np.zeros((1, 2, 1))})
    first, second = wrappers.stacked_parts(stack)
    assert isinstance(second, Problem) and second.calls is None
    assert (second.prefix, second.layer, second.activations) == ("layers/1", "LSTM", {"activation": "relu"})
    assert list(second.weights) == ["kernel"] and second.weights["kernel"] is weights["layers/1/kernel"]
    assert "x" in first.inputs and "x" not in second.inputs  # filled in with layer 0's sequence as the stack runs
