"""Find implementations: entry points, ``module:attr`` callables, and ``cmd:`` subprocess ports.

Discovery is lazy: listing reads entry point metadata only; the code is imported
when the implementation's first test runs, so a broken plug-in fails its own
tests (with the import traceback and the entry point value) and nothing else.
A bare name that is not registered is a typo, not a plug-in: ``select`` raises
``UnknownImplementation`` (a usage error) before any case exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import traceback
import warnings
from importlib import metadata
from typing import Callable, Iterable

from .. import ENTRY_POINT_GROUP, ON_REQUEST_GROUP
from ..errors import EngineError, ImplementationError, UnknownImplementation, Unsupported
from .contract import Contract
from .subprocess_impl import command_implementation

ENV_IMPL = "LSTM_CONFORMANCE_IMPL"


@dataclasses.dataclass
class Implementation:
    """A named implementation, loaded on first use; a load failure is remembered, not raised at listing."""
    name: str
    value: str                      # entry point value, "module:attr" or "cmd:..."
    version: str | None = None      # the distribution's version, when known
    distribution: str | None = None
    _loader: Callable[[], Callable] | None = None
    _loaded: Callable | None = None
    _error: str | None = None

    def load(self) -> Callable:
        if self._loaded is None and self._error is None:
            try:
                loaded = self._loader()
                if not callable(loaded):
                    raise TypeError(f"{self.value} is a {type(loaded).__name__}, not a callable run(fixture)")
                self._loaded = loaded
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                detail = (str(exc) if isinstance(exc, EngineError)  # a cmd: engine: our traceback is noise
                          else "".join(traceback.format_exception(exc)))
                self._error = f"implementation {self.name!r} ({self.value}) failed to load:\n{detail}"
        if self._error is not None:
            raise ImplementationError(self._error)
        return self._loaded

    def info(self) -> dict:
        """Version and, for Keras-based implementations, Keras version and backend (loads the code)."""
        details = {"version": self.version}
        try:
            contract = self.contract()
            details["version"] = contract.version or self.version
            if contract.info is not None:
                details.update(contract.info())
        except Unsupported as exc:  # an info() that found its library missing: the standard wording (requires.py)
            details["not_installed"] = str(exc)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            details["error"] = (str(exc).splitlines() or [type(exc).__name__])[0]
        return details

    def keras_semantics(self) -> tuple[str | None, str | None]:
        """(Keras version, backend) the implementation declares, for ``applies_to``; (None, None) if none.

        ``run.keras_version`` (with ``run.backend``): the implementation *is* that Keras. A port
        declares ``run.keras_semantics`` instead: the Keras version whose semantics it follows (a
        converter of models that Keras 3.15 built follows 3.15's ``hard_sigmoid``); only the version
        range of ``applies_to`` is then checked, never the backend.
        """
        return self.contract().keras()

    def contract(self) -> Contract:
        """What the implementation declares (``judge.contract``): the one place its declaration is read."""
        return Contract.of(self.load())


PACKAGE_DISTRIBUTION = "lstm-conformance"


def third_party(impl: Implementation) -> bool:
    """A plug-in not shipped in this package: a ``module:attr`` path or another distribution's entry point."""
    return not impl.value.startswith("cmd:") and impl.distribution != PACKAGE_DISTRIBUTION


def isolated(impl: Implementation) -> Implementation:
    """The same implementation, run in a supervised child process of its own (``--isolate``, SPEC 13.2).

    A ``cmd:`` engine already runs as a process of its own: it is returned as it is.
    """
    if impl.value.startswith("cmd:"):
        return impl
    from .isolation import isolated_loader
    entry_point = impl.distribution is not None
    return Implementation(impl.name, impl.value, impl.version, impl.distribution,
                          _loader=isolated_loader(impl.name, impl.value, entry_point))


def _import_attr(value: str) -> Callable:
    module_name, _, attr = value.partition(":")
    target = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        target = getattr(target, part)
    return target


def registered(group: str = ENTRY_POINT_GROUP) -> dict[str, Implementation]:
    """Every entry point in the group, by name; a duplicate name warns and the first one wins."""
    found: dict[str, Implementation] = {}
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        impl = Implementation(ep.name, ep.value, dist.version if dist else None, dist.name if dist else None,
                              _loader=ep.load)
        if ep.name in found:
            if found[ep.name].value != ep.value:
                warnings.warn(f"implementation name {ep.name!r} is registered twice: {found[ep.name].value} "
                              f"({found[ep.name].distribution}) and {ep.value} ({impl.distribution}); "
                              "using the first", stacklevel=2)
            continue
        found[ep.name] = impl
    return dict(sorted(found.items()))


def known() -> dict[str, Implementation]:
    """Every implementation a name can select: the default group's, then those run only when named."""
    return {**registered(ON_REQUEST_GROUP), **registered()}


def from_spec(spec: str, known: dict[str, Implementation]) -> Implementation:
    """One ``--impl`` value: a registered name, ``module:attr``, or ``cmd:COMMAND``.

    An unknown bare name is a typo, not a broken plug-in: UnknownImplementation, before any case runs.
    """
    if spec in known:
        return known[spec]
    if spec.startswith("cmd:"):
        return Implementation(spec, spec, _loader=lambda: command_implementation(spec[4:]))
    if ":" in spec:
        return Implementation(spec, spec, _loader=lambda: _import_attr(spec))
    raise UnknownImplementation(_unknown_message(spec, known))


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``names``, or '' when none is close."""
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_message(spec: str, known: Iterable[str]) -> str:
    """Names what is registered and, when one is close, the name that was probably meant."""
    known = list(known)
    hint = did_you_mean(spec, known)
    return (f"no implementation named {spec!r} is registered under {ENTRY_POINT_GROUP!r}{hint}; "
            f"registered: {', '.join(known) or 'none'}; or give module:attr or cmd:COMMAND")


def select(specs: Iterable[str] = ()) -> list[Implementation]:
    """The implementations to run: ``specs`` (``--impl``), else ``$LSTM_CONFORMANCE_IMPL``, else all registered
    in ``ENTRY_POINT_GROUP``. A name in ``ON_REQUEST_GROUP`` (the approximate ports) runs only when named.

    Raises UnknownImplementation (a usage error) for a bare name that is not registered.
    """
    default, names = registered(), known()
    specs = [s for s in specs if s]
    source = "--impl"
    if not specs and os.environ.get(ENV_IMPL):
        specs = [s.strip() for s in os.environ[ENV_IMPL].split(",") if s.strip()]
        source = f"${ENV_IMPL}"
    if not specs:
        return list(default.values())
    chosen, seen = [], set()
    for spec in specs:
        if spec not in seen:
            seen.add(spec)
            try:
                chosen.append(from_spec(spec, names))
            except UnknownImplementation as exc:
                raise UnknownImplementation(f"{source}: {exc}") from None
    return chosen
