"""The suite's options, named once: the pytest plug-in and ``lstm-conformance run`` both take exactly these.

Only the standard library is imported here, so any module (the registry, the subprocess
protocol, the CLI) can read the timeout rule and the environment variables without a cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_IMPL = "LSTM_CONFORMANCE_IMPL"
ENV_FIXTURES = "LSTM_CONFORMANCE_FIXTURES"
ENV_TIMEOUT = "LSTM_CONFORMANCE_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
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
                            help=f"per-fixture timeout for run() (default ${ENV_TIMEOUT} or {DEFAULT_TIMEOUT_S:g})")),
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


def fixtures_dir(option: str | None = None) -> Path:
    """``--fixtures-dir``, else ``$LSTM_CONFORMANCE_FIXTURES``, else the shipped gallery."""
    from .fixtures import gallery_dir
    chosen = option or os.environ.get(ENV_FIXTURES)
    return Path(chosen) if chosen else gallery_dir()


def shown_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_SHOWN if k in os.environ}
