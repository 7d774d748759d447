"""A cold run says once per tool what it is converting and where it is kept; a warm run says it reused them.

Run through the real plug-in and the real ``tflite`` port (TensorFlow's converter) on two fixtures, serially
and under pytest-xdist, with the conversion cache in a temporary folder.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (extra 'keras' of lstm-conformance)")

from helpers.venvs import clean_env

FIXTURES = ("lstm-basic", "lstm-go-backwards")


def suite(cache_dir, *extra: str) -> str:
    selection = [a for f in FIXTURES for a in ("--fixture-id", f)]
    done = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "--impl", "tflite", *selection,
                           "-p", "no:cacheprovider", *extra], capture_output=True, text=True, timeout=600,
                          env=clean_env(LSTM_CONFORMANCE_CACHE=str(cache_dir)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_cold_run_names_each_tool_once_and_a_warm_run_reuses(tmp_path, workers):
    cold = suite(tmp_path, *workers)
    where = tmp_path / "conversions" / "tflite"
    announced = [line for line in cold.splitlines() if "tflite: converting each fixture's model once" in line]
    assert len(announced) == 1 and f"kept in {where}" in announced[0], cold[-3000:]
    built = re.search(r"^conversions: tflite: (\d+) built in \d+ s, 0 reused from the cache; kept in ", cold, re.M)
    assert built and int(built[1]) >= len(FIXTURES), cold[-3000:]  # a model per fixture at least (twins: more)
    warm = suite(tmp_path, *workers)
    assert "converting each fixture's model once" not in warm, warm[-3000:]
    assert f"conversions: tflite: none built, {built[1]} reused from the cache\n" in warm, warm[-3000:]
