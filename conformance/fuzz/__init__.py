"""Differential fuzzing: find what the gallery misses, shrink it, and write the fixture for the bug report.

    lstm-conformance fuzz --impl my-port [--budget N | --seconds S] [--seed K] [--layer L] [--tag T] [--out DIR]
    pytest --pyargs conformance --impl my-port --conformance-fuzz N

Hypothesis draws configurations over everything the gallery covers (``space``), the implementation
is compared with the oracle (Keras when importable, else the numpy reference) by the suite's own
engine, and a counterexample is shrunk and written as a format-v1 fixture folder (``engine``) that
``verify`` accepts and the suite runs with ``--fixtures-dir``. ``entries`` is the part of the fixture
generator both share. Hypothesis is the optional extra ``lstm-conformance[fuzz]``: this module
imports it only when a search runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

DEFAULT_BUDGET = 300   # examples per search: finds every catalogued mistake (tests/meta/test_fuzz.py, benchmarks)
DEFAULT_OUT = "fuzz-fixtures"


def hypothesis_missing() -> str | None:
    """Why the fuzzer cannot run (with the install command), or None when Hypothesis is installed."""
    if importlib.util.find_spec("hypothesis") is None:
        from ..adapters.requires import extra_install
        return f"the fuzzer needs Hypothesis, which is not installed: {extra_install('fuzz')}"
    return None


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lstm-conformance fuzz``; ``main(args)`` runs it."""
    from ..judge.options import OPTIONS, dest
    suite_options = dict(OPTIONS)  # the suite's own --impl and --impl-timeout: one vocabulary
    parser.add_argument("--impl", dest="impl", **suite_options["--impl"])
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--budget", type=_positive(int), default=None, metavar="N",
                       help=f"examples to try (default {DEFAULT_BUDGET})")
    limit.add_argument("--seconds", type=_positive(float), default=None, metavar="S",
                       help="search for S seconds instead, in rounds of 100 examples (seeds K, K+1, ...)")
    parser.add_argument("--seed", type=int, default=0, metavar="K",
                        help="Hypothesis seed (default 0): the same seed and budget try the same examples")
    parser.add_argument("--layer", action="append", default=[], metavar="LAYER",
                        help="only this fixture layer: LSTM, GRU, SimpleRNN, Bidirectional, Stacked, ConvLSTM1D, "
                             "ConvLSTM2D (repeatable)")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="only configurations with this gallery tag, e.g. mask, go_backwards, stateful "
                             "(repeatable: all must hold)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help=f"where a counterexample's fixture folder is written (default ./{DEFAULT_OUT})")
    parser.add_argument("--oracle", choices=["auto", "keras", "reference"], default="auto",
                        help="what computes the expected values: auto (default) is Keras when it is importable "
                             "(Keras 3, TensorFlow backend), else the numpy reference")
    parser.add_argument("--no-database", action="store_true",
                        help="do not replay or record counterexamples in Hypothesis's database "
                             "($XDG_CACHE_HOME or ~/.cache, under lstm-conformance/hypothesis)")
    parser.add_argument("--impl-timeout", dest=dest("--impl-timeout"), **suite_options["--impl-timeout"])


def main(args: argparse.Namespace) -> int:
    """``lstm-conformance fuzz``: 0 no counterexample, 1 a counterexample (written and printed), 2 bad usage."""
    def usage(message: str) -> int:
        print(f"lstm-conformance fuzz: error: {message}", file=sys.stderr)
        return 2

    missing = hypothesis_missing()
    if missing:
        return usage(missing)
    import os

    from ..judge import registry
    from ..errors import ImplementationError
    from ..judge.options import ENV_IMPL, per_fixture_timeout
    from . import engine

    if not args.impl and not os.environ.get(ENV_IMPL):
        return usage("name the implementation to fuzz with --impl NAME (a registered name, module:attr or cmd:COMMAND)")
    try:
        impls = registry.select(args.impl)
        layers, tags = engine.check_space(args.layer, args.tag)
        timeout = per_fixture_timeout(args.impl_timeout)
        for impl in impls:
            impl.load()
        oracle = engine.choose_oracle(args.oracle)
    except (ValueError, ImplementationError) as exc:  # UnknownImplementation, FuzzUsageError, a bad timeout
        return usage(str(exc))
    found = False
    for impl in impls:
        try:
            result = engine.search(impl, oracle, seed=args.seed, budget=args.budget or DEFAULT_BUDGET,
                                   seconds=args.seconds, layers=layers, tags=tags, out=Path(args.out),
                                   database=not args.no_database, timeout=timeout)
        except engine.FuzzUsageError as exc:
            return usage(str(exc))
        print(result.text(), flush=True)
        found |= result.finding is not None
    return 1 if found else 0


# -- pytest ----------------------------------------------------------------------------------------

def add_pytest_option(group) -> None:
    """The pytest options (``pytest --pyargs conformance --impl X --conformance-fuzz N``)."""
    group.addoption("--conformance-fuzz", type=int, default=None, metavar="N",
                    help="also fuzz each --impl with N examples against Keras (else the numpy reference); "
                         "a counterexample fails and is written as a fixture (needs Hypothesis: the [fuzz] extra)")
    group.addoption("--conformance-fuzz-seed", type=int, default=0, metavar="K",
                    help="the fuzzer's Hypothesis seed (default 0)")
    group.addoption("--conformance-fuzz-out", default=DEFAULT_OUT, metavar="DIR",
                    help=f"where the fuzzer writes counterexample fixtures (default ./{DEFAULT_OUT})")
    group.addoption("--conformance-fuzz-oracle", choices=["auto", "keras", "reference"], default="auto",
                    help="the fuzzer's oracle: auto (default: Keras when importable, else the numpy reference), "
                         "keras or reference")
