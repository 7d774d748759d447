"""``--isolate``: a Python implementation run in a supervised child process of its own (SPEC 13.2).

The parent keeps the fixture, the comparison and the verdict; the child (``python -m
conformance.isolation``) imports the plug-in and calls it. They speak length-prefixed frames on
two pipes: a JSON header and raw array bytes, decoded with the dtype and shape the header names
(never pickle: nothing the child sends is code). A reply late past the case's timeout kills the
child's process group; a child that dies (``os._exit``, a signal, a segfault) is the case's
``WorkerCrashed``. Either way the next case starts a fresh child.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import (BrokenLibrary, ConversionError, EngineError, FixtureError, ImplementationError,
                      NotApplicable, Unsupported)
from .contract import Contract
from .subprocess_impl import kill_group  # the cmd: protocol's: the child's whole process group

LOAD_TIMEOUT_S = 60.0            # at least this long to import a plug-in (TensorFlow on a loaded machine)
MAX_HEADER = 16 * 2 ** 20
MAX_BODY = 2 * 256 * 2 ** 20     # twice a fixture's cap (fixtures.MAX_FIXTURE_BYTES): outputs and trace
FRAME = struct.Struct(">IQ")
CATEGORIES = {c.__name__: c for c in (NotApplicable, Unsupported, BrokenLibrary, ConversionError, EngineError,
                                      ImplementationError)}
_workers: set["Worker"] = set()


class WorkerCrashed(Exception):
    """The child process died while it ran this case (its exit code or signal is in the message)."""


class RemoteError(Exception):
    """An exception raised in the child, with its type name and the tail of its traceback."""
    remote_traceback = ""


def _remote(info: dict) -> BaseException:
    kind, message = str(info.get("type", "Exception")), str(info.get("message", ""))
    if info.get("category") == "FixtureError":
        return FixtureError(info.get("where", "?"), message)
    if info.get("category") in CATEGORIES:
        return CATEGORIES[info["category"]](message)
    exc = type(kind, (RemoteError,), {})(message)
    exc.remote_traceback = str(info.get("traceback", ""))
    return exc


def _named(name: str):
    """A stand-in for a returned object that is not an array: validation names its type, as in-process."""
    return type(str(name), (), {})()


class _Unreadable(dict):
    """The child could not read the mapping the plug-in returned: reading it here raises what it raised."""

    def __init__(self, error: BaseException):
        super().__init__()
        self.error = error

    def _raise(self, *_):
        raise self.error

    __getitem__ = __contains__ = __iter__ = __len__ = keys = items = values = get = _raise


# -- the parent's side --------------------------------------------------------------------------------

class Worker:
    """One child process for one implementation, started on first use and after each death."""

    def __init__(self, name: str, value: str, entry_point: bool):
        self.load_request = {"op": "load", "name": name, "value": value, "entry_point": entry_point,
                             "sys_path": list(sys.path)}
        self.proc: subprocess.Popen | None = None

    def start(self) -> dict:
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "conformance.judge.isolation", str(child_in), str(child_out)],
                                     stdin=subprocess.DEVNULL, pass_fds=(child_in, child_out), start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self.send_fd, self.recv_fd = to_child, from_child
        _workers.add(self)
        return self.ask(self.load_request, LOAD_TIMEOUT_S, "loading the implementation")

    def ask(self, header: dict, timeout: float, doing: str) -> tuple[dict, bytes] | dict:
        if self.proc is None:
            self.start()
        data = json.dumps(header, default=str).encode()
        try:
            os.write(self.send_fd, FRAME.pack(len(data), 0) + data)
            deadline = time.monotonic() + timeout
            head_len, body_len = FRAME.unpack(self._read(FRAME.size, deadline, timeout))
            if head_len > MAX_HEADER or body_len > MAX_BODY:
                self.stop()
                raise ImplementationError(f"its worker process sent a {head_len}+{body_len} byte reply while "
                                          f"{doing}, more than the limit ({MAX_HEADER}+{MAX_BODY})")
            reply = json.loads(self._read(head_len, deadline, timeout))
            body = self._read(body_len, deadline, timeout) if body_len else b""
        except (BrokenPipeError, EOFError):
            raise WorkerCrashed(f"its worker process died while {doing} ({self._death()}); "
                                "the next case starts a fresh one") from None
        return (reply, body) if header["op"] == "call" else reply

    def _read(self, n: int, deadline: float, timeout: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.recv_fd], [], [], left)[0]:
                self.stop()
                raise TimeoutError(f"run() did not return within {timeout:g} s (per-fixture timeout; set "
                                   "--impl-timeout or LSTM_CONFORMANCE_TIMEOUT); its worker process was killed")
            chunk = os.read(self.recv_fd, min(n - got, 2 ** 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _death(self) -> str:
        proc, self.proc = self.proc, None
        _workers.discard(self)
        self._close()
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            code = proc.wait()
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def _close(self):
        for fd in (self.send_fd, self.recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc.wait()
            self.proc = None
            _workers.discard(self)
            self._close()


@atexit.register
def _stop_all() -> None:
    for worker in list(_workers):
        worker.stop()


class IsolatedRun:
    """What ``Implementation.load()`` returns for an isolated implementation: ``run(fixture)`` and the
    attributes the suite reads (version, keras_version, supports, returns, info, notes), answered by the child."""

    def __init__(self, worker: Worker, attrs: dict):
        self.worker, self.attrs = worker, attrs
        self.version = attrs.get("version")
        self.returns_trace = attrs.get("returns_trace", True)
        self.repro_env = tuple(attrs.get("repro_env", ()))
        self._info = attrs.get("info", {})
        self._notes: dict = {}
        semantics = attrs.get("keras")
        if isinstance(semantics, dict):  # keras_version() raised in the child: it raises here, when asked
            def fail():
                raise _remote(semantics)
            self.keras_version = fail
        elif attrs.get("declares") == "keras_version":
            self.keras_version, self.backend = semantics
        elif attrs.get("declares") == "keras_semantics":
            self.keras_semantics = semantics[0]
        if attrs.get("numeric_format"):  # an approximate port: the format the child gave with each run's reply
            self._formats: dict = {}
            self.numeric_format = self._format
        for method in ("supports", "returns"):
            if method in attrs.get("methods", ()):
                setattr(self, method, lambda fixture, _m=method: self._call(_m, fixture))

    def info(self) -> dict:
        return dict(self._info)

    def notes(self, fixture_id: str):
        return self._notes.get(fixture_id)

    def _format(self, fixture):
        found = self._formats.get(fixture.id)
        if isinstance(found, dict) and "raises" in found:  # numeric_format raised in the child: it raises here
            raise _remote(found["raises"])
        return found

    def __call__(self, fixture):
        return self._call("run", fixture)

    def _call(self, method: str, fixture):
        timeout = float(getattr(fixture, "timeout", None) or LOAD_TIMEOUT_S)
        if self.worker.proc is None:  # a fresh child after a timeout or a crash
            self.worker.start()
        reply, body = self.worker.ask({"op": "call", "method": method, "fixture": str(fixture.path),
                                       "digest": fixture.digest, "meta": fixture.meta, "timeout": timeout},
                                      timeout, f"running {method}()")
        self._info = reply.get("info", self._info)
        if reply.get("notes") is not None:
            self._notes[fixture.id] = reply["notes"]
        if "numeric_format" in reply and hasattr(self, "_formats"):
            self._formats[fixture.id] = reply["numeric_format"]
        if "raises" in reply:
            raise _remote(reply["raises"])
        if method != "run":
            return reply.get("value")
        return decode(reply["result"], body)


def isolated_loader(name: str, value: str, entry_point: bool):
    """The ``_loader`` of an isolated Implementation: a child that loaded it, or its load error, raised here."""
    def load():
        worker = Worker(name, value, entry_point)
        try:
            reply = worker.start()
        except (WorkerCrashed, TimeoutError) as exc:
            worker.stop()
            raise EngineError(f"its worker process failed while loading it: {exc}") from None
        if "error" in reply:
            worker.stop()
            raise EngineError(str(reply["error"]))
        return IsolatedRun(worker, reply)
    return load


# -- plain data: what the child returned --------------------------------------------------------------

def encode(result) -> tuple[object, list[bytes]]:
    """The returned object as JSON plus raw array buffers, read as the suite reads it (``result[key]``)."""
    buffers: list[bytes] = []

    def one(value, depth=0):
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return {"object_array": list(value.shape)}
            raw = np.ascontiguousarray(value).tobytes()
            buffers.append(raw)
            return {"array": [value.dtype.str, list(value.shape), len(raw)]}
        if isinstance(value, Mapping) and depth < 2:
            return {"mapping": [[str(k), one(value[k], depth + 1)] for k in list(value)]}
        return {"object": type(value).__name__}
    try:
        return one(result), buffers
    except Exception as exc:  # noqa: BLE001 - a mapping that breaks when read: the parent raises the same
        return {"unreadable": _describe(exc)}, []


def decode(entry, body: bytes, offset: list | None = None):
    offset = offset if offset is not None else [0]
    if "unreadable" in entry:
        return _Unreadable(_remote(entry["unreadable"]))
    if "mapping" in entry:
        return {name: decode(e, body, offset) for name, e in entry["mapping"]}
    if "object_array" in entry:
        return np.empty(tuple(int(d) for d in entry["object_array"]), dtype=object)
    if "array" in entry:
        spelled, dims, size = entry["array"]
        dtype, shape, size = np.dtype(str(spelled)), tuple(int(d) for d in dims), int(size)
        count = math.prod(shape)
        fits = min(shape, default=0) >= 0 and size == dtype.itemsize * count and offset[0] + size <= len(body)
        if dtype.hasobject or not fits:
            raise ImplementationError(f"its worker process sent a malformed array ({dtype}, {shape}, {size} bytes)")
        array = np.frombuffer(body, dtype, count, offset[0]).reshape(shape).copy()
        offset[0] += size
        return array
    return _named(entry.get("object", "object"))


def _describe(exc: BaseException) -> dict:
    category = next((n for n, c in [("FixtureError", FixtureError), *CATEGORIES.items()] if isinstance(exc, c)), None)
    return {"type": type(exc).__name__, "message": str(exc) if not isinstance(exc, FixtureError) else exc.detail,
            "where": getattr(exc, "where", None), "category": category,
            "traceback": "".join(traceback.format_exception(exc)[-6:])}


# -- the child's side ---------------------------------------------------------------------------------

def _child(recv_fd: int, send_fd: int) -> None:
    _die_with_parent()
    reader = os.fdopen(recv_fd, "rb", buffering=0)

    def read(n):
        data = b""
        while len(data) < n:
            chunk = reader.read(n - len(data))
            if not chunk:
                raise SystemExit(0)  # the parent is gone
            data += chunk
        return data

    def send(header, buffers=()):
        data = json.dumps(header, default=str).encode()
        body = b"".join(buffers)
        frame = FRAME.pack(len(data), len(body)) + data + body
        view = memoryview(frame)
        while view:
            view = view[os.write(send_fd, view):]

    impl = run = None
    case: tuple | None = None
    while True:
        head_len, _ = FRAME.unpack(read(FRAME.size))
        request = json.loads(read(head_len))
        if request["op"] == "load":
            sys.path[:] = request["sys_path"]
            impl, attrs = _load(request)
            if impl is not None:
                run = impl.load()
            send(attrs)
            continue
        reply: dict = {}
        buffers: list[bytes] = []
        try:
            key = (request["fixture"], request["digest"])
            if case is None or case[0] != key or request["method"] == "supports":
                from ..format.fixtures import Fixture
                if case is not None:
                    case[1].release()
                # the parent's metadata, as it listed it; the arrays are read here and checked against it
                case = (key, Fixture(Path(request["fixture"]), request["meta"]).isolated())
            private = case[1]
            private.timeout = request["timeout"]
            value = (getattr(Contract.of(run), request["method"])(private) if request["method"] != "run"
                     else run(private))
            if request["method"] == "run":
                reply["result"], buffers = encode(value)
            else:
                reply["value"] = None if value is None else (str(value) if request["method"] == "supports"
                                                              else [str(n) for n in value])
        except BaseException as exc:  # noqa: BLE001 - the plug-in's failure (even sys.exit), sent as data
            reply = {"raises": _describe(exc)}
        reply["info"] = _safe(impl.info) or {}
        notes = Contract.of(run).notes
        reply["notes"] = _safe(lambda: str(notes(case[1].id))) if callable(notes) and case else None
        if Contract.of(run).numeric_format is not None and case and request["method"] == "run":
            reply["numeric_format"] = _format_data(Contract.of(run), case[1])
        send(reply, buffers)


def _format_data(contract: Contract, fixture):
    """The approximate port's format for this fixture, as plain data (SPEC 7.8); what it raised, as data too."""
    from .approximate import declared
    try:
        fmt = declared(contract, fixture)
    except Exception as exc:  # noqa: BLE001 - raised again in the parent when the suite asks
        return {"raises": _describe(exc)}
    return None if fmt is None else {"format": fmt.name, "step": fmt.step}


