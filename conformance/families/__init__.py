"""Moved to ``conformance.semantics.families`` (its names are re-exported here; the submodules are aliases)."""

from ..semantics import families as _moved

globals().update({k: v for k, v in vars(_moved).items() if not k.startswith("__")})
