"""Implementations that wrap a real third-party library (Keras, ...) behind the ``run(fixture)`` contract."""
