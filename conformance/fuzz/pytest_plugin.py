"""The fuzzer's pytest hooks: ``--conformance-fuzz N`` and the collection of ``conformance/fuzz/suite.py``.

Loaded by the suite's plug-in (``pytest_plugins`` in ``conformance/plugin.py``), or alone with
``-p conformance.fuzz.pytest_plugin``. The fuzz tests are collected only when ``--conformance-fuzz``
is given; a normal run neither imports Hypothesis nor reports anything about fuzzing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import add_pytest_option, hypothesis_missing

SUITE = Path(__file__).resolve().parent / "suite.py"


def pytest_addoption(parser):
    add_pytest_option(parser.getgroup("lstm-conformance", "LSTM conformance suite"))


def pytest_configure(config):
    budget = config.getoption("conformance_fuzz")
    if budget is not None:
        if budget < 1:
            raise pytest.UsageError("--conformance-fuzz N: N must be a positive number of examples")
        missing = hypothesis_missing()
        if missing:
            raise pytest.UsageError(f"--conformance-fuzz: {missing}")


def pytest_collect_file(file_path, parent):
    if parent.config.getoption("conformance_fuzz") is not None and Path(file_path).resolve() == SUITE:
        return pytest.Module.from_parent(parent, path=file_path)
    return None
