"""Moved to ``conformance.report.ports`` (this name is kept: it is the same module)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("conformance.report.ports")
