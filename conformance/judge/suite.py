"""Run one implementation on one fixture and judge it: the verdict behind pytest, the CLI and the fuzzer.

Every outcome is an explicit ``Status``: passed, failed, skipped (``Unsupported`` or
``applies_to``), error (the plug-in or the fixture is broken), or xfailed (the ledger
explains it). Nothing an implementation does (raise, hang, return garbage, mutate its
input) escapes its own case. ``session.py`` selects the cases and applies the ledger.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import threading
import traceback
from pathlib import Path
from typing import Callable

from ..semantics.applicability import outside
from . import approximate
from .compare import compare
from .contract import Contract
from ..errors import (BrokenLibrary, ConversionError, EngineError, FixtureError, ImplementationError,
                      NotApplicable, Unsupported)
from ..format.fixtures import Fixture, gallery_dir
from .isolation import WorkerCrashed
from .options import DEFAULT_TIMEOUT_S, REPRO_ENV
from .registry import Implementation
from ..text import printable
from .verdict import Status, Verdict


@dataclasses.dataclass
class Case:
    """One (implementation, fixture) pair; ``fixture`` is a FixtureError when the fixture is broken."""
    impl: Implementation
    fixture: Fixture | FixtureError
    fixtures_dir: Path | None = None

    @property
    def fixture_name(self) -> str:
        if isinstance(self.fixture, Fixture):
            return self.fixture.id
        where = Path(self.fixture.where)  # a broken fixture's folder name: any bytes a file system allows
        return printable(where.parent.name if self.fixture.where.endswith(".yaml") else where.name, keep="")

    @property
    def id(self) -> str:
        return f"{self.impl.name}-{self.fixture_name}"

    def repro(self) -> str:
        """The command that reruns this case, prefixed by the environment it depended on (Keras
        flavour and backend, and the settings the implementation declares in ``run.repro_env``)."""
        parts = ["pytest", "--pyargs", "conformance", "--impl", self.impl.name, "--fixture-id", self.fixture_name]
        if self.fixtures_dir is not None and Path(self.fixtures_dir).resolve() != gallery_dir().resolve():
            parts += ["--fixtures-dir", str(self.fixtures_dir)]
        env = [f"{k}={v}" for k, v in repro_env(self.impl).items()]
        return shlex.join([*env, *parts])


def repro_env(impl: Implementation) -> dict[str, str]:
    """The variables a case depends on, as set now: ``REPRO_ENV`` plus the implementation's ``repro_env``."""
    try:
        declared = impl.contract().repro_env
    except Exception:  # noqa: BLE001 - an implementation that cannot load declares nothing (its case says why)
        declared = ()
    names = [*REPRO_ENV, *(n for n in declared if isinstance(n, str) and n not in REPRO_ENV)]
    return {n: os.environ[n] for n in names if n in os.environ}


class ProcessExit(SystemExit):
    """An in-process plug-in called ``os._exit``: the case is ``crashed`` and the run goes on (SPEC 13.2)."""


_real_exit = os._exit
_suite_pid = os.getpid()
_cases_running = 0


def _guarded_exit(code=0):
    if _cases_running and os.getpid() == _suite_pid:  # a forked child's os._exit is its own business
        raise ProcessExit(f"os._exit({code}) called in the suite's process")
    _real_exit(code)


def _guard_exits() -> None:
    """Install the ``os._exit`` guard once, in the process that judges cases (an xdist worker's own pid)."""
    global _suite_pid
    if os._exit is not _guarded_exit:
        _suite_pid = os.getpid()
        os._exit = _guarded_exit