def _safe(call):
    try:
        return call()
    except Exception:  # noqa: BLE001 - extras only; a broken one is no answer
        return None


def _load(request: dict):
    """The implementation as the parent would have loaded it; (impl, attrs) or (None, {"error": text})."""
    from . import registry
    try:
        impl = (registry.known()[request["name"]] if request["entry_point"]
                else registry.from_spec(request["value"], {}))
        run = impl.load()
    except ImplementationError as exc:  # the parent adds the same first line
        return None, {"error": str(exc).removeprefix(f"implementation {impl.name!r} ({impl.value}) failed to load:\n")}
    contract = Contract.of(run)
    attrs = {"version": contract.version or impl.version,
             "returns_trace": contract.returns_trace,
             "repro_env": list(contract.repro_env),
             "methods": [m for m in ("supports", "returns") if getattr(contract, m) is not None],
             "info": _safe(impl.info) or {},
             "declares": contract.declares,
             "numeric_format": contract.numeric_format is not None}
    try:
        semantics = impl.keras_semantics()
        attrs["keras"] = [None if s is None else str(s) for s in semantics]
    except Exception as exc:  # noqa: BLE001 - raised again in the parent when the suite asks
        attrs["keras"] = _describe(exc)
    return impl, attrs


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the suite's process dies, even hung in a loop holding the GIL."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere the suite's atexit kill is all there is
        pass


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
