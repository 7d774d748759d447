"""A deliberately wrong LSTM: adds its own forget bias of 1 on top of Keras' (TF1's ``forget_bias=1.0``).

Written as its own numpy loop (tests/helpers/loops.py), not through the reference or the mistake catalogue, so the
diagnosis naming ``forget-bias-twice`` is checked against a port that merely makes the mistake.
"""

from helpers.loops import float32, lstm


def run(fixture):
    return float32(lstm(fixture, forget_extra=1.0))
