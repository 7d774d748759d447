"""``applies_to``: the Keras version and backend range where a fixture's semantics hold."""

from __future__ import annotations

from typing import Mapping

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version


def outside(meta: Mapping, keras_version: str | None, backend: str | None) -> tuple[str, str] | None:
    """Why the fixture does not apply to this Keras version/backend and what runs instead (``""`` when that
    is not the point), or None when it does: ``("applies to Keras <3", "Keras 3.15.1")``.

    Implementations that do not declare a Keras version (ports, the reference) are
    checked against every fixture: the fixture's ``activations`` say what to compute.
    """
    applies = meta.get("applies_to") or {}
    if keras_version is None:
        return None
    spec = applies.get("keras")
    if spec:
        try:
            ok = Version(keras_version) in SpecifierSet(spec, prereleases=True)
        except InvalidSpecifier:
            return f"applies_to.keras {spec!r} is not a valid version specifier", ""
        if not ok:
            return f"applies to Keras {spec}", f"Keras {keras_version}"
    backends = applies.get("backends")
    if backends and backend not in backends:
        return f"applies to backend(s) {', '.join(backends)}", str(backend)
    return None


def not_applicable(meta: Mapping, keras_version: str | None, backend: str | None) -> str | None:
    """``outside`` in one phrase (``applies to Keras <3, running Keras 3.15.1``), or None when the fixture applies."""
    found = outside(meta, keras_version, backend)
    if found is None:
        return None
    why, running = found
    return f"{why}, running {running}" if running else why
