"""Exceptions shared by the loader, the registry and the suite.

Each carries enough context (fixture id, file, plug-in) that its message reads
on its own in a bug report.
"""


class Unsupported(Exception):
    """Raised by an implementation for a feature it does not implement.

    The suite reports it as a skip with the given reason, never as a pass.
    """


class NotApplicable(Unsupported):
    """Raised by an implementation for a fixture outside its scope, not for a missing feature: e.g.
    ``keras-load-h5`` on a fixture with no Keras 2 model file. A skip recorded as n/a, like ``applies_to``."""


class FixtureError(Exception):
    """A fixture on disk is malformed, tampered with or unsafe to load."""

    def __init__(self, where, message):
        self.where = str(where)
        self.detail = message
        super().__init__(f"{where}: {message}")


class ImplementationError(Exception):
    """An implementation could not be loaded or returned something unusable."""


class BrokenLibrary(ImplementationError):
    """A library the implementation needs is installed but fails to import: an error of each case, never a
    skip (a matrix env whose Keras cannot import must not come out green with every case skipped)."""


class EngineError(ImplementationError):
    """A ``cmd:`` engine failed; the message already holds its stderr tail, so no Python traceback is shown."""


class UnknownImplementation(ValueError):
    """An ``--impl`` name that is not registered, not ``module:attr`` and not ``cmd:``: a usage error."""


class ConversionError(Exception):
    """Raised by a port's adapter when the tool itself failed: the converter raised or refused the model,
    or its runtime would not load what the converter wrote.

    Reported with its own status (``crashed``), apart from a numeric mismatch: the tool never produced
    numbers to compare. The message should name the tool, its version and the tool's own error.
    """
