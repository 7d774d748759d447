"""What a saved Keras model file asks Keras to build, read and checked without Keras (SPEC 13.1).

Loading a model file runs its config: Keras looks up each ``class_name`` and calls its
``from_config``. Safe mode does not cover every path: tf.keras 2.x's HDF5 loader drops
``safe_mode`` and its ``Lambda.from_config`` unmarshals Python bytecode (Keras 2.12 has no safe
mode at all), so a ``model.h5`` holding a ``Lambda`` runs its payload while loading, before any
weight check. The gallery's model files hold only recurrent layers, so before Keras sees a file
its config is read here (``.h5``: the ``model_config`` attribute, with h5py; ``.keras``: the
archive's ``config.json``, read bounded) and every object in it checked against an allow-list;
anything else is a FixtureError naming the file and the offending path. No Keras, no TensorFlow.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from ..errors import FixtureError, Unsupported

# The classes a model file may name. The contract model (conformance.adapters.keras_load.contract_model)
# is a Functional model of Input and recurrent layers; the rest are what the shipped gallery's 145 .keras
# and 20 .h5 files contain beyond that (scanned: Zeros, the initializer contract_model sets; DTypePolicy,
# Keras 3's dtype; __keras_tensor__, Keras 3's node arguments). Nothing else is ever deserialized.
MODELS = {"Functional", "Sequential", "Model"}
LAYERS = {"InputLayer", "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "RNN"}
# A Model fixture's (SPEC 5.15) other layers: exactly these, never Lambda or any layer that carries code
MODEL_LAYERS = {"Embedding", "Masking", "Dense", "Conv1D", "TimeDistributed"}
CELLS = {"LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells"}
GALLERY_EXTRAS = {"Zeros", "DTypePolicy", "__keras_tensor__"}
ALLOWED_CLASSES = frozenset(MODELS | LAYERS | MODEL_LAYERS | CELLS | GALLERY_EXTRAS)
# Keras 3's `module` fields in the gallery (keras, keras.layers, keras.initializers, keras.src.models.functional)
# and the public namespaces beside them; a custom object names its own module (or `registered_name` 'package>Name').
ALLOWED_MODULES = frozenset({"keras", "keras.layers", "keras.initializers", "keras.models",
                             "keras.src.models.functional", "keras.src.models.sequential", "keras.src.models.model"})
# Keras's built-in activations, by name (in tf.keras 2.15 and Keras 3); the gallery uses tanh, sigmoid,
# hard_sigmoid, linear and relu. A serialized function (a dict) is refused.
ACTIVATIONS = frozenset({"elu", "exponential", "gelu", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu",
                         "linear", "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu", "softmax",
                         "softplus", "softsign", "swish", "tanh"})
ACTIVATION_KEYS = {"activation", "recurrent_activation"}
# Keys that carry code or name user objects (Lambda's marshalled function and its helpers, custom objects).
CODE_KEYS = frozenset({"function", "function_type", "output_shape_type", "output_shape_module", "custom_objects",
                       "__lambda__", "code", "closure"})
H5_ATTRIBUTES = {"model_config", "keras_version", "backend"}  # what tf.keras 2.15 writes (no training_config)
MAX_CONFIG_BYTES = 1 << 20  # the gallery's largest config is 10 kB; a bounded read, never a zip bomb


def check_file(data: bytes, where, name: str | None = None) -> dict:
    """The config of model file ``data`` (``.h5`` or ``.keras``, by ``name`` or ``where``), checked; else FixtureError.

    ``where`` names the gallery's file in messages (the bytes may be a private copy). Unsupported when an
    ``.h5`` cannot be read because h5py is not installed (nor is any Keras that could load it).
    """
    name = name or Path(where).name
    if name.endswith(".h5"):
        config = read_h5_config(data, where)
    elif name.endswith(".keras"):
        config = read_keras_config(data, where)
    else:
        raise FixtureError(where, f"{name} is not a model file this suite loads (.keras or .h5)")
    check_config(config, where)
    return config


def read_h5_config(data: bytes, where) -> dict:
    """The ``model_config`` attribute of an HDF5 model file, parsed (h5py only)."""
    try:
        import h5py
    except ImportError:
        raise Unsupported(f"{Path(where).name}: h5py is not installed, so its model config cannot be checked "
                          "(and no Keras here could load it)") from None
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            attributes = {k: f.attrs[k] for k in f.attrs}
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others for a corrupt file
        raise FixtureError(where, f"{Path(where).name} is not a readable HDF5 file "
                                  f"({type(exc).__name__}: {exc})") from None
    extra = sorted(set(attributes) - H5_ATTRIBUTES)
    if extra:
        raise FixtureError(where, f"{Path(where).name} carries attribute(s) {', '.join(extra)} beside its model "
                                  f"config; refused (a model file here holds only {', '.join(sorted(H5_ATTRIBUTES))})")
    raw = attributes.get("model_config")
    if raw is None:
        raise FixtureError(where, f"{Path(where).name} has no model_config attribute (not a saved Keras model)")
    return _parse(raw, where, "model_config")


def read_keras_config(data: bytes, where) -> dict:
    """``config.json`` of a ``.keras`` archive, parsed; read bounded (at most MAX_CONFIG_BYTES inflated)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found = [i for i in archive.infolist() if i.filename == "config.json"]
            if len(found) != 1:
                raise FixtureError(where, f"{Path(where).name} holds {len(found)} config.json members, expected one")
            with archive.open(found[0]) as stream:
                raw = stream.read(MAX_CONFIG_BYTES + 1)
    except FixtureError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, bz2 and lzma raise many kinds for a corrupt archive
        raise FixtureError(where, f"{Path(where).name} is not a readable .keras archive "
                                  f"({type(exc).__name__}: {exc})") from None
    return _parse(raw, where, "config.json")


