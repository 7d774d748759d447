"""The ``tfjs`` port: TensorFlow.js 4.22.0 layers (``@tensorflow/tfjs``, pure-JS CPU backend) in Node.js.

How the model is made. The fixture's layer is built in Node with ``tf.layers`` from the
fixture's Keras config, Keras 3 names mapped to tfjs's camelCase arguments
(``tf.layers.lstm/gru/simpleRNN/convLstm2d``, wrapped in ``tf.layers.bidirectional``), created on
a symbolic ``tf.input`` of the fixture's batch size (time axis open), given the fixture's weights
with ``layer.setWeights`` (matched by variable name), then applied eagerly to the inputs with
``layer.apply(x, {mask, initialState, training: false})``. This is chosen over
``tf.loadLayersModel`` with a Keras-style topology because tfjs models take no mask input:
a mask reaches a recurrent layer only as the ``mask`` argument of ``apply`` (or from a
``Masking`` layer, which would change ``x``), and the contract feeds the fixture's mask as
given. No TensorFlow is involved anywhere: the port is checkable on a machine without it.

- A Stacked fixture applies its layers in turn, each reading the previous output sequence,
  the same mask passed to every layer (as Keras propagates it).
- Every layer is built with ``returnState: true``, so that its final states can be read
  even where the fixture's config does not return them; in tfjs that flag only adds the
  states to what ``RNN.call`` returns (tfjs-layers/src/layers/recurrent.ts at tfjs-v4.22.0,
  lines 758-766), the computation is the same.
- Stateful fixtures use tfjs's own stateful layers, as a tfjs user would: ``stateful: true``,
  the batch size fixed when the layer is built, one ``apply`` per call (tfjs carries the
  states itself), ``layer.resetStates()`` before each call in ``reset_before`` (tfjs starts a
  stateful layer from zeros when it is built).
- ConvLSTM1D: tfjs 4.22.0 has ConvLSTM2D only; a ConvLSTM1D is run as a ConvLSTM2D over a
  second spatial axis of width 1 (kernel, strides and dilation 1 there), which computes the
  same thing; ``run.notes(id)`` says so for those fixtures.
- Activations are mapped by name (``hard_sigmoid`` -> tfjs's ``hardSigmoid``), as tfjs's own
  Keras-model loading does; what tfjs computes for a name is under test, not assumed.

Skips (``Unsupported``): a Keras option tfjs has no counterpart for (``zero_output_for_mask``),
GRU ``reset_after: true`` (tfjs's GRUCell refuses it: "only false is supported", recurrent.ts
lines 1289-1294 and 1337-1340), an activation tfjs has no name for; Node.js or the node modules
missing, with the command that installs them. Anything else tfjs throws while building the
layer, setting its weights or running it is a ``ConversionError`` naming tfjs, the fixture and
tfjs's own message.

The process. One ``node runner.js MODULES`` per Python process, started on first use and
reused for every fixture: one JSON line per request on stdin, one per response on stdout
(arrays as base64 float32). The node side keeps nothing between fixtures but its loaded
modules. A node process that dies or hangs is reported with its stderr tail in that case's
error, and the next fixture starts a fresh one.

The modules. ``conformance/adapters/tfjs/package.json`` and ``package-lock.json`` pin
``@tensorflow/tfjs`` 4.22.0; ``python -m conformance.adapters.tfjs --install`` copies them into
the modules folder and runs ``npm ci --prefix FOLDER`` there. The folder is
``$LSTM_CONFORMANCE_TFJS_MODULES``, else ``<user cache>/node/tfjs-4.22.0``
(``conformance.cache.user_cache_dir()``); node_modules never go into the working tree.
(``@tensorflow/tfjs-node`` is not used: its install downloads libtensorflow from outside npm.)
"""

from __future__ import annotations

import argparse
import atexit
import base64
import collections
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ..cache import user_cache_dir
from ..errors import ConversionError, Unsupported
from ..judge.contract import implementation
from ..semantics import wrappers

