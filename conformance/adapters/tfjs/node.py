"""The tfjs port's Node.js process: one ``node runner.js MODULES`` per Python process, reused for every fixture.

One JSON line per request on stdin, one per response on stdout. A process that dies or hangs is reported with its
stderr tail in that case's error, and the next request starts a fresh one.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from ...errors import ConversionError, Unsupported
from .install import RUNNER, TFJS_VERSION, install_command, modules_dir, node_executable, readiness

STDERR_LINES = 20
START_TIMEOUT_S = 60.0   # loading @tensorflow/tfjs takes about a second; a loaded machine may take longer


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


def greeting() -> dict:
    """What the live node process said when it started (node and tfjs versions); empty when none has."""
    runner = _RUNNER
    return runner.hello if runner is not None else {}


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
        from ...judge.options import run_limit
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


