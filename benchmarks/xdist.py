#!/usr/bin/env python3
"""Wall time of the suite serially and under pytest-xdist, per implementation.

    python benchmarks/xdist.py                                   # numpy-reference, keras, tflite
    python benchmarks/xdist.py --impl tflite --workers 2 --repeat 2

Each run is ``python -m pytest --pyargs conformance --impl NAME [-n N]`` in a fresh process, from a
scratch folder, so start-up (interpreter, plug-ins, fixture listing, library imports) counts.
Reported in README; never asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(impl: str, workers: int, extra: list[str]) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "conformance",
               "--impl", impl, *(["-n", str(workers)] if workers else []), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LSTM_CONFORMANCE_"))}
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting; the median is shown")
    parser.add_argument("--fixture-id", action="append", default=[], help="passed to the suite")
    args = parser.parse_args(argv)
    extra = [a for fid in args.fixture_id for a in ("--fixture-id", fid)]
    print(f"{'implementation':18} {'serial':>9} {f'-n {args.workers}':>9} {'speed-up':>9}")
    for impl in args.impl or ["numpy-reference", "keras", "tflite"]:
        serial = statistics.median(wall(impl, 0, extra) for _ in range(args.repeat))
        spread = statistics.median(wall(impl, args.workers, extra) for _ in range(args.repeat))
        print(f"{impl:18} {serial:8.1f}s {spread:8.1f}s {serial / spread:8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
