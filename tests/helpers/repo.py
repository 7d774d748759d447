"""Where the checkout's parts are, for tests that read the repository rather than the installed package."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN = REPO / "examples" / "numpy-lstm-port"
