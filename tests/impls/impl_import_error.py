"""A plug-in whose import fails: its dependency is not installed."""

import lstm_conformance_missing_dependency  # noqa: F401  (does not exist, on purpose)


def run(fixture):  # pragma: no cover - never reached
    raise AssertionError("unreachable")
