"""The suite's options, named once: the pytest plug-in and ``lstm-conformance run`` both take exactly these.

Only the standard library is imported here, so any module (the registry, the subprocess
protocol, the CLI) can read the timeout rule and the environment variables without a cycle.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENV_IMPL = "LSTM_CONFORMANCE_IMPL"
ENV_FIXTURES = "LSTM_CONFORMANCE_FIXTURES"
ENV_TIMEOUT = "LSTM_CONFORMANCE_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
# the default timeout grows with the fixture: 1 s more per 1000 values its arrays declare (SPEC 7.3), so the
# scale family gets minutes on a loaded machine; an explicit --impl-timeout or $LSTM_CONFORMANCE_TIMEOUT is as given
SECONDS_PER_VALUE = 1e-3
# environment variables a case may depend on: shown in the header, recorded in the JSON summary
ENV_SHOWN = (ENV_IMPL, ENV_FIXTURES, ENV_TIMEOUT, "KERAS_BACKEND", "TF_USE_LEGACY_KERAS")
# what a case's result may depend on: carried by its repro line (with the implementation's own ``run.repro_env``)
REPRO_ENV = ("KERAS_BACKEND", "TF_USE_LEGACY_KERAS")

# (flag, argparse/pytest keyword arguments); dest is the flag without dashes, underscores for hyphens
OPTIONS = (
    ("--impl", dict(action="append", default=[], metavar="NAME",
                    help="implementation to check: a registered name, module:attr or cmd:COMMAND "
                         f"(repeatable; default ${ENV_IMPL} or every registered one)")),
    ("--fixtures-dir", dict(default=None, metavar="DIR",
                            help=f"folder of fixtures to run (default ${ENV_FIXTURES} or the shipped gallery)")),
    ("--fixture-id", dict(action="append", default=[], metavar="GLOB",
                          help="only fixtures whose id matches this glob (repeatable: any may match; "
                               "each must match something)")),
    ("--fixture-tag", dict(action="append", default=[], metavar="TAG",
                           help="only fixtures carrying this tag (repeatable: all must match)")),
    ("--impl-timeout", dict(type=float, default=None, metavar="SECONDS",
                            help=f"per-fixture timeout for run(), used as given for every fixture (default "
                                 f"${ENV_TIMEOUT}, else {DEFAULT_TIMEOUT_S:g} s plus 1 s per "
                                 f"{1 / SECONDS_PER_VALUE:g} values the fixture's arrays declare)")),
    ("--isolate", dict(action=argparse.BooleanOptionalAction, default=None,
                       help="run each Python implementation in a supervised child process of its own: a timeout "
                            "kills it, a crash is that case's 'crashed' (default: third-party plug-ins and "
                            "module:attr isolated, the built-ins in-process; SPEC 13.2)")),
    ("--conformance-json", dict(default=None, metavar="PATH",
                                help="write the JSON summary (status and max error per case) to PATH")),
    ("--ledger", dict(default=None, metavar="PATH",
                      help="divergence ledger of expected Keras failures (default: the one shipped in the package)")),
    ("--no-ledger", dict(action="store_true", default=False, help="apply no divergence ledger")),
)


def dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def per_fixture_timeout(option: float | None = None) -> float:
    """``option``, else ``$LSTM_CONFORMANCE_TIMEOUT``, else 60 s; ValueError (saying why) if not positive."""
    value = option
    if value is None:
        raw = os.environ.get(ENV_TIMEOUT)
        try:
            value = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ValueError(f"{ENV_TIMEOUT}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"the per-fixture timeout must be a positive number of seconds, got {value:g}")
    return value


def explicit_timeout(option: float | None = None) -> bool:
    """Whether the timeout was given (``--impl-timeout`` or the variable): then it is used as given."""
    return option is not None or bool(os.environ.get(ENV_TIMEOUT))


def scaled_timeout(base: float, meta, explicit: bool) -> float:
    """The timeout of one fixture: ``base`` as given when explicit, else ``base`` plus ``SECONDS_PER_VALUE``
    for every value its arrays declare (from ``fixture.yaml``'s shapes: nothing is loaded)."""
    if explicit:
        return base
    try:
        values = sum(_product(spec["shape"]) for spec in meta["arrays"].values())
    except Exception:  # noqa: BLE001 - a malformed arrays table (the fixture's own error) gets the base
        values = 0
    return base + SECONDS_PER_VALUE * values


def _product(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def run_limit(fixture) -> float:
    """The seconds a ``run(fixture)`` has: the suite sets ``fixture.timeout`` on each case's copy (SPEC 7.4);
    outside the suite, the default rule."""
    limit = getattr(fixture, "timeout", None)
    if limit:
        return float(limit)
    return scaled_timeout(per_fixture_timeout(), getattr(fixture, "meta", {}), explicit_timeout())


def fixtures_dir(option: str | None = None) -> Path:
    """``--fixtures-dir``, else ``$LSTM_CONFORMANCE_FIXTURES``, else the shipped gallery."""
    from ..format.fixtures import gallery_dir
    chosen = option or os.environ.get(ENV_FIXTURES)
    return Path(chosen) if chosen else gallery_dir()


def shown_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_SHOWN if k in os.environ}
