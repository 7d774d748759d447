#!/usr/bin/env python3
"""Per-environment, per-implementation timings of a tox matrix run, from its junit files.

    tox -e tf221,jax && python benchmarks/env_times.py results          # every results/<env>/junit.xml
    python benchmarks/env_times.py results/jax/junit.xml before/jax.xml  # chosen files

For each file: the session's wall time and, per implementation, the cases, their summed
time, the median and the slowest case (pytest's ``call`` time per case: the implementation,
its comparison and, for the first case, the library's import).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

CASE = re.compile(r"test_conformance\[(?P<case>.+)\]")


def implementation_of(case: str, known: list[str]) -> str:
    """``keras-load-lstm-basic`` -> ``keras-load``: the longest known implementation name that prefixes the case."""
    for name in sorted(known, key=len, reverse=True):
        if case.startswith(name + "-"):
            return name
    return case.split("-", 1)[0]


def summarize(path: Path, known: list[str]) -> tuple[float, dict[str, list[tuple[float, str]]]]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    wall = sum(float(s.get("time", 0)) for s in suites)
    times: dict[str, list[tuple[float, str]]] = {}
    for case in root.iter("testcase"):
        match = CASE.fullmatch(case.get("name", ""))
        if match:
            name = implementation_of(match["case"], known)
            times.setdefault(name, []).append((float(case.get("time", 0)), match["case"]))
    return wall, times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="junit.xml files, or folders holding <env>/junit.xml")
    parser.add_argument("--impl", action="append", default=["numpy-reference", "keras", "keras-load", "tflite",
                                                            "onnxruntime", "torch"],
                        help="implementation names, to split case ids (default: the built-in ones)")
    args = parser.parse_args(argv)
    files = []
    for path in args.paths:
        files += sorted(path.glob("*/junit.xml")) if path.is_dir() else [path]
    if not files:
        print("no junit.xml found", file=sys.stderr)
        return 1
    print(f"{'file':32} {'impl':16} {'cases':>5} {'total s':>8} {'median ms':>10} {'max ms':>8}  slowest")
    for path in files:
        wall, times = summarize(path, args.impl)
        label = path.parent.name if path.name == "junit.xml" else path.stem
        print(f"{label:32} {'(session)':16} {sum(map(len, times.values())):5} {wall:8.1f}")
        for name, cases in sorted(times.items()):
            seconds = [t for t, _ in cases]
            slowest = max(cases)
            print(f"{'':32} {name:16} {len(cases):5} {sum(seconds):8.1f} {1000 * statistics.median(seconds):10.0f} "
                  f"{1000 * slowest[0]:8.0f}  {slowest[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