TFJS_VERSION = "4.22.0"
ENV_MODULES = "LSTM_CONFORMANCE_TFJS_MODULES"
PACKAGE_DIR = Path(__file__).resolve().parent / "tfjs"
RUNNER = PACKAGE_DIR / "runner.js"
PACKAGE_FILES = ("package.json", "package-lock.json")
STDERR_LINES = 20
START_TIMEOUT_S = 60.0   # loading @tensorflow/tfjs takes about a second; a loaded machine may take longer

# Keras activation name -> tfjs's (tfjs-layers/src/activations.ts class names)
ACTIVATIONS = {
    "tanh": "tanh", "sigmoid": "sigmoid", "hard_sigmoid": "hardSigmoid", "relu": "relu", "linear": "linear",
    "elu": "elu", "selu": "selu", "softplus": "softplus", "softsign": "softsign", "relu6": "relu6",
    "swish": "swish", "mish": "mish",
}
STATES = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",), "ConvLSTM1D": ("h", "c"), "ConvLSTM2D": ("h", "c")}
CLASSES = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simpleRNN",
           "ConvLSTM1D": "convLstm2d", "ConvLSTM2D": "convLstm2d"}
# Keras config key -> tfjs argument, per family (None: every family)
ARGS = {
    "units": "units", "activation": "activation", "use_bias": "useBias", "return_sequences": "returnSequences",
    "return_state": "returnState", "go_backwards": "goBackwards", "stateful": "stateful", "unroll": "unroll",
    "dropout": "dropout", "recurrent_dropout": "recurrentDropout",
}
ARGS_BY_LAYER = {
    # implementation: tfjs takes it and always runs its implementation 2 (recurrent.ts 1284-1287, 1529-1532)
    "LSTM": {"recurrent_activation": "recurrentActivation", "unit_forget_bias": "unitForgetBias",
             "implementation": "implementation"},
    "GRU": {"recurrent_activation": "recurrentActivation", "reset_after": "resetAfter",
            "implementation": "implementation"},
    "SimpleRNN": {},
    "ConvLSTM1D": {"recurrent_activation": "recurrentActivation", "unit_forget_bias": "unitForgetBias",
                   "filters": "filters", "kernel_size": "kernelSize", "strides": "strides", "padding": "padding",
                   "data_format": "dataFormat", "dilation_rate": "dilationRate"},
}
ARGS_BY_LAYER["ConvLSTM2D"] = ARGS_BY_LAYER["ConvLSTM1D"]
DATA_FORMATS = {"channels_last": "channelsLast", "channels_first": "channelsFirst"}
# Keras 3 defaults where tfjs's differ (tfjs: recurrentActivation 'hardSigmoid', resetAfter false): a key the
# config leaves out means Keras's default, never tfjs's
KERAS_DEFAULTS = {"LSTM": {"recurrent_activation": "sigmoid"},
                  "GRU": {"recurrent_activation": "sigmoid", "reset_after": True},
                  "ConvLSTM1D": {"recurrent_activation": "sigmoid"}, "ConvLSTM2D": {"recurrent_activation": "sigmoid"}}

_NOTES: dict[str, str] = {}


# -- where things are ----------------------------------------------------------------------------

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

class RunnerDied(Exception):
    """The node process exited (or closed stdout) before answering."""


