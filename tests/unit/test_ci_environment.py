"""Where the suite writes (the user's cache folder, as the user set it) and where CI gets torch from.

tox hands an environment only the variables in ``pass_env``; without ``XDG_CACHE_HOME`` there the
conversions and Hypothesis's files went to ``~/.cache`` whatever the user set. ``.ci/run`` sources
``.ci/torch-source.sh``, which names the torch it will install and stops rather than let uv pull
PyPI's CUDA build; its decisions are run here in a real bash against real folders.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.repo import REPO
from helpers.venvs import clean_env


def _tox() -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "tox.ini")
    return config


def test_tox_passes_the_users_cache_folder_on():
    names = [line.split("#")[0].strip() for line in _tox()["testenv"]["pass_env"].splitlines()]
    assert "XDG_CACHE_HOME" in names and "LSTM_CONFORMANCE_*" in names


def test_the_conversions_and_the_hypothesis_database_follow_xdg_cache_home(tmp_path):
    """In a child process with only XDG_CACHE_HOME set (HOME elsewhere): both land under it, nothing in ~ or the cwd."""
    home, xdg, work = tmp_path / "home", tmp_path / "xdg", tmp_path / "work"
    for folder in (home, work):
        folder.mkdir()
    env = clean_env(HOME=str(home), XDG_CACHE_HOME=str(xdg), PYTHONPATH=str(REPO))
    env.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)  # set by the outer session's conftest: the child decides alone

    def run(*args):
        return subprocess.run([sys.executable, "-m", "conformance", *args], capture_output=True, text=True,
                              env=env, cwd=work, timeout=300)
    shown = run("cache", "info")
    assert shown.returncode == 0, shown.stderr
    assert f"conversion cache: {xdg / 'lstm-conformance' / 'conversions'}" in shown.stdout
    fuzzed = run("fuzz", "--impl", "conformance.fuzz.mistaken:h_c_swapped", "--oracle", "reference",
                 "--budget", "20", "--out", str(tmp_path / "found"))
    assert fuzzed.returncode == 1, fuzzed.stdout + fuzzed.stderr  # the mistake is found...
    database = Path(re.search(r"database (\S+)", fuzzed.stdout).group(1).rstrip(";"))
    assert database.is_relative_to(xdg / "lstm-conformance" / "hypothesis")  # ...and recorded under XDG_CACHE_HOME
    assert any(p.is_file() for p in database.rglob("*"))
    assert not list(home.rglob("*")) and not list(work.iterdir())


# -- .ci/torch-source.sh --------------------------------------------------------------------------------

def _pin() -> str:
    deps = _tox()["testenv"]["deps"]
    return re.search(r"^\s*torch: torch==(\S+)\s*$", deps, re.M).group(1)


@pytest.fixture
def source(tmp_path):
    """Run ``torch_source`` in bash with only the given variables (no pip configuration, a private HOME)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    (tmp_path / "home").mkdir()

    def run(**variables: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "PIP_CONFIG_FILE": os.devnull,
               **variables}
        script = ". .ci/torch-source.sh && torch_source && echo UV_FIND_LINKS=${UV_FIND_LINKS:-} " \
                 "UV_EXTRA_INDEX_URL=${UV_EXTRA_INDEX_URL:-}"
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    return run


def _wheels(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_a_find_links_folder_with_the_cpu_wheel_is_handed_to_uv(source, tmp_path):
    wheel = f"torch-{_pin()}+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    empty, held = _wheels(tmp_path / "other"), _wheels(tmp_path / "wheels", wheel)
    done = source(PIP_FIND_LINKS=f"{empty} {held}")
    assert done.returncode == 0, done.stderr
    assert f"torch source: {held / wheel} (find-links from PIP_FIND_LINKS" in done.stdout
    assert f"UV_FIND_LINKS={empty},{held} " in done.stdout  # uv reads a comma-separated list


def test_find_links_without_the_cpu_wheel_stop_the_run(source, tmp_path):
    cuda_only = _wheels(tmp_path / "wheels", f"torch-{_pin()}-cp311-cp311-manylinux_2_28_x86_64.whl")
    done = source(UV_FIND_LINKS=str(cuda_only))
    assert done.returncode == 1 and "torch source" not in done.stdout
    assert f"no CPU build of torch=={_pin()}" in done.stderr and "CUDA" in done.stderr and str(cuda_only) in done.stderr
    allowed = source(UV_FIND_LINKS=str(cuda_only), CI_ALLOW_ANY_TORCH="1")
    assert allowed.returncode == 0 and "CI_ALLOW_ANY_TORCH=1" in allowed.stdout


def test_with_nothing_configured_the_pytorch_cpu_index_is_used(source):
    done = source()
    assert done.returncode == 0, done.stderr
    assert "UV_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in done.stdout


def test_a_cpu_index_already_set_is_kept(source, tmp_path):
    cuda_only = _wheels(tmp_path / "wheels")
    done = source(UV_INDEX="https://download.pytorch.org/whl/cpu", UV_FIND_LINKS=str(cuda_only))
    assert done.returncode == 0 and "the PyTorch CPU index, from the UV_* index variables" in done.stdout
