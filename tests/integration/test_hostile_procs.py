"""Plug-ins that take their process down, hold the GIL, vandalise the suite or flood it (SPEC 13.2, 10.4).

The plug-ins are real modules named with ``--impl module:attr`` (third-party: isolated by
default) and the suite runs in a subprocess as a user runs it, ``numpy-reference`` beside them.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hostile
from conformance.options import DEFAULT_TIMEOUT_S, SECONDS_PER_VALUE, scaled_timeout

MODULE = "proc_impls"
IMPLS = textwrap.dedent('''
    """Plug-ins that attack their process (written by tests/integration/test_hostile_procs.py)."""
    import os
    import signal
    import threading
    import time

    import numpy as np

    from conformance import reference


    def _right(fixture):
        return {k: v for k, v in reference.run(fixture).items() if k != "trace"}

    def exits(fixture):
        os._exit(0)

    def segfaults(fixture):
        os.kill(os.getpid(), signal.SIGSEGV)

    def holds_the_gil(fixture):
        sum(range(10 ** 13))  # one C call: no other thread runs until it returns

    def _patch():
        from conformance import compare
        compare.close = lambda got, want, tolerance: np.ones(np.shape(want), bool)

    def vandal_thread(fixture):
        threading.Thread(target=lambda: (time.sleep(0.2), _patch()), daemon=True).start()
        time.sleep(0.5)
        return _right(fixture)

    def wrong(fixture):
        return {k: v + 0.5 for k, v in _right(fixture).items()}
''')
FLOOD = "import sys\nwhile True:\n    sys.stdout.write('7' * 65536)\n"
SLEEPER = "import time\ntime.sleep(60)\n"
FIXTURES = ("lstm-seed-question", "lstm-units1")


def _m(attr: str) -> str:
    return f"{MODULE}:{attr}"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / f"{MODULE}.py").write_text(IMPLS)
    (folder / "flood.py").write_text(FLOOD)
    (folder / "sleeper.py").write_text(SLEEPER)
    return folder


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory) -> Path:
    return hostile.copied_gallery(tmp_path_factory.mktemp("gallery"), FIXTURES)


def _all_accounted(run, impls) -> None:
    assert run.returncode == 1, run.output[-3000:]
    assert sorted((c["impl"], c["fixture"]) for c in run.cases) == sorted((i, f) for i in impls for f in FIXTURES)
    assert run.statuses("numpy-reference") == {f: "passed" for f in FIXTURES}, run.output[-3000:]


@pytest.mark.parametrize("isolation", ["--isolate", "--no-isolate"])
def test_os_exit_is_a_crashed_case(plugin_dir, fixtures_dir, isolation):
    """os._exit(0) in run(): each case is crashed, the run goes on and exits 1, the summary holds every case."""
    run = hostile.run_suite(fixtures_dir, isolation, impls=[_m("exits"), "numpy-reference"], pythonpath=[plugin_dir])
    _all_accounted(run, [_m("exits"), "numpy-reference"])
    assert run.statuses(_m("exits")) == {f: "crashed" for f in FIXTURES}
    said = "exit code 0" if isolation == "--isolate" else r"os\._exit\(0\) called in the suite's process"
    assert all(re.search(said, c["message"]) for c in run.cases if c["impl"] == _m("exits")), run.cases


def test_segfault_isolated_is_a_crashed_case(plugin_dir, fixtures_dir):
    run = hostile.run_suite(fixtures_dir, impls=[_m("segfaults"), "numpy-reference"], pythonpath=[plugin_dir])
    _all_accounted(run, [_m("segfaults"), "numpy-reference"])
    assert run.statuses(_m("segfaults")) == {f: "crashed" for f in FIXTURES}
    assert all("killed by signal SIGSEGV" in c["message"] for c in run.cases if c["impl"] == _m("segfaults"))


@pytest.mark.parametrize("attr", ["exits", "segfaults"])
def test_crashed_xdist_worker_cases_are_counted(plugin_dir, fixtures_dir, attr):
    """-n 2, in-process: a worker that dies leaves its case ``crashed`` in the controller's summary and table."""
    run = hostile.run_suite(fixtures_dir, "-n", "2", "--no-isolate", impls=[_m(attr), "numpy-reference"],
                            pythonpath=[plugin_dir], timeout=300)
    _all_accounted(run, [_m(attr), "numpy-reference"])
    assert run.statuses(_m(attr)) == {f: "crashed" for f in FIXTURES}
    assert re.search(rf"^{re.escape(_m(attr))} +0 +0 +0 +0 +0 +2 +0$", run.output, re.M), run.output[-3000:]


