"""Build model files that run code when Keras loads them, from real gallery fixtures (SPEC 13.1).

The payload is a ``Lambda`` layer whose function touches a marker file. Each builder rewrites a real
model's config in the format that Keras's own ``Lambda.from_config`` reads, splices the layer between
the recurrent layer and the model's first output (so a Keras that runs it computes the fixture's
values and would pass the case), and rebinds what an attacker controls: the Keras 2 manifest's sha256
(the fixture itself untouched, so its digest still binds), or the fixture's ``model_file`` sha256 and
digest. Only h5py and zipfile are needed to build them, never Keras.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import marshal
import shutil
import zipfile
from pathlib import Path

import yaml

from conformance.fixtures import gallery_dir
from conformance.legacy import MANIFEST_NAME

from hostile import edit_meta

H5_SOURCE = "gru-reset-after-basic"   # listed in keras2-h5.yaml; inputs [x], outputs rnn:0 and rnn_final_state:0
KERAS_SOURCE = "lstm-seed-question"   # a small fixture with a model.keras
MODEL_SOURCE = "model-masking-gru"     # a Model fixture (SPEC 5.15): its model.keras is a Sequential
LAYER_NAME = "evil"


def payload_code(marker: Path) -> str:
    """A function touching ``marker`` and returning its input, as Keras 2's ``func_dump`` writes one:
    its code object marshalled, base64 (this Python's marshal: the Keras that loads it runs here too)."""
    function = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]")  # noqa: S307
    return codecs.encode(marshal.dumps(function.__code__), "base64").decode("ascii")


def keras2_lambda(marker: Path, source: str) -> dict:
    """A Keras 2 (tf.keras 2.15) functional-config Lambda layer called on ``source``'s first output."""
    return {"module": "keras.layers", "class_name": "Lambda", "name": LAYER_NAME, "registered_name": None,
            "config": {"name": LAYER_NAME, "trainable": True, "dtype": "float32",
                       "function": [payload_code(marker), None, None], "function_type": "lambda",
                       "module": "__main__", "output_shape": None, "output_shape_type": "raw",
                       "output_shape_module": None, "arguments": {}},
            "inbound_nodes": [[[source, 0, 0, {}]]]}


def keras3_lambda(marker: Path, source: str, shape) -> dict:
    """A Keras 3 ``config.json`` Lambda layer (function serialized as ``__lambda__``) called on ``source``."""
    tensor = {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32",
                                                          "keras_history": [source, 0, 0]}}
    return {"module": "keras.layers", "class_name": "Lambda", "name": LAYER_NAME, "registered_name": None,
            "config": {"name": LAYER_NAME, "trainable": True, "arguments": {},
                       "function": {"class_name": "__lambda__",
                                    "config": {"code": payload_code(marker), "defaults": None, "closure": None}}},
            "inbound_nodes": [{"args": [tensor], "kwargs": {}}]}


def _splice(config: dict, layer: dict) -> dict:
    """``layer`` appended, and put in place of the model's first output (the recurrent layer's)."""
    body = config["config"]
    body["layers"].append(layer)
    body["output_layers"][0] = [LAYER_NAME, 0, 0]
    return config


def hostile_h5_gallery(root: Path, marker: Path, fid: str = H5_SOURCE) -> Path:
    """``root`` holding fixture ``fid`` (untouched) and a keras2-h5.yaml listing its model.h5, which now holds
    a Lambda; the entry's sha256 rebound, its fixture_digest still the fixture's. Returns the model.h5."""
    import h5py
    folder = Path(root) / fid
    shutil.copytree(gallery_dir() / fid, folder)
    path = folder / "model.h5"
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(_splice(config, keras2_lambda(marker, "rnn")))
    manifest = yaml.safe_load((gallery_dir() / MANIFEST_NAME).read_text())
    entry = manifest["fixtures"][fid]
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest["fixtures"] = {fid: entry}
    (Path(root) / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    return path


def hostile_keras_gallery(root: Path, marker: Path, fid: str = KERAS_SOURCE) -> Path:
    """``root`` holding fixture ``fid`` whose model.keras's config.json holds a Lambda, re-hashed in fixture.yaml
    and re-digested (as an attacker who controls the folder would). Returns the model.keras."""
    folder = Path(root) / fid
    shutil.copytree(gallery_dir() / fid, folder)
    path = folder / "model.keras"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    if config["class_name"] == "Sequential":  # a Model fixture: the Lambda appended after its last layer
        lambda_layer = keras3_lambda(marker, config["config"]["layers"][-1]["config"]["name"], None)
        del lambda_layer["inbound_nodes"]  # a Sequential's layers are called in order, on the previous output
        config["config"]["layers"].append(lambda_layer)
    else:
        rnn = next(layer for layer in config["config"]["layers"] if layer["name"] == "rnn")
        shape = [None, rnn["config"]["units"]]
        config = _splice(config, keras3_lambda(marker, "rnn", shape))
    members["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    edit_meta(folder, lambda meta: meta["model_file"].update(sha256=digest))
    return path


def selection_catalog(root: Path, fid: str) -> Path:
    """A catalog folder whose Keras 2 selection (catalog/legacy/keras2-h5.yaml) is the one fixture ``fid``."""
    catalog = Path(root) / "catalog"
    (catalog / "legacy").mkdir(parents=True)
    (catalog / "legacy" / "keras2-h5.yaml").write_text(yaml.safe_dump({"format_version": 1, "fixtures": [fid]}))
    return catalog
