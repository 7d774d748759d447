"""A deliberately wrong GRU: with ``reset_after=True`` it still applies the reset gate before the recurrent matmul.

Its own numpy loop (tests/helpers/loops.py); right on ``reset_after=False`` layers, wrong on the others.
"""

from helpers.loops import float32, gru


def run(fixture):
    return float32(gru(fixture, reset_before_matmul=True))
