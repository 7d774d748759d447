"""The conformance suite: one test per (implementation, fixture), parametrized by the plug-in."""

import pytest

from .plugin import apply_ledger, record, state
from .mistakes import diagnose
from .suite import judge


def test_conformance(conformance_case, request):
    """The implementation reproduces the fixture's Keras outputs within its tolerance."""
    config = request.config
    verdict = apply_ledger(config, conformance_case, judge(conformance_case, state(config)["timeout"], diagnose))
    record(config, conformance_case, verdict)
    if verdict.status == "skipped":
        pytest.skip(verdict.message)
    if verdict.status == "xfailed":
        pytest.xfail(verdict.message)
    if verdict.status != "passed":
        pytest.fail(verdict.message, pytrace=False)
