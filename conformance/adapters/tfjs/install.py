"""The tfjs port's node modules: where they live, whether they are there, and ``npm ci`` to put them there.

``package.json`` and ``package-lock.json`` (beside this module) pin ``@tensorflow/tfjs`` 4.22.0; the folder is
``$LSTM_CONFORMANCE_TFJS_MODULES``, else ``<user cache>/node/tfjs-4.22.0``; node_modules never go into the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ...cache import user_cache_dir

TFJS_VERSION = "4.22.0"
ENV_MODULES = "LSTM_CONFORMANCE_TFJS_MODULES"
PACKAGE_DIR = Path(__file__).resolve().parent
RUNNER = PACKAGE_DIR / "runner.js"
PACKAGE_FILES = ("package.json", "package-lock.json")


def modules_dir() -> Path:
    """Where the node modules live: ``$LSTM_CONFORMANCE_TFJS_MODULES``, else ``<user cache>/node/tfjs-4.22.0``."""
    explicit = os.environ.get(ENV_MODULES)
    return Path(explicit) if explicit else user_cache_dir() / "node" / f"tfjs-{TFJS_VERSION}"


def install_command(where: Path | None = None) -> str:
    where = modules_dir() if where is None else where
    return (f"python -m conformance.adapters.tfjs --install "
            f"(runs npm ci --prefix {where} on the shipped package-lock.json)")


def installed_version(where: Path | None = None) -> str | None:
    """The version of ``@tensorflow/tfjs`` in the modules folder, or None when it is not there."""
    where = modules_dir() if where is None else where
    try:
        data = json.loads((where / "node_modules" / "@tensorflow" / "tfjs" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("version")) if isinstance(data, dict) else None


def node_executable() -> str | None:
    return shutil.which("node")


def readiness() -> str | None:
    """Why the port cannot run here (node or the modules missing), with the fix; None when it can."""
    if node_executable() is None:
        return ("needs Node.js, which is not on PATH: install Node.js 18 or later (e.g. apt-get install nodejs npm), "
                f"then the node modules: {install_command()}")
    found = installed_version()
    if found is None:
        return f"needs @tensorflow/tfjs {TFJS_VERSION} in {modules_dir()}, which is not installed: {install_command()}"
    if found != TFJS_VERSION:
        return (f"needs @tensorflow/tfjs {TFJS_VERSION}, but {modules_dir()} holds {found}: {install_command()}")
    return None


def install(where: Path | None = None, npm: str | None = None) -> Path:
    """Install the pinned node modules into ``where`` (default ``modules_dir()``) with ``npm ci``."""
    where = Path(modules_dir() if where is None else where)
    npm = npm or shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: install Node.js with npm (e.g. apt-get install nodejs npm)")
    where.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_FILES:
        shutil.copyfile(PACKAGE_DIR / name, where / name)
    command = [npm, "ci", "--prefix", str(where), "--no-audit", "--no-fund"]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit code {done.returncode}):\n{done.stdout[-4000:]}")
    found = installed_version(where)
    if found != TFJS_VERSION:
        raise RuntimeError(f"{' '.join(command)} ran, but {where} holds @tensorflow/tfjs {found}, not {TFJS_VERSION}")
    return where


# -- the node process ----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.tfjs",
                                     description="The node modules of the tfjs port (TensorFlow.js "
                                                 f"{TFJS_VERSION}, pure-JS CPU backend).")
    parser.add_argument("--install", action="store_true",
                        help="copy package.json and package-lock.json into the modules folder and run npm ci there")
    parser.add_argument("--prefix", type=Path, default=None,
                        help=f"the modules folder (default: ${ENV_MODULES}, else {modules_dir()})")
    args = parser.parse_args(argv)
    where = args.prefix or modules_dir()
    if args.install:
        try:
            install(where)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"installed @tensorflow/tfjs {TFJS_VERSION} into {where}")
        return 0
    found = installed_version(where)
    print(f"modules folder: {where}\n@tensorflow/tfjs: {found or 'not installed'}\n"
          f"node: {node_executable() or 'not on PATH'}")
    if found != TFJS_VERSION:
        print(f"install with: {install_command(where)}")
    return 0 if found == TFJS_VERSION and node_executable() else 1

