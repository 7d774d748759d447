"""lstm-conformance: reference fixtures and a conformance suite for Keras recurrent layers.

Implementations are callables ``run(fixture) -> Mapping[str, numpy.ndarray]`` registered
under the entry point group ``lstm_conformance.implementations``; see SPEC.md.
"""

from .errors import ConversionError, FixtureError, ImplementationError, NotApplicable, Unsupported
from .format.fixtures import Fixture, gallery_dir, list_fixtures, load_fixture

__version__ = "0.1.0"
ENTRY_POINT_GROUP = "lstm_conformance.implementations"

__all__ = ["Unsupported", "NotApplicable", "ConversionError", "FixtureError", "ImplementationError", "Fixture", "gallery_dir",
           "list_fixtures", "load_fixture", "ENTRY_POINT_GROUP", "__version__"]
