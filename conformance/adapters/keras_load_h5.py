"""The ``keras-load-h5`` implementation: load the fixture's Keras 2 model file (``model.h5``) and call it.

Some fixtures have, beside the Keras 3 ``model.keras``, the same contract model saved by tf.keras 2.15
as HDF5, listed in the gallery's manifest ``keras2-h5.yaml`` (``conformance.legacy``; SPEC 12). This
implementation checks the manifest entry (bound to the fixture's digest) and the file's sha256, loads a
private copy with the installed Keras (``keras.saving.load_model(..., safe_mode=True)`` where Keras has
it, else ``keras.models.load_model``) once its model config has passed ``conformance.model_config``
(tf.keras 2's HDF5 loader ignores safe mode: a ``Lambda`` would run while loading; SPEC 13.1), checks
that it holds exactly the fixture's weights, and calls it:
"a model saved by Keras 2 loads and computes the same in Keras Y". A fixture the manifest does not list
is not applicable (n/a).
"""

from __future__ import annotations

import inspect
from pathlib import Path, PurePosixPath
from typing import Mapping

import numpy as np

from ..format import keras2_h5 as legacy
from ..format import model_config
from ..errors import FixtureError, Unsupported
from . import quiet
from .keras import backend_name, keras_module, keras_version
from .keras_load import _call, check_model_weights, info
from ..judge.contract import implementation


def load_h5(path, where=None):
    """Load an HDF5 model file with this Keras, without compiling, in safe mode where Keras has it.

    Its config is checked first (``model_config.check_file``: a FixtureError naming ``where``, the gallery's
    file, or ``path``): no Keras version ever deserializes anything but a built-in recurrent model.
    """
    model_config.check_file(Path(path).read_bytes(), where or path, Path(path).name)
    keras = keras_module()
    loader = getattr(getattr(keras, "saving", None), "load_model", None)  # Keras 2.12 has none
    if loader is not None and "safe_mode" in inspect.signature(loader).parameters:
        return loader(path, safe_mode=True, compile=False)
    return keras.models.load_model(path, compile=False)


def compute(fixture, entry: Mapping, data: bytes) -> dict[str, np.ndarray]:
    """The outputs of the (checked) file's model on the fixture's inputs; FixtureError if its weights differ."""
    name = PurePosixPath(entry["file"]).name
    where = Path(fixture.path).parent / entry["file"]
    path = fixture.scratch_copy(name, data)
    try:
        try:
            model = load_h5(path, where)  # its config checked before Keras reads it
        except (FixtureError, Unsupported):  # a refused config is the fixture's fault; no h5py, a skip
            raise
        except Exception as exc:
            raise RuntimeError(f"keras {keras_version()} could not load {entry['file']} (saved with tf.keras "
                               f"{entry['generated_by'].get('keras', '?')}): {type(exc).__name__}: {exc}") from exc
        check_model_weights(fixture, model, name)
        return dict(zip(entry["outputs"], _call(model, entry["inputs"], fixture.inputs)))
    finally:
        fixture.release()


@implementation(info=info, keras_version=keras_version, backend=backend_name)
def run(fixture) -> dict[str, np.ndarray]:
    """Entry point ``keras-load-h5``."""
    with quiet.calls():
        entry, data = legacy.h5_file(fixture)  # NotApplicable when unlisted, FixtureError when stale or tampered
        return compute(fixture, entry, data)
