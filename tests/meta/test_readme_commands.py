"""Every command README.md gives is run here as written, and what it prints is checked.

A new command in README gets a test by itself; one this module does not know how to run fails. What is
substituted, and why:
- README's placeholders stand for a user's own things and get real ones: ``DIR`` a folder holding fixtures;
  ``my-port`` and ``my_port:run`` README's own port skeleton (its ``...`` filled with the reference
  computation) with README's entry-point table, installed by README's ``pip install -e .`` into a fresh venv
  beside the suite's wheel; ``./my-engine`` the JavaScript engine of examples/js-port (needs Node.js).
- ``.venv/bin/`` is this env (tox's ``tests`` env installs ``.[dev]``, which pins what ``.[keras]`` pins: checked
  below), so the environment-making steps (``python3 -m venv``, ``pip install -e ".[keras]"``, ``pip install tox``)
  are not repeated; ``tox`` itself is what ``.ci/run`` runs (tests/meta/test_docs.py).
- Every command reads its fixtures from ``$LSTM_CONFORMANCE_FIXTURES``: a four-fixture copy of the gallery, so the
  whole module takes seconds a command instead of minutes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.repo import REPO
from helpers.venvs import clean_env

pytestmark = pytest.mark.slow   # a venv, a wheel and a dozen pytest runs: not the quick loop

README = (REPO / "README.md").read_text()
HERE = Path(sys.executable).parent          # this env's bin: what README's `.venv/bin/` names
SMALL = ["lstm-seed-question", "lstm-mask-trailing", "gru-reset-before-mask-trailing", "stateful-lstm-three-calls"]
SETUP = {"python3 -m venv .venv", 'pip install "tox>=4.11" "tox-uv>=1.11"', "tox"}
KERAS_EXTRA = '.venv/bin/pip install -e ".[keras]"'
PORT_INSTALL = "pip install -e ."


def readme_commands() -> list[str]:
    """Every command of README's ```sh blocks as written (comments dropped, ``&&`` chains cut apart)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()   # a comment after the command
            commands += [part.strip() for part in line.split(" && ") if part.strip()]
    return commands


def readme_port_source() -> str:
    """README's port skeleton with its ``...`` filled with the reference's LSTM computation."""
    code = re.search(r"```python\n(# my_port/__init__.py\n.*?)```", README, flags=re.S).group(1)
    return code.replace("    ...", "    from conformance.reference import forward\n"
                        "    out = forward('LSTM', fixture.config, fixture.weights, fixture.gates, "
                        "fixture.activations, fixture.inputs)\n"
                        "    output, h, c = out['output'], out['state_h'], out['state_c']", 1)


@pytest.fixture(scope="module")
def small_gallery(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme-fixtures")
    for fixture_id in SMALL:
        shutil.copytree(REPO / "fixtures" / fixture_id, folder / fixture_id)
    return folder


@pytest.fixture(scope="module")
def port_venv(make_venv, conformance_wheel, tmp_path_factory):
    """A fresh venv with the suite's wheel, where README's ``pip install -e .`` installs README's port."""
    venv = make_venv("readme-port")
    venv.pip_install(str(conformance_wheel))
    package = tmp_path_factory.mktemp("my-port")
    (package / "my_port").mkdir()
    (package / "my_port" / "__init__.py").write_text(readme_port_source())
    table = re.search(r"```toml\n# pyproject.toml of your package\n(.*?)```", README, flags=re.S).group(1)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "my-port"\nversion = "0.3.1"\n\n' + table)
    done = run(PORT_INSTALL, cwd=package, env=clean_env(venv))
    assert done.returncode == 0, f"{PORT_INSTALL} of README's port failed:\n{done.stdout[-3000:]}"
    engine = venv.workdir / "my-engine"
    engine.write_text(f"#!/bin/sh\nexec node {REPO / 'examples' / 'js-port' / 'main.js'}\n")
    engine.chmod(0o755)
    return venv


def run(command: str, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def test_readme_gives_the_commands_this_module_runs():
    commands = readme_commands()
    assert SETUP <= set(commands) and KERAS_EXTRA in commands and PORT_INSTALL in commands, commands
    assert sum(c.split()[0].endswith("pytest") for c in commands) >= 6


def test_the_keras_extra_is_pinned_as_the_tests_env_installs_it():
    """``.venv/bin/`` is run as this env: the ``keras`` extra must pin nothing ``dev`` does not."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["keras"]) <= set(extras["dev"]), (extras["keras"], extras["dev"])


@pytest.mark.parametrize("command", [c for c in readme_commands()
                                     if c not in SETUP | {KERAS_EXTRA, PORT_INSTALL}], ids=lambda c: c[:80])
def test_readme_command_runs(command, small_gallery, request, tmp_path):
    """The command exits 0 and prints what it is for: a pytest run passes cases and fails none."""
    words = shlex.split(command)
    own_port = any(w in ("my-port", "my_port:run", "cmd:./my-engine") for w in words)
    if "cmd:./my-engine" in words and not shutil.which("node"):
        pytest.skip("Node.js is not installed: ./my-engine stands for examples/js-port, a Node engine")
    if own_port:
        venv = request.getfixturevalue("port_venv")
        env, cwd = clean_env(venv), venv.workdir
    else:
        env, cwd = clean_env(), tmp_path
        env["PATH"] = os.pathsep.join([str(HERE), env["PATH"]])
    env["LSTM_CONFORMANCE_FIXTURES"] = str(small_gallery)
    command = command.replace(".venv/bin/", f"{HERE}/").replace(" DIR", f" {small_gallery}")
    head = words[0].rsplit("/", 1)[-1]
    if head not in ("pytest", "lstm-conformance"):
        pytest.fail(f"README gives a command this test does not know how to run: {command}")
    done = run(command + (" -p no:cacheprovider" if head == "pytest" else ""), cwd=cwd, env=env)
    out = done.stdout
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{out[-4000:]}"
    if head == "pytest":
        last = out.strip().splitlines()[-1]
        assert re.search(r"\d+ passed", last) and "failed" not in last and "error" not in last, last
    else:
        assert out.strip(), f"{command} printed nothing"
        sub = words[1]
        if sub == "show":
            assert "lstm-seed-question@sha256:ad5559e1" in out
        elif sub == "list":
            listed = {line.split()[0] for line in out.splitlines() if line.strip() and not line.startswith(("(", "id "))}
            assert listed == {"gru-reset-before-mask-trailing"}, out
        elif sub == "verify":
            assert f"{len(SMALL)} of {len(SMALL)} fixtures verified" in out, out
        elif sub == "export":
            target = cwd / words[-1]
            assert sorted(p.name for p in target.iterdir()), f"export wrote nothing to {target}"