def call_with_timeout(run: Callable, fixture: Fixture, timeout: float | None):
    """Call ``run(fixture)``: an isolated implementation's child enforces the timeout itself (it is killed);
    in-process, in a worker thread that a hang leaves behind, still running (SPEC 13.2)."""
    from .isolation import IsolatedRun
    if isinstance(run, IsolatedRun):
        return run(fixture)
    box: dict = {}

    def target():
        global _cases_running
        _cases_running += 1
        try:
            box["result"] = run(fixture)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        finally:
            _cases_running -= 1

    worker = threading.Thread(target=target, name=f"impl-{fixture.id}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"run() did not return within {timeout:g} s (per-fixture timeout; "
                           "set --impl-timeout or LSTM_CONFORMANCE_TIMEOUT)")
    if "error" in box:
        raise box["error"]
    return box["result"]


def judge(case: Case, timeout: float | None = DEFAULT_TIMEOUT_S, diagnose=None) -> Verdict:
    """Run the case and return its verdict; never raises for anything the plug-in or fixture does."""
    impl, fixture = case.impl, case.fixture
    if isinstance(fixture, FixtureError):
        return Verdict(Status.ERROR, f"broken fixture {case.fixture_name!r}: {fixture}",
                       reason=f"broken fixture: {fixture}")
    try:
        run = impl.load()
        contract = impl.contract()
        fixture.arrays  # noqa: B018 - load and verify the arrays before blaming the implementation
        keras_version, backend = impl.keras_semantics()
    except ImplementationError as exc:
        return Verdict(Status.ERROR, f"{fixture.citation}: {exc}", reason=str(exc))
    except FixtureError as exc:
        return Verdict(Status.ERROR, f"broken fixture {fixture.id!r}: {exc}", reason=f"broken fixture: {exc}")
    except Unsupported as exc:
        return Verdict(Status.SKIPPED, f"{impl.name}: {exc}", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. a plug-in whose keras_version() raises
        why = f"could not be prepared: {type(exc).__name__}: {exc}"
        return Verdict(Status.ERROR, f"{fixture.id}: implementation {impl.name!r} ({impl.value}) {why}", reason=why)
    try:
        scope = outside(fixture.meta, keras_version, backend)
    except Exception as exc:  # noqa: BLE001 - e.g. a plug-in declaring keras_version "banana"
        why = f"cannot decide applies_to: {type(exc).__name__}: {exc}"
        return Verdict(Status.ERROR, f"{fixture.id}: cannot decide applies_to {fixture.meta.get('applies_to')!r} for "
                                f"implementation {impl.name!r} (keras_version {keras_version!r}, backend "
                                f"{backend!r}): {type(exc).__name__}: {exc}", reason=why)
    if scope:
        why, running = scope
        return Verdict(Status.SKIPPED, f"{fixture.id}: {why}" + (f", running {running}" if running else ""),
                       not_applicable=True, reason=why)
    private = fixture.isolated()  # supports() and run() see one private copy: nothing leaks to the next case
    private.timeout = timeout  # what a port that runs a process of its own kills it by (cmd:, tfjs)
    _guard_exits()
    try:  # what the implementation declares it cannot do is a skip before it runs (SPEC 7.3)
        unsupported = contract.supports(private) if contract.supports is not None else None
    except Exception as exc:  # noqa: BLE001 - a broken supports() is the plug-in's failure, in its own case
        why = f"supports() raised {type(exc).__name__}: {exc}"
        return Verdict(Status.ERROR, f"{fixture.citation}: implementation {impl.name!r}'s {why}", reason=why)
    if unsupported:
        return Verdict(Status.SKIPPED, f"{impl.name}: {unsupported}", reason=str(unsupported))
    version = contract.version or impl.version
    try:
        result = call_with_timeout(run, private, timeout)
    except Unsupported as exc:  # NotApplicable: outside the implementation's scope (n/a), not a missing feature
        return Verdict(Status.SKIPPED, f"{impl.name}: {exc}", not_applicable=isinstance(exc, NotApplicable),
                       reason=str(exc), impl_version=version)
    except FixtureError as exc:  # e.g. a tampered model file found by the implementation: the fixture's fault
        return Verdict(Status.ERROR, f"broken fixture {fixture.id!r}: {exc}", reason=f"broken fixture: {exc}")
    except BrokenLibrary as exc:  # installed but failing to import: the environment is broken, not a skip
        return Verdict(Status.ERROR, f"{fixture.citation}: implementation {impl.name!r}: {exc}", reason=str(exc))
    except (WorkerCrashed, ProcessExit) as exc:  # the plug-in took its process down: no numbers to compare
        why = f"crashed: {exc}"
        return Verdict(Status.CRASHED, f"{fixture.citation}: implementation {impl.name!r} {why}\n"
                                       f"repro: {case.repro()}", reason=why, repro=case.repro(), impl_version=version)
    except ConversionError as exc:  # the port's tool itself raised or refused: no numbers to compare
        who = f"implementation {impl.name!r}" + (f" {version}" if version else "")
        why = f"the tool crashed or refused the model: {exc}"
        return Verdict(Status.CRASHED, f"{fixture.citation}: {who}: {why}\nrepro: {case.repro()}", reason=why,
                       repro=case.repro(), impl_version=version)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the plug-in's failure (even sys.exit), in its own case
        # a cmd: engine's own stderr says what went wrong; our Python traceback would only be noise
        detail = ("" if isinstance(exc, EngineError) else getattr(exc, "remote_traceback", None)
                  or "".join(traceback.format_exception(exc)[-6:]))
        why = f"raised {type(exc).__name__}: {exc}"
        return Verdict(Status.FAILED, f"{fixture.citation}: implementation {impl.name!r} {why}\n{detail}"
                                      f"repro: {case.repro()}", reason=why, repro=case.repro(), impl_version=version)
    finally:
        private.release()  # the scratch copies of the model file (Fixture.model_path)
    try:
        returns = _declared_outputs(contract, private)
    except Exception as exc:  # noqa: BLE001 - a broken returns() is the plug-in's failure, in its own case
        why = f"returns() raised {type(exc).__name__}: {exc}"
        return Verdict(Status.ERROR, f"{fixture.citation}: implementation {impl.name!r}'s {why}", reason=why)
    try:
        fmt = approximate.declared(contract, private)  # an approximate port (SPEC 7.8): None for a float one
    except Exception as exc:  # noqa: BLE001 - a broken numeric_format is the plug-in's failure, in its own case
        why = f"numeric_format raised {type(exc).__name__}: {exc}"
        return Verdict(Status.ERROR, f"{fixture.citation}: implementation {impl.name!r}'s {why}", reason=why)
    try:
        return compare(fixture, result, impl.name, version, case.repro(), diagnose,
                       can_trace=contract.returns_trace, returns=returns, numeric_format=fmt)
    except Exception as exc:  # noqa: BLE001 - returned objects that break when read (a hostile Mapping)
        why = f"returned output that could not be read: {type(exc).__name__}: {exc}"
        return Verdict(Status.FAILED, f"{fixture.citation}: implementation {impl.name!r} {why}\n"
                                      f"repro: {case.repro()}", reason=why, repro=case.repro(), impl_version=version)


def _declared_outputs(contract: Contract, fixture):
    """``returns(fixture)``: the outputs a port declares it returns (the rest: a partial case), or None."""
    if contract.returns is None:
        return None
    names = contract.returns(fixture)
    return None if names is None else frozenset(str(n) for n in names)
