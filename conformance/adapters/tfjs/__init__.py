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

The package: ``install`` (the node modules, ``npm ci``; ``python -m conformance.adapters.tfjs``), ``node`` (the
process), ``translate`` (config -> tfjs request, tfjs's answer -> output names); this module is the entry point.
"""

from __future__ import annotations

import subprocess

import numpy as np

from ...errors import ConversionError, Unsupported
from ...judge.contract import implementation
from .install import (ENV_MODULES, PACKAGE_DIR, PACKAGE_FILES, RUNNER, TFJS_VERSION, install_command,
                      installed_version, main, modules_dir, node_executable, readiness)
from .node import RunnerDied, ask, greeting, runner_pid, shutdown, starts
from .translate import _named, layer_args, request_for

__all__ = ["ENV_MODULES", "PACKAGE_DIR", "PACKAGE_FILES", "RUNNER", "TFJS_VERSION", "ConversionError", "RunnerDied",
           "Unsupported", "ask", "info", "install_command", "installed_version", "layer_args", "main", "modules_dir",
           "node_executable", "notes", "readiness", "request_for", "run", "runner_pid", "shutdown", "starts",
           "supports"]

_NOTES: dict[str, str] = {}

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
    hello = greeting()
    if hello:
        details["node"] = hello.get("node")
        details["tfjs-layers"] = hello.get("tfjs-layers")
    else:
        if not _NODE_VERSION:
            try:
                _NODE_VERSION.append(subprocess.run([node_executable(), "--version"], capture_output=True, text=True,
                                                    timeout=10).stdout.strip())
            except (OSError, subprocess.SubprocessError):
                _NODE_VERSION.append("unknown")
        details["node"] = _NODE_VERSION[0]
    return details



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
    from ...judge.options import run_limit
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
