"""Moved: the manifest to ``conformance.format.keras2_h5``, the writing to ``conformance.generate.legacy``."""

from .format.keras2_h5 import *  # noqa: F401,F403
from .format.keras2_h5 import ENTRY_KEYS, FORMAT_VERSION, KERAS2, MANIFEST_NAME, REGENERATE, SELECTION  # noqa: F401
from .generate.legacy import *  # noqa: F401,F403
from .generate.legacy import HEADER, generate_command, loads_to_fixture, provenance, write_manifest  # noqa: F401
