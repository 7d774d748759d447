"""Generating the gallery: the catalogue's entries and the Keras 2 model files."""
