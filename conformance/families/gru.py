"""Moved to ``conformance.semantics.families.gru`` (this name is kept: it is the same module)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("conformance.semantics.families.gru")
