"""lstm-conformance: reference fixtures and a conformance suite for Keras recurrent layers.

Implementations are callables ``run(fixture) -> Mapping[str, numpy.ndarray]`` registered
under the entry point group ``lstm_conformance.implementations``; see SPEC.md.
"""

from .errors import ConversionError, FixtureError, ImplementationError, NotApplicable, Unsupported
from .format.fixtures import Fixture, gallery_dir, list_fixtures, load_fixture

__version__ = "0.1.0"
ENTRY_POINT_GROUP = "lstm_conformance.implementations"
# run only when named (--impl, $LSTM_CONFORMANCE_IMPL): the approximate ports, whose verdict is a measurement of a
# quantized tool (SPEC 7.8), not something the default run on a machine with TensorFlow should gate on
ON_REQUEST_GROUP = "lstm_conformance.on_request"

__all__ = ["Unsupported", "NotApplicable", "ConversionError", "FixtureError", "ImplementationError", "Fixture", "gallery_dir",
           "list_fixtures", "load_fixture", "ENTRY_POINT_GROUP", "ON_REQUEST_GROUP",
           "__version__"]
