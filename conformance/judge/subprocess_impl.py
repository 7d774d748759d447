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
import select
import signal
import subprocess
import threading
import time
from typing import Callable, Mapping, Sequence

from .compare import validate
from .contract import implementation
from ..errors import EngineError, Unsupported
from ..format.export import array_from_json, dumps, fixture_to_json
from .options import run_limit  # the suite's rule: the case's fixture.timeout

PROTOCOL = 1
STDERR_LINES = 20
STDOUT_LIMIT = 64 * 2 ** 20   # bytes of stdout kept: the gallery's largest response is about 6 MB
STDERR_LIMIT = 64 * 2 ** 10   # only the tail of stderr is kept (its last 20 lines are shown)
CHUNK = 2 ** 16

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def kill_group(proc: subprocess.Popen) -> None:
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
            kill_group(proc)


def command_implementation(command: str, timeout: float | None = None) -> Callable:
    """A ``run(fixture)`` that asks ``command`` for the outputs, one process per fixture.

    ``timeout`` defaults to the case's own (``fixture.timeout``, which ``--impl-timeout`` sets). The
    process is killed a little before that (10%, at most 1 s), so it ends before the suite's own
    per-fixture timer, and the failure carries the command's stderr tail.
    """
    argv = shlex.split(command)
    if not argv:
        raise EngineError("cmd: needs a command, e.g. --impl 'cmd:./my-engine --flag'")
    executable = shutil.which(argv[0])
    if executable is None:
        raise EngineError(f"command {command!r}: {argv[0]!r} is not an executable file or on PATH")
    def run(fixture) -> dict:
        limit = run_limit(fixture) if timeout is None else float(timeout)
        kill_after = limit - min(1.0, 0.1 * limit)
        names = [*fixture.meta.get("weights", []), *fixture.meta.get("inputs", [])]
        request = dumps(fixture_to_json(fixture, names)).encode("ascii")
        try:
            stdout, stderr, code, timed_out, overflow = _communicate(argv, request, kill_after)
        except OSError as exc:  # e.g. not executable, bad interpreter line
            raise EngineError(f"command {command!r} on fixture {fixture.id!r} could not start: {exc}") from None

        def fail(problem: str, details: Sequence[str] = ()) -> EngineError:
            listed = "".join(f"\n  - {d}" for d in details)
            return EngineError(f"command {command!r} on fixture {fixture.id!r}: {problem} (exit code {code})"
                               f"{':' if listed else ''}{listed}\n{_tail(stderr)}")

        if overflow:
            raise fail(f"wrote more than {STDOUT_LIMIT} bytes on stdout (the limit); its process group was killed")
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
    run.command = command
    return implementation(info=lambda: {"protocol": f"json-{PROTOCOL}", "executable": executable})(run)


def _communicate(argv: list[str], request: bytes, timeout: float):
    """Run once with ``request`` on stdin; returns (stdout, stderr, exit code, timed out, stdout overflowed).

    stdout and stderr are read as they come (``select``), never held beyond ``STDOUT_LIMIT`` and the last
    ``STDERR_LIMIT`` bytes: an engine writing without end is killed at the limit, not buffered.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    with _live_lock:
        _live.add(proc)
    try:
        threading.Thread(target=_feed, args=(proc.stdin, request), daemon=True).start()
        stdout, stderr, timed_out, overflow = bytearray(), bytearray(), False, False
        streams = {proc.stdout.fileno(): stdout, proc.stderr.fileno(): stderr}
        deadline = time.monotonic() + timeout
        while streams:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select(list(streams), [], [], min(left, 0.5))
            if not ready and proc.poll() is not None:  # exited; a child outside its group holds the pipes
                break
            for fd in ready:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    del streams[fd]
                    continue
                kept = streams[fd]
                kept += chunk
                if kept is stderr and len(stderr) > STDERR_LIMIT:
                    del stderr[:len(stderr) - STDERR_LIMIT]
                if kept is stdout and len(stdout) > STDOUT_LIMIT:
                    overflow = True
                    streams.clear()
                    break
        kill_group(proc)  # a hung or flooding engine, and any children the command left running
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # not in its group any more (setsid): killed on its own
            proc.kill()
            code = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        return bytes(stdout), bytes(stderr), code, timed_out, overflow
    finally:
        with _live_lock:
            _live.discard(proc)


def _feed(stdin, request: bytes) -> None:
    """Write the request and close stdin (in a thread: an engine that never reads must not block us)."""
    try:
        stdin.write(request)
        stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


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
