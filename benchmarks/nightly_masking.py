"""Does a Keras version change what tiny masked models compute? (issue 24, items 4 and 5)

Keras's main after v3.15.1 sets ``supports_masking = False`` on RNN, Bidirectional and TimeDistributed
(keras-team/keras#23235): the layer still reads the mask it is given, but no longer attaches one to its
output, so the next layer of a model sees none. This builds three tiny seeded models whose masks are made
inside the graph, runs them, and saves their outputs, an mse loss and which layers saw a mask; ``compare`` prints the
largest absolute difference between two runs. Run ``save`` with each Keras, e.g.

    /tmp/tox-nightly/nightly/bin/python benchmarks/nightly_masking.py save /tmp/masking-nightly.npz
    /work/main/.tox/tests/bin/python benchmarks/nightly_masking.py save /tmp/masking-3.15.1.npz
    python benchmarks/nightly_masking.py compare /tmp/masking-3.15.1.npz /tmp/masking-nightly.npz

Weights are drawn with numpy (not Keras's initializers, which may change between versions), so both runs
compute the same model.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

SEED = 24
BATCH, STEPS = 3, 6
#: valid steps per row; the rest is trailing padding (a row cut short, one full, one of a single step)
LENGTHS = (4, 6, 1)


def _padded_mask() -> np.ndarray:
    return np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]


def _inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    mask = _padded_mask()
    tokens = np.where(mask, rng.integers(1, 10, size=(BATCH, STEPS)), 0).astype("int32")
    floats = np.where(mask[..., None], rng.normal(size=(BATCH, STEPS, 3)), 0.0).astype("float32")
    return {"embedding_bilstm_dense": tokens, "masking_gru_timedistributed": floats,
            "masking_lstm_lstm": floats}


def _models(keras):
    layers = keras.layers
    return {
        "embedding_bilstm_dense": [keras.Input((STEPS,), dtype="int32"), layers.Embedding(10, 4, mask_zero=True),
                                   layers.Bidirectional(layers.LSTM(3, return_sequences=True)), layers.Dense(2)],
        "masking_gru_timedistributed": [keras.Input((STEPS, 3)), layers.Masking(0.0),
                                        layers.GRU(3, return_sequences=True),
                                        layers.TimeDistributed(layers.Dense(2))],
        "masking_lstm_lstm": [keras.Input((STEPS, 3)), layers.Masking(0.0), layers.LSTM(3, return_sequences=True),
                              layers.LSTM(2)],
    }


def save(path: str) -> None:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras.src.backend.common.masking import get_keras_mask  # the mask Keras attaches to a tensor

    rng = np.random.default_rng(SEED)
    inputs = _inputs(rng)
    out: dict[str, np.ndarray] = {"keras_version": np.array(keras.__version__)}
    for name, spec in _models(keras).items():
        model = keras.Sequential(spec)
        for weight in model.weights:
            weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
        out[f"{name}/output"] = np.asarray(model(inputs[name]))
        # a training loss: Keras weights it by the mask attached to the model's output, where there is one
        model.compile(loss="mse")
        target = rng.normal(size=out[f"{name}/output"].shape).astype("float32")
        out[f"{name}/loss"] = np.array(model.evaluate(inputs[name], target, batch_size=BATCH, verbose=0))
        # layer by layer, eagerly: which layers receive a mask from the layer before them
        x, seen = keras.ops.convert_to_tensor(inputs[name]), []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for layer in model.layers:
                seen.append(get_keras_mask(x) is not None)
                x = layer(x)
        out[f"{name}/mask_seen"] = np.array(seen)
        out[f"{name}/layers"] = np.array([type(layer).__name__ for layer in model.layers])
        out[f"{name}/mask_warnings"] = np.array(sum("destroy the mask" in str(w.message) for w in caught))
        np.testing.assert_allclose(np.asarray(x), out[f"{name}/output"], rtol=1e-6, atol=1e-6)
    np.savez(path, **out)
    print(f"Keras {keras.__version__}: wrote {path}")


def compare(path_a: str, path_b: str) -> None:
    a, b = np.load(path_a, allow_pickle=False), np.load(path_b, allow_pickle=False)
    print(f"A = Keras {a['keras_version']}, B = Keras {b['keras_version']}; rows of lengths {LENGTHS}")
    for key in sorted(k for k in a.files if k.endswith("/output")):
        name = key.split("/")[0]
        diff = np.abs(a[key] - b[key])
        per_row = diff.reshape(diff.shape[0], -1).max(axis=1)
        layers = list(a[f"{name}/layers"])
        print(f"{name}: max |A-B| = {diff.max():.3g} (per row {', '.join(f'{v:.3g}' for v in per_row)}); "
              f"mse loss A {float(a[f'{name}/loss']):.6g}, B {float(b[f'{name}/loss']):.6g}")
        for label, run in (("A", a), ("B", b)):
            seen = [layer for layer, s in zip(layers, run[f"{name}/mask_seen"]) if s]
            print(f"  {label}: layers given a mask: {', '.join(seen) or 'none'}; "
                  f"'destroy the mask' warnings: {int(run[f'{name}/mask_warnings'])}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
