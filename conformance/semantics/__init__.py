"""Keras semantics: the layer families, wrappers, the numpy reference and the tolerance rules."""