class _Node:
    """One ``node runner.js MODULES`` process, its stdout read line by line, its stderr kept as a tail."""

    def __init__(self, node: str, modules: Path):
        self.argv = [node, str(RUNNER), str(modules)]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.lines: queue.Queue = queue.Queue()
        self.stderr: collections.deque = collections.deque(maxlen=200)
        self.next_id = 0
        self.hello: dict = {}
        threading.Thread(target=self._read_stdout, daemon=True, name=f"tfjs-stdout-{self.pid}").start()
        threading.Thread(target=self._read_stderr, daemon=True, name=f"tfjs-stderr-{self.pid}").start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        time.sleep(0.05)  # let the stderr reader catch the last lines of a process that just died
        lines = [line for line in self.stderr if line.strip()]
        if not lines:
            return "node stderr: (empty)"
        shown = lines[-STDERR_LINES:]
        head = f"node stderr (last {len(shown)} lines):" if len(lines) > len(shown) else "node stderr:"
        return "\n".join([head, *("  | " + line for line in shown)])

    def request(self, message: dict, timeout: float) -> dict:
        self.next_id += 1
        message = {**message, "id": self.next_id}
        try:
            self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise RunnerDied(f"could not write to it ({exc})") from None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                try:
                    code = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
                raise RunnerDied(f"it exited with code {code}" if code is not None else "it closed its stdout")
            try:
                response = json.loads(line)
            except ValueError:
                self.stderr.append("(stdout, not JSON) " + line.decode("utf-8", "replace").rstrip())
                continue
            if isinstance(response, dict) and response.get("id") == message["id"]:
                return response

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


_LOCK = threading.Lock()
_RUNNER: _Node | None = None
_STARTS = 0


@atexit.register
def shutdown() -> None:
    """Stop the node process (called at exit; tests call it to start from scratch)."""
    global _RUNNER
    runner, _RUNNER = _RUNNER, None
    if runner is not None:
        runner.kill()


def _runner(timeout: float) -> _Node:
    """The live node process, started (and greeted) when there is none or the last one died. Holds _LOCK."""
    global _RUNNER, _STARTS
    if _RUNNER is not None and _RUNNER.alive():
        return _RUNNER
    if _RUNNER is not None:
        _RUNNER.kill()
        _RUNNER = None
    reason = readiness()
    if reason:
        raise Unsupported(reason)
    node = _Node(node_executable(), modules_dir())
    _STARTS += 1
    try:
        hello = node.request({"op": "hello"}, min(timeout, START_TIMEOUT_S))
    except (RunnerDied, TimeoutError) as exc:
        node.kill()
        raise ConversionError(f"tfjs {TFJS_VERSION}: the node runner ({' '.join(node.argv)}) did not start: {exc}\n"
                              f"{node.tail()}") from None
    node.hello = hello.get("hello", {})
    if node.hello.get("tfjs") != TFJS_VERSION:
        node.kill()
        raise ConversionError(f"the node runner loaded @tensorflow/tfjs {node.hello.get('tfjs')!r}, "
                              f"not {TFJS_VERSION}: {install_command()}")
    _RUNNER = node
    return node


def runner_pid() -> int | None:
    """The pid of the live node process (None when none is running): one per Python process."""
    runner = _RUNNER
    return runner.pid if runner is not None and runner.alive() else None


def starts() -> int:
    """How many node processes this Python process has started."""
    return _STARTS


def ask(message: dict, what: str, timeout: float | None = None) -> dict:
    """Send one request to the node runner and return its response; ``what`` names the fixture in errors.

    A dead runner is a ``ConversionError`` with its stderr tail; a silent one is killed a little
    before the suite's per-fixture timeout (10%, at most 1 s early, like ``cmd:`` engines) and
    reported as a ``TimeoutError`` with its stderr tail. Either way the next request starts a new one.
    """
    global _RUNNER
    if timeout is None:
        from ..judge.options import run_limit
        limit = run_limit(None)
        timeout = limit - min(1.0, 0.1 * limit)
    started = time.monotonic()
    if not _LOCK.acquire(timeout=timeout):
        raise TimeoutError(f"tfjs: {what}: the node runner stayed busy with an earlier fixture for {timeout:g} s")
    try:
        node = _runner(timeout)
        try:
            return node.request(message, max(timeout - (time.monotonic() - started), 0.1))
        except RunnerDied as exc:
            _RUNNER = None
            node.kill()
            raise ConversionError(f"tfjs {TFJS_VERSION}: the node runner (pid {node.pid}) died while running {what}: "
                                  f"{exc}; a fresh one starts for the next fixture\n{node.tail()}") from None
        except TimeoutError as exc:
            _RUNNER = None
            node.kill()
            raise TimeoutError(f"tfjs {TFJS_VERSION}: the node runner (pid {node.pid}) gave {what} {exc}; its process "
                               f"group was killed and a fresh one starts for the next fixture\n{node.tail()}") from None
    finally:
        _LOCK.release()