def test_in_process_segfault_leaves_an_incomplete_summary(plugin_dir, fixtures_dir):
    """Serial and in-process, a segfault ends the run: non-zero, and the summary written first lists every case."""
    run = hostile.run_suite(fixtures_dir, "--no-isolate", impls=[_m("segfaults"), "numpy-reference"],
                            pythonpath=[plugin_dir])
    assert run.returncode != 0
    summary = json.loads(sorted(fixtures_dir.parent.glob("summary-*.json"), key=lambda p: p.stat().st_mtime)[-1]
                         .read_text())
    assert summary["complete"] is False
    assert sorted(summary["not_run"]) == sorted(f"{i}-{f}" for i in (_m("segfaults"), "numpy-reference")
                                                for f in FIXTURES)


def test_gil_holding_hang_is_cut_off(plugin_dir, fixtures_dir):
    """A run() that holds the GIL in one C call fails at a 1 s limit: its child is killed; the run goes on."""
    started = time.perf_counter()
    run = hostile.run_suite(fixtures_dir, "--impl-timeout", "1", impls=[_m("holds_the_gil"), "numpy-reference"],
                            pythonpath=[plugin_dir], timeout=120)
    elapsed = time.perf_counter() - started
    _all_accounted(run, [_m("holds_the_gil"), "numpy-reference"])
    assert run.statuses(_m("holds_the_gil")) == {f: "failed" for f in FIXTURES}
    assert all("did not return within 1 s" in c["message"] for c in run.cases if c["impl"] == _m("holds_the_gil"))
    assert elapsed < 60, f"the run took {elapsed:.0f} s"


def test_vandal_thread_cannot_change_later_verdicts(plugin_dir, fixtures_dir):
    """A plug-in's thread that patches compare.close patches its own child: a wrong port still fails."""
    run = hostile.run_suite(fixtures_dir, impls=[_m("vandal_thread"), _m("wrong"), "numpy-reference"],
                            pythonpath=[plugin_dir])
    assert run.statuses(_m("vandal_thread")) == {f: "passed" for f in FIXTURES}, run.output[-3000:]
    assert run.statuses(_m("wrong")) == {f: "failed" for f in FIXTURES}, run.output[-3000:]


def _max_rss_mb(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``command`` under a small Python parent and read the peak RSS of its children (getrusage)."""
    probe = ("import resource, subprocess, sys\n"
             "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, errors='replace')\n"
             "sys.stdout.write(done.stdout + done.stderr)\n"
             "print('RC', done.returncode, 'MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env,
                          timeout=300)
    rc, rss = re.search(r"^RC (-?\d+) MAXRSS (\d+)$", done.stdout, re.M).groups()
    return subprocess.CompletedProcess(command, int(rc), done.stdout, done.stderr), int(rss) / 1024


def test_endless_stdout_engine_is_cut_at_the_limit(plugin_dir, fixtures_dir):
    """A cmd: engine writing stdout without end fails at 64 MiB; the suite's peak RSS stays bounded."""
    command = [sys.executable, "-m", "conformance", "run", "--fixtures-dir", str(fixtures_dir),
               "--fixture-id", FIXTURES[1], "--impl-timeout", "20", "--impl", f"cmd:{sys.executable} "
               f"{plugin_dir / 'flood.py'}"]
    done, rss_mb = _max_rss_mb(command, hostile.clean_env())
    assert done.returncode == 1, done.stdout[-3000:]
    assert "wrote more than 67108864 bytes on stdout (the limit); its process group was killed" in done.stdout
    assert rss_mb < 500, f"peak RSS {rss_mb:.0f} MB"


def test_impl_timeout_reaches_cmd_engines(plugin_dir, fixtures_dir):
    """--impl-timeout 2: the engine is killed at its own limit (10% early), with its message, not after 60 s."""
    started = time.perf_counter()
    run = hostile.run_suite(fixtures_dir, "--impl-timeout", "2",
                            impls=[f"cmd:{sys.executable} {plugin_dir / 'sleeper.py'}"], timeout=120)
    assert run.returncode == 1, run.output[-3000:]
    for case in run.cases:
        assert case["status"] == "failed"
        assert re.search(r"timed out after 1\.8 s; its process group was killed", case["message"]), case
    assert time.perf_counter() - started < 60


def test_default_timeout_scales_with_the_fixture(gallery):
    """The default grows with the declared values (scale fixtures get minutes); an explicit one is as given."""
    by_id = {f.id: f for f in gallery}
    small, big = by_id["lstm-units1"].meta, by_id["scale-lstm-128u-500t"].meta
    values = sum(math.prod(s["shape"]) for s in big["arrays"].values())
    expected = DEFAULT_TIMEOUT_S + SECONDS_PER_VALUE * values
    assert scaled_timeout(DEFAULT_TIMEOUT_S, big, False) == pytest.approx(expected)
    assert scaled_timeout(DEFAULT_TIMEOUT_S, big, False) > 2 * DEFAULT_TIMEOUT_S
    assert scaled_timeout(DEFAULT_TIMEOUT_S, small, False) < DEFAULT_TIMEOUT_S + 1
    assert scaled_timeout(5.0, big, True) == 5.0
