#!/usr/bin/env python3
"""Time the suite: per implementation over the gallery, and collection of 1,000 synthetic fixtures.

    python benchmarks/bench.py                       # numpy-reference and keras (if installed)
    python benchmarks/bench.py --impl numpy-reference --synthetic 1000

Targets (reported in README, never asserted in tests): numpy-reference over the gallery < 3 s wall;
keras adapter < 150 ms per fixture after import; collecting 1,000 fixtures < 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance import list_fixtures, registry
from conformance.fixtures import load_fixture
from conformance.suite import Case, judge
from conformance.writer import finish_meta, write_fixture


def time_implementation(name: str, fixtures) -> dict:
    impl = registry.select([name])[0]
    started = time.perf_counter()
    impl.load()
    impl.info()  # imports the library (TensorFlow for keras)
    import_s = time.perf_counter() - started
    per_fixture, statuses = [], {}
    for fixture in fixtures:
        t0 = time.perf_counter()
        verdict = judge(Case(impl, fixture), timeout=120)
        per_fixture.append(time.perf_counter() - t0)
        statuses[verdict.status] = statuses.get(verdict.status, 0) + 1
    return {"impl": name, "import_s": import_s, "run_s": sum(per_fixture),
            "median_ms": 1000 * statistics.median(per_fixture), "max_ms": 1000 * max(per_fixture),
            "statuses": statuses}


def synthetic_gallery(root: Path, count: int) -> None:
    """``count`` valid fixtures: copies of a gallery fixture under new ids, re-digested."""
    template = load_fixture(list_fixtures().root / "lstm-basic")
    arrays = dict(template.arrays)
    for k in range(count):
        meta = {key: value for key, value in template.meta.items() if key not in ("arrays", "digest", "format_version")}
        meta["id"] = f"synthetic-{k:05d}"
        write_fixture(root, finish_meta(meta, arrays), arrays)


def time_collection(count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_gallery(Path(tmp), count)
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "--pyargs", "conformance",
                   "--impl", "numpy-reference", "--fixtures-dir", tmp, "-p", "no:cacheprovider"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        elapsed = time.perf_counter() - started
        collected = [line for line in done.stdout.splitlines() if "test_conformance[" in line]
    return {"fixtures": count, "collected": len(collected), "wall_s": elapsed, "returncode": done.returncode}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", action="append", default=[], help="implementations (default: numpy-reference, keras)")
    parser.add_argument("--synthetic", type=int, default=1000, help="fixtures for the collection benchmark (0: skip)")
    args = parser.parse_args(argv)
    fixtures = list_fixtures().fixtures
    for fixture in fixtures:
        fixture.arrays  # noqa: B018 - load once: the suite measures implementations, not disk
    print(f"gallery: {len(fixtures)} fixtures; python {sys.version.split()[0]}; {os.cpu_count()} cpus")
    for name in args.impl or ["numpy-reference", "keras"]:
        r = time_implementation(name, fixtures)
        print(f"{r['impl']:16} import {r['import_s']:6.2f} s | gallery {r['run_s']:6.2f} s | per fixture median "
              f"{r['median_ms']:7.1f} ms, max {r['max_ms']:7.1f} ms | {r['statuses']}")
    if args.synthetic:
        c = time_collection(args.synthetic)
        print(f"collection of {c['fixtures']} synthetic fixtures: {c['collected']} tests collected in "
              f"{c['wall_s']:.2f} s wall (pytest start-up included; exit {c['returncode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