def _parse(raw, where, what: str) -> dict:
    if not isinstance(raw, (bytes, str)):
        raise FixtureError(where, f"{Path(where).name}: {what} is a {type(raw).__name__}, expected JSON text")
    if len(raw) > MAX_CONFIG_BYTES:
        raise FixtureError(where, f"{Path(where).name}: {what} is over {MAX_CONFIG_BYTES} bytes; refused")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise FixtureError(where, f"{Path(where).name}: {what} is not valid JSON "
                                  f"({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict):
        raise FixtureError(where, f"{Path(where).name}: {what} is a {type(config).__name__}, expected a mapping")
    return config


def problems(config) -> list[str]:
    """Every way ``config`` names something other than a built-in recurrent model, as 'where: why'.

    Walked without recursion (a deep config cannot overflow the stack); ``where`` is the chain of
    classes and layer names down to the offending object, e.g. ``Functional 'fixture'/layers[3] Lambda 'x'``.
    """
    found, stack = [], [(config, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        here = path
        if "class_name" in node:
            cls, inner = node["class_name"], node.get("config")
            name = node.get("name", inner.get("name") if isinstance(inner, dict) else None)
            here = (f"{path} " if path else "") + (cls if isinstance(cls, str) else repr(cls))
            here += f" {name!r}" if isinstance(name, str) else ""
            if not isinstance(cls, str) or cls not in ALLOWED_CLASSES:
                found.append(f"{here}: class {_short(cls)} is not a built-in recurrent or input layer "
                             f"(only those, and a Model fixture's {', '.join(sorted(MODEL_LAYERS))}, are ever "
                             "deserialized)")
            registered = node.get("registered_name")
            if registered is not None and registered != cls:
                found.append(f"{here}: registered_name {_short(registered)} names a custom object")
        where = here or "(top)"
        if "module" in node and node["module"] not in ALLOWED_MODULES:
            found.append(f"{where}: module {_short(node['module'])} is not a Keras built-in module")
        for key, value in node.items():
            if key in CODE_KEYS:
                found.append(f"{where}: key {key!r} carries code or a custom object")
            elif key in ACTIVATION_KEYS and not (isinstance(value, str) and value in ACTIVATIONS):
                found.append(f"{where}: {key} {_short(value)} is not a Keras built-in activation name")
            elif isinstance(value, (dict, list)):
                stack.append((value, here if key == "config" else f"{here}/{key}" if here else str(key)))
    return found


def check_config(config, where) -> None:
    """FixtureError naming the file and every offending class or key; None when the config is allowed."""
    found = problems(config)
    if found:
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        raise FixtureError(where, f"{Path(where).name} asks Keras to deserialize what this suite never loads, so "
                                  f"it is refused before Keras reads it: {shown}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
