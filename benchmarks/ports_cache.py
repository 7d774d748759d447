"""Cold and warm runs of a port over the gallery: what the conversion cache saves.

Runs ``pytest --pyargs conformance --impl NAME`` twice in child processes with a fresh,
private cache folder (``LSTM_CONFORMANCE_CACHE``): the first run converts every fixture, the
second finds every conversion cached. Run it with the Python of the port's tox env, e.g.

    .tox/ports-tf2onnx/bin/python benchmarks/ports_cache.py --impl tf2onnx
    .tox/ports-openvino/bin/python benchmarks/ports_cache.py --impl openvino --impl openvino-f32

Prints one line per run: wall seconds and pytest's outcome line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time


def run_suite(impls: list[str], cache_dir: str, extra: list[str]) -> tuple[float, str]:
    env = {**os.environ, "LSTM_CONFORMANCE_CACHE": cache_dir, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("LSTM_CONFORMANCE_NO_CACHE", None)
    command = [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
               *[a for i in impls for a in ("--impl", i)], *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - started
    outcome = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)]
    return seconds, (outcome[-1].strip("= ") if outcome else f"exit {done.returncode}: {done.stderr[-300:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", required=True, help="implementation (repeatable)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, e.g. --fixture-id 'lstm-*'")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lstm-conformance-bench-cache-") as cache_dir:
        for label in ("cold", "warm"):
            seconds, outcome = run_suite(args.impl, cache_dir, args.pytest_args)
            print(f"{'+'.join(args.impl)} {label}: {seconds:.1f} s  ({outcome})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
