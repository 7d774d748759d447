"""The fuzzer inside the suite: ``pytest --pyargs conformance --impl X --conformance-fuzz N``.

One test per implementation: N Hypothesis examples against the oracle (Keras when importable, else
the numpy reference). A counterexample fails the test with the fuzzer's report: the shrunk
configuration, the suite's message for the fixture written to ``--conformance-fuzz-out`` (with the
mistake named when the catalogue knows it), its citation and the repro commands. Collected only with
``--conformance-fuzz`` (``pytest_plugin.pytest_collect_file``): its name matches no test pattern, so
a normal run never sees it.
"""

from pathlib import Path

import pytest

from ..judge import registry
from ..judge.options import per_fixture_timeout
from . import engine


def pytest_generate_tests(metafunc):
    if "fuzzed_impl" in metafunc.fixturenames:
        impls = registry.select(metafunc.config.getoption("impl", default=None) or ())
        metafunc.parametrize("fuzzed_impl", impls, ids=[impl.name for impl in impls])


def test_fuzz(fuzzed_impl, request):
    """The implementation agrees with the oracle on every configuration the fuzzer draws."""
    config = request.config
    try:
        oracle = engine.choose_oracle(config.getoption("conformance_fuzz_oracle"))
    except engine.FuzzUsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    result = engine.search(fuzzed_impl, oracle, seed=config.getoption("conformance_fuzz_seed"),
                           budget=config.getoption("conformance_fuzz"),
                           out=Path(config.getoption("conformance_fuzz_out")),
                           timeout=per_fixture_timeout(config.getoption("impl_timeout", default=None)))
    print(result.text())
    if result.finding is not None:
        pytest.fail(result.text(), pytrace=False)
    if not result.examples:
        pytest.skip(f"{fuzzed_impl.name}: every fuzzed example was unsupported ({', '.join(result.skipped)})")