# -- the fixture in tfjs terms ---------------------------------------------------------------------

def _encode(array, dtype=np.float32) -> dict:
    array = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"shape": list(array.shape), "dtype": "bool" if dtype is bool else "float32",
            "b64": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode(entry: Mapping) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(entry["b64"]), dtype="<f4")
    return data.reshape([int(n) for n in entry["shape"]]).astype(np.float32)


def _activation(name, role: str) -> str:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise Unsupported(f"the tfjs adapter maps no tfjs activation to Keras {role} {name!r} "
                          f"(mapped: {', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[name]


def layer_args(layer: str, config: Mapping) -> dict:
    """tfjs's arguments for a plain Keras layer config (Keras 3 names -> tfjs camelCase), or Unsupported."""
    if layer not in CLASSES:
        raise Unsupported(f"tfjs has no counterpart of Keras layer {layer!r}")
    known = {**ARGS, **ARGS_BY_LAYER[layer]}
    args: dict = {}
    for key, value in {**KERAS_DEFAULTS.get(layer, {}), **config}.items():
        if key == "zero_output_for_mask":
            if value:
                raise Unsupported("tfjs's recurrent layers have no zero_output_for_mask option (no such argument "
                                  f"in tfjs-layers at tfjs-v{TFJS_VERSION}; its rnn() always outputs the held state "
                                  "at a masked step, recurrent.ts lines 213-219)")
            continue
        if key == "cell_wrapper":
            raise Unsupported(f"this adapter builds tf.layers.{CLASSES[layer]}() only, not tf.layers.rnn() over "
                              f"cells (cell_wrapper={value!r}): a limit of the adapter, not of tfjs")
        if key not in known:
            raise Unsupported(f"tfjs's {CLASSES[layer]}() has no counterpart of Keras {layer} option {key}={value!r}")
        if key in ("activation", "recurrent_activation"):
            value = _activation(value, key)
        elif key == "data_format":
            if value not in DATA_FORMATS:
                raise Unsupported(f"tfjs has no data format {value!r}")
            value = DATA_FORMATS[value]
        elif key in ("kernel_size", "strides", "dilation_rate"):
            value = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if layer == "ConvLSTM1D":
                value = [*value, 1]  # the added spatial axis of width 1
        args[known[key]] = value
    args["returnState"] = True  # final states are always read; in tfjs this only adds them to what call() returns
    return args


def _layer_weights(layer: str, weights: Mapping, prefix: str = "") -> dict:
    """The layer's weights keyed by the tfjs variable name they go to (``kernel``, or ``forward/kernel``)."""
    found = {}
    for name, value in weights.items():
        if prefix and not name.startswith(prefix + "/"):
            continue
        key = name[len(prefix) + 1:] if prefix else name
        value = np.asarray(value, np.float32)
        if layer == "ConvLSTM1D" and key.rpartition("/")[2] in ("kernel", "recurrent_kernel"):
            value = value[:, None]  # (k, C, 4F) -> (k, 1, C, 4F)
        found[key] = _encode(value)
    return found


def _initial_states(layer: str, inputs: Mapping, prefix: str = "") -> list | None:
    """The layer's initial states in tfjs's order (h, then c), or None when the fixture gives none."""
    names = [wrappers.join(prefix, f"initial_state_{s}") for s in STATES[layer]]
    given = [n for n in names if n in inputs]
    if not given:
        return None
    if len(given) != len(names):
        raise ValueError(f"the fixture gives {given} but not {sorted(set(names) - set(given))}; "
                         f"tfjs's {CLASSES[layer]}() takes all of its initial states or none")
    states = [np.asarray(inputs[n], np.float32) for n in names]
    if layer == "ConvLSTM1D":
        states = [s[:, :, None] for s in states]  # (B, P, F) -> (B, P, 1, F)
    return [_encode(s) for s in states]


def request_for(fixture) -> tuple[dict, list]:
    """The runner request for a fixture, and the plan to name what tfjs returns: [(layer, prefix, kind)]."""
    layer, config, inputs = fixture.layer, fixture.config, fixture.inputs
    x = np.asarray(inputs["x"], np.float32)
    request: dict = {"fixture": fixture.id, "mergeMode": None, "calls": None}
    if layer == "Bidirectional":
        inner_layer = config["wrapped"]
        inner = {k: v for k, v in config.items() if k not in ("wrapped", "merge_mode")}
        states = [*(_initial_states(inner_layer, inputs, "forward") or []),
                  *(_initial_states(inner_layer, inputs, "backward") or [])]
        request.update(kind="bidirectional", mergeMode=config.get("merge_mode", "concat"), layers=[
            {"cls": CLASSES[inner_layer], "args": layer_args(inner_layer, inner),
             "weights": _layer_weights(inner_layer, fixture.weights), "initialState": states or None}])
        families = [inner_layer]
    elif layer == "Stacked":
        request["kind"] = "stacked"
        request["layers"] = []
        families = []
        for k, sub in enumerate(config["layers"]):
            prefix = wrappers.layer_prefix(k)
            request["layers"].append({"cls": CLASSES.get(sub["layer"]), "args": layer_args(sub["layer"], sub["config"]),
                                      "weights": _layer_weights(sub["layer"], fixture.weights, prefix),
                                      "initialState": _initial_states(sub["layer"], inputs, prefix)})
            families.append(sub["layer"])
    else:
        request.update(kind="single", layers=[
            {"cls": CLASSES.get(layer), "args": layer_args(layer, config),
             "weights": _layer_weights(layer, fixture.weights), "initialState": _initial_states(layer, inputs)}])
        families = [layer]
    if "ConvLSTM1D" in families:
        x = x[:, :, :, None]  # (B, T, S, C) -> (B, T, S, 1, C)
    request["x"] = _encode(x)
    request["mask"] = _encode(inputs["mask"], bool) if "mask" in inputs else None
    calls = fixture.meta.get("calls")
    if calls:
        request["calls"] = {"steps": [int(n) for n in calls["steps"]],
                            "reset_before": [int(k) for k in calls.get("reset_before", ())]}
    return request, families


def _named(fixture, families: list, passes: list) -> dict:
    """Name what tfjs returned (one list per layer per call, in tfjs's return order) with the contract's keys."""
    result: dict = {}
    calls = fixture.meta.get("calls")
    for k, layers in enumerate(passes):
        head = wrappers.call_prefix(k) if calls else ""
        if len(layers) != len(families):
            raise RuntimeError(f"tfjs returned results for {len(layers)} layer(s); the fixture has {len(families)}")
        for index, (family, arrays) in enumerate(zip(families, layers)):
            arrays = [_decode(a) for a in arrays]
            if family == "ConvLSTM1D":
                arrays = [a[..., 0, :] if a.ndim >= 2 and a.shape[-2] == 1 else a for a in arrays]
            states = [f"state_{s}" for s in STATES[family]]
            if fixture.layer == "Bidirectional":
                merge = fixture.config.get("merge_mode", "concat")
                outs = [wrappers.join(half, "output") for half in wrappers.HALVES] if merge is None else ["output"]
                names = outs + [wrappers.join(half, s) for half in wrappers.HALVES for s in states]
            elif fixture.layer == "Stacked":
                last = index == len(families) - 1
                prefix = wrappers.layer_prefix(index)
                names = ["output" if last else wrappers.join(prefix, "output"),
                         *(wrappers.join(prefix, s) for s in states)]
            else:
                names = ["output", *states]
            if len(arrays) != len(names):
                raise RuntimeError(f"tfjs's {fixture.layer} returned {len(arrays)} tensors (shapes "
                                   f"{[list(a.shape) for a in arrays]}); expected {len(names)}: {', '.join(names)}")
            result.update({wrappers.join(head, n): a for n, a in zip(names, arrays)})
    wanted = list(fixture.meta["outputs"])
    missing = [n for n in wanted if n not in result]
    if missing:
        raise RuntimeError(f"the tfjs adapter produced no {', '.join(missing)} (it has {', '.join(sorted(result))})")
    return {n: result[n] for n in wanted}


PHASES = {"build": "building the layer", "weights": "setting the weights", "run": "running the layer",
          "protocol": "reading the request"}


def supports(fixture) -> str | None:
    """Node.js or the node modules missing (with the fix), or a Keras option tfjs has no counterpart for."""
    reason = readiness()
    if reason:
        return reason
    try:
        request_for(fixture)
    except Unsupported as exc:
        return str(exc)
    return None


def notes(fixture_id: str) -> str | None:
    return _NOTES.get(fixture_id)


_NODE_VERSION: list = []


def info() -> dict:
    """Versions for the report header; cheap (no node start): the runner's own greeting once it has run."""
    details = {"tfjs": TFJS_VERSION, "backend": "cpu (pure JS)", "modules": str(modules_dir())}
    reason = readiness()
    if reason:
        return {"not_installed": reason}
    runner = _RUNNER
    if runner is not None and runner.hello:
        details["node"] = runner.hello.get("node")
        details["tfjs-layers"] = runner.hello.get("tfjs-layers")
    else:
        if not _NODE_VERSION:
            try:
                _NODE_VERSION.append(subprocess.run([node_executable(), "--version"], capture_output=True, text=True,
                                                    timeout=10).stdout.strip())
            except (OSError, subprocess.SubprocessError):
                _NODE_VERSION.append("unknown")
        details["node"] = _NODE_VERSION[0]
    return details




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


if __name__ == "__main__":
    sys.exit(main())


@implementation(
    version=TFJS_VERSION,
    info=info,
    notes=notes,
    supports=supports,
    returns_trace=False,  # tfjs exposes no per-gate values
    repro_env=(ENV_MODULES,))  # where the node modules are: a repro line needs the same folder
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point: the fixture's layer built and run by TensorFlow.js 4.22.0 in Node.js (see the module docstring)."""
    reason = readiness()
    if reason:
        raise Unsupported(reason)
    request, families = request_for(fixture)
    if "ConvLSTM1D" in families:
        _NOTES[fixture.id] = "ConvLSTM1D run as tf.layers.convLstm2d over an added spatial axis of width 1"
    from ..judge.options import run_limit
    limit = run_limit(fixture)  # the case's own timeout (--impl-timeout, or the default scaled with the fixture)
    response = ask(request, f"fixture {fixture.id!r}", limit - min(1.0, 0.1 * limit))
    if "error" in response:
        error = response["error"]
        message = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        if error.get("phase") == "build" and "does not support reset_after" in message:
            raise Unsupported(f"tfjs {TFJS_VERSION} refuses GRU reset_after=True ({message}); its GRUCell documents "
                              f"resetAfter 'only false is supported' (tfjs-layers/src/layers/recurrent.ts "
                              f"lines 1289-1294 and 1337-1340 at tfjs-v{TFJS_VERSION})")
        stack = "\n".join("  | " + line for line in str(error.get("stack", "")).splitlines()[1:6])
        raise ConversionError(f"tfjs {TFJS_VERSION} threw while {PHASES.get(error.get('phase'), error.get('phase'))} "
                              f"for fixture {fixture.id!r}: {message}" + (f"\n{stack}" if stack else ""))
    return _named(fixture, families, response["results"])
