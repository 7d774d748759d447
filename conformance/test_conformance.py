"""The conformance suite: one test per (implementation, fixture), parametrized by the plug-in."""

import pytest

from .plugin import run_case
from .judge.verdict import Status


@pytest.fixture
def conformance_verdict(conformance_case, request):
    """The case, judged while pytest sets the test up: a broken fixture or plug-in (``error`` in the suite's
    table) is then a pytest error too, so the table and pytest's closing line count it alike."""
    verdict = run_case(request.node, conformance_case)
    if verdict.status == Status.ERROR:
        pytest.fail(verdict.message, pytrace=False)
    return verdict


def test_conformance(conformance_verdict):
    """The implementation reproduces the fixture's Keras outputs within its tolerance."""
    verdict = conformance_verdict
    if verdict.status == Status.SKIPPED:
        pytest.skip(verdict.message)
    if verdict.status == Status.PARTIAL:  # what it returned agrees, but it returned only part: not a pass
        pytest.skip(f"partial: {verdict.message}")
    if verdict.status == Status.XFAILED:
        pytest.xfail(verdict.message)
    if verdict.status != Status.PASSED:
        pytest.fail(verdict.message, pytrace=False)
