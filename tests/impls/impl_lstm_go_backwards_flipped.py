"""A deliberately wrong LSTM: with ``go_backwards`` and ``return_sequences`` it flips the output sequence back to
input order (Keras returns it in processing order).

Its own numpy loop (tests/helpers/loops.py); right on every fixture without go_backwards.
"""

from helpers.loops import float32, lstm


def run(fixture):
    out = lstm(fixture)
    if fixture.config.get("go_backwards") and fixture.config.get("return_sequences"):
        out["output"] = out["output"][:, ::-1]
    return float32(out)
