"""Moved to ``conformance.diagnosis`` (``algebra``, ``catalogue``, ``precision``, ``search``); re-exported here."""

from .diagnosis import algebra, catalogue, precision as _precision, search

for _module in (algebra, catalogue, _precision, search):
    globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
del _module
