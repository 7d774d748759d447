"""The conformance suite: one test per (implementation, fixture), parametrized by the plug-in."""

import pytest

from .plugin import run_case
from .verdict import Status


def test_conformance(conformance_case, request):
    """The implementation reproduces the fixture's Keras outputs within its tolerance."""
    verdict = run_case(request.node, conformance_case)
    if verdict.status == Status.SKIPPED:
        pytest.skip(verdict.message)
    if verdict.status == Status.PARTIAL:  # what it returned agrees, but it returned only part: not a pass
        pytest.skip(f"partial: {verdict.message}")
    if verdict.status == Status.XFAILED:
        pytest.xfail(verdict.message)
    if verdict.status != Status.PASSED:
        pytest.fail(verdict.message, pytrace=False)
