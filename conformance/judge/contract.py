"""The implementation contract (SPEC 7), declared once: ``run(fixture)`` and what the suite reads beside it.

An adapter declares it with one decorator, ``@implementation(version=..., info=..., supports=...)``; a bare
``run(fixture)`` callable (a third-party entry point, ``module:attr``) keeps working, with the optional
attributes SPEC 7.2, 7.6 and 7.7 list set on it by hand. ``Contract.of(run)`` reads either form, and it is the
only code that does: the registry, the suite, the session and the isolation worker all ask it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Collection, Mapping

ATTRIBUTE = "contract"   # where the decorator keeps the declaration on the callable
OPTIONAL = ("version", "info", "supports", "returns", "returns_trace", "notes", "repro_env", "keras_version",
            "backend", "keras_semantics", "numeric_format")  # SPEC 7.2, 7.6 and 7.7, in that order


@dataclasses.dataclass(frozen=True)
class Contract:
    """One implementation's declaration. Every field but ``run`` is optional (SPEC 7.2, 7.6, 7.7)."""
    run: Callable[[object], Mapping]
    version: str | None = None                                  # shown in reports; default the distribution's
    info: Callable[[], dict] | None = None                      # the report header's details (tool versions)
    supports: Callable[[object], str | None] | None = None      # why a fixture cannot be expressed, or None
    returns: Callable[[object], Collection[str] | None] | None = None  # the outputs returned, when not all
    returns_trace: bool = True                                  # False: no gate trace (messages do not ask for one)
    notes: Callable[[str], str | None] | None = None            # per-fixture notes (the ops a converter produced)
    repro_env: tuple[str, ...] = ()                             # variables the result depends on (repro lines)
    keras_version: str | Callable[[], str] | None = None        # the implementation *is* this Keras...
    backend: str | Callable[[], str] | None = None              # ...on this backend
    keras_semantics: str | Callable[[], str] | None = None      # a port: the Keras whose semantics it follows
    numeric_format: str | Mapping | Callable[[object], str | Mapping | None] | None = None  # an approximate port's
    # format ("int8", "ap_fixed<16,6>", {"format": ..., "step": ...}, or per fixture, asked after its run; SPEC 7.8)

    def __post_init__(self):
        if not callable(self.run):
            raise TypeError(f"{self.run!r} is not a callable run(fixture)")

    @classmethod
    def of(cls, run: Callable) -> "Contract":
        """The declaration of ``run``: the decorator's, else one read from its optional attributes."""
        declared = getattr(run, ATTRIBUTE, None)
        if isinstance(declared, Contract):
            return declared
        found = {name: getattr(run, name, None) for name in OPTIONAL}
        found["returns_trace"] = bool(True if found["returns_trace"] is None else found["returns_trace"])
        found["repro_env"] = tuple(n for n in found["repro_env"] or () if isinstance(n, str))
        for method in ("info", "supports", "returns", "notes"):
            if not callable(found[method]):
                found[method] = None
        return cls(run=run, **found)

    @property
    def declares(self) -> str | None:
        """``keras_version`` (it is Keras), ``keras_semantics`` (it follows Keras) or None."""
        return ("keras_version" if self.keras_version is not None
                else "keras_semantics" if self.keras_semantics is not None else None)

    def keras(self) -> tuple[str | None, str | None]:
        """(Keras version, backend) for ``applies_to``: (version, None) for a port; (None, None) if neither."""
        if self.keras_version is None:
            return _value(self.keras_semantics), None
        return _value(self.keras_version), _value(self.backend)


def implementation(**declared) -> Callable[[Callable], Callable]:
    """Declare ``run``'s contract: ``@implementation(version=..., info=..., supports=...)`` above ``def run``.

    The fields are ``Contract``'s. The callable is returned as it is, the contract kept on it; its fields are
    also set as the attributes SPEC 7 names (``run.version``, ``run.info`` …), for code that reads them so.
    """
    unknown = sorted(set(declared) - set(OPTIONAL))
    if unknown:
        raise TypeError(f"unknown contract field(s) {', '.join(unknown)}; known: {', '.join(OPTIONAL)}")
    if declared.get("keras_version") is not None and declared.get("keras_semantics") is not None:
        raise TypeError("keras_version (it is Keras) and keras_semantics (it follows Keras) together: "
                        "a port declares keras_semantics only (SPEC 7.6)")

    def declare(run: Callable) -> Callable:
        contract = Contract(run=run, **declared)
        setattr(run, ATTRIBUTE, contract)
        for name in OPTIONAL:
            if name in declared:
                setattr(run, name, getattr(contract, name))
        return run
    return declare


def _value(value):
    return value() if callable(value) else value
