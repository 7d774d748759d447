"""Reporting: the matrix, the ports table, findings, the gallery pages, explain and progress.

``conformance.report`` was the matrix module before the package existed: its names (``main``, ``build``,
``load_results``, …) are re-exported from ``report.matrix`` so that old imports keep working.
"""

from . import matrix as _matrix

globals().update({k: v for k, v in vars(_matrix).items() if not k.startswith("__")})
