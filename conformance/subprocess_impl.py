"""``--impl cmd:COMMAND``: check an engine in any language through JSON on stdin and stdout.

The command (split with ``shlex``, run without a shell) is started once per fixture in a
process group of its own. It reads one request document on stdin: the JSON export of the
fixture (see ``conformance.export``) with only the weights and inputs in ``arrays``, no
expected outputs and no trace. It writes one JSON object on stdout, either::

    {"outputs": {"output": {"shape": [...], "data": [...]}, "state_h": ..., "state_c": ...,
                 "trace": {"i": {...}, ...}}}          # trace optional; dtype optional (float32)
    {"unsupported": "reason"}                           # a skip with the reason

A timeout, a non-zero exit, stdout that is not exactly one such object, or outputs with the
wrong names or shapes is an ``EngineError`` (an ``ImplementationError``) naming the command, the
fixture, the exit code and the tail of stderr, once: the suite shows no Python traceback for it,
since ours says nothing about the engine. See SPEC.md, "Subprocess protocol".
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
from typing import Callable, Mapping, Sequence

from .compare import validate
from .errors import EngineError, Unsupported
from .export import array_from_json, dumps, fixture_to_json
from .options import per_fixture_timeout  # the suite's rule: --impl-timeout aside, both read the same

PROTOCOL = 1
STDERR_LINES = 20

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group (its children too); already gone is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_all() -> None:
    """Leave nothing behind when pytest exits while a run is still in a timed-out worker thread."""
    with _live_lock:
        for proc in list(_live):
            _kill_group(proc)


def default_timeout() -> float:
    return per_fixture_timeout()


def command_implementation(command: str, timeout: float | None = None) -> Callable:
    """A ``run(fixture)`` that asks ``command`` for the outputs, one process per fixture.

    ``timeout`` defaults to ``$LSTM_CONFORMANCE_TIMEOUT`` or 60 s. The process is killed a
    little before that (10%, at most 1 s), so it ends before the suite's own per-fixture
    timeout with the same value, and the failure carries the command's stderr tail.
    """
    argv = shlex.split(command)
    if not argv:
        raise EngineError("cmd: needs a command, e.g. --impl 'cmd:./my-engine --flag'")
    executable = shutil.which(argv[0])
    if executable is None:
        raise EngineError(f"command {command!r}: {argv[0]!r} is not an executable file or on PATH")
    limit = default_timeout() if timeout is None else float(timeout)
    kill_after = limit - min(1.0, 0.1 * limit)

    def run(fixture) -> dict:
        names = [*fixture.meta.get("weights", []), *fixture.meta.get("inputs", [])]
        request = dumps(fixture_to_json(fixture, names)).encode("ascii")
        try:
            stdout, stderr, code, timed_out = _communicate(argv, request, kill_after)
        except OSError as exc:  # e.g. not executable, bad interpreter line
            raise EngineError(f"command {command!r} on fixture {fixture.id!r} could not start: {exc}") from None

        def fail(problem: str, details: Sequence[str] = ()) -> EngineError:
            listed = "".join(f"\n  - {d}" for d in details)
            return EngineError(f"command {command!r} on fixture {fixture.id!r}: {problem} (exit code {code})"
                               f"{':' if listed else ''}{listed}\n{_tail(stderr)}")

        if timed_out:
            raise fail(f"timed out after {kill_after:g} s; its process group was killed")
        if code != 0:
            raise fail("exited with a non-zero status")
        result = parse_response(stdout, fail)
        problems = validate(fixture, result)  # checked here, where the stderr tail is still at hand
        if problems:
            raise fail("returned unusable output", problems)
        return result

    # no run.version: the protocol carries none, and the command is already the implementation's name
    run.info = lambda: {"protocol": f"json-{PROTOCOL}", "executable": executable}
    run.command = command
    return run


def _communicate(argv: list[str], request: bytes, timeout: float):
    """Run once with ``request`` on stdin; returns (stdout, stderr, exit code, timed out)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    with _live_lock:
        _live.add(proc)
    try:
        try:
            stdout, stderr = proc.communicate(request, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            try:  # the group is dead, so the pipes close; bounded in case a child escaped the group
                stdout, stderr = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = b"", b"(stderr unavailable: a child outside the process group kept the pipes open)"
        _kill_group(proc)  # children the command left running
        return stdout, stderr, proc.wait(), timed_out
    finally:
        with _live_lock:
            _live.discard(proc)


def _tail(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").rstrip().splitlines()
    if not lines:
        return "stderr: (empty)"
    shown = lines[-STDERR_LINES:]
    head = f"stderr (last {len(shown)} of {len(lines)} lines):" if len(lines) > len(shown) else "stderr:"
    return "\n".join([head, *("  | " + line for line in shown)])


def _preview(data: bytes, limit: int = 200) -> str:
    text = data.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_response(stdout: bytes, fail: Callable[[str], Exception]) -> dict:
    """Decode the one JSON object on stdout into the suite's ``{name: ndarray, "trace": {...}}``."""
    try:
        text = stdout.decode("utf-8")
        response, end = json.JSONDecoder().raw_decode(text.lstrip())
        rest = text.lstrip()[end:].strip()
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"stdout is not a JSON object ({exc}); stdout starts {_preview(stdout)}") from None
    if rest:
        raise fail(f"stdout has more after the JSON object: {_preview(rest.encode())}")
    if not isinstance(response, dict) or not ({"outputs", "unsupported"} & response.keys()):
        raise fail(f"stdout must be {{\"outputs\": {{...}}}} or {{\"unsupported\": \"reason\"}}, "
                   f"got {_preview(stdout)}")
    if "unsupported" in response:
        raise Unsupported(str(response["unsupported"]))
    outputs = response["outputs"]
    if not isinstance(outputs, Mapping):
        raise fail(f"'outputs' must be an object of output name -> array, got {_preview(stdout)}")
    try:
        result = {name: array_from_json(entry, f"output {name!r}")
                  for name, entry in outputs.items() if name != "trace"}
        if "trace" in outputs:
            trace = outputs["trace"]
            if not isinstance(trace, Mapping):
                raise ValueError(f"'trace' must be an object of gate name -> array, got {_preview(str(trace).encode())}")
            result["trace"] = {gate: array_from_json(entry, f"trace {gate!r}") for gate, entry in trace.items()}
    except ValueError as exc:
        raise fail(str(exc)) from None
    return result
