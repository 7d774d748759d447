#!/usr/bin/env python3
"""Generate the fixture gallery from the catalog (``catalog/*.yaml``) with real Keras.

For every catalog entry: draw seeded weights, inputs and initial states; build the
layer with Keras (TensorFlow backend, CPU); call it directly; cross-check every
expected array against the numpy reference (which reads the YAML gate slices);
write ``fixtures/<id>/`` reproducibly. Ids are citation handles, so a fixture whose
values changed is not overwritten without ``--update``.

    python generate_fixtures.py            # write new fixtures, refuse changed ones
    python generate_fixtures.py --check    # regenerate in memory, compare with disk
    python generate_fixtures.py --only 'lstm-mask-*' --update
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain Eigen kernels: the same bits on every x86 CPU
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import yaml

from conformance import reference
from conformance.fixtures import FixtureError, compute_digest, list_fixtures, load_arrays
from conformance.writer import finish_meta, write_fixture

HERE = Path(__file__).resolve().parent
CATALOG_DIR = HERE / "catalog"
GENERATOR_VERSION = "1"

STATES = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",)}
GATES = {"LSTM": ("i", "f", "c", "o"), "GRU": ("z", "r", "h"), "SimpleRNN": ("h",)}
ACTIVATIONS = {
    "tanh": {"name": "tanh", "formula": "tanh(x)"},
    "sigmoid": {"name": "sigmoid", "formula": "1 / (1 + exp(-x))"},
    "relu": {"name": "relu", "formula": "max(x, 0)"},
    "linear": {"name": "linear", "formula": "x"},
}
# hard_sigmoid changed between Keras 2 and Keras 3; each variant is explicit data.
HARD_SIGMOID = {
    "keras3": {"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)", "slope": 1 / 6, "offset": 0.5},
    "keras2": {"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)", "slope": 0.2, "offset": 0.5},
}
HARD_SIGMOID_APPLIES = {"keras3": ">=3", "keras2": "<3"}


class GenerationError(Exception):
    pass


# -- the catalog ---------------------------------------------------------------------------------

def read_catalog(directory: Path = CATALOG_DIR) -> list[dict]:
    """All catalog entries, each merged over its file's ``defaults``; ids must be unique."""
    entries, seen = [], set()
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        defaults = data.get("defaults", {})
        for entry in data["fixtures"]:
            merged = {**defaults, **entry}
            if "config" in entry or "config" in defaults:
                merged["config"] = {**defaults.get("config", {}), **entry.get("config", {})}
            if merged["id"] in seen:
                raise GenerationError(f"{path.name}: duplicate fixture id {merged['id']!r}")
            seen.add(merged["id"])
            entries.append(merged)
    return entries


def seed_of(entry: dict) -> int:
    """A fixture's seed: explicit, or derived from its id (so adding an entry never shifts others)."""
    return int(entry.get("seed", int(hashlib.sha256(entry["id"].encode()).hexdigest()[:8], 16)))


LAYER_KEYS = {
    "LSTM": ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias"),
    "GRU": ("units", "activation", "recurrent_activation", "use_bias", "reset_after"),
    "SimpleRNN": ("units", "activation", "use_bias"),
}
SEQUENCE_KEYS = ("return_sequences", "return_state", "go_backwards")
DEFAULTS = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "unit_forget_bias": True,
            "reset_after": True, "return_sequences": False, "return_state": False, "go_backwards": False}


def full_config(layer: str, config: dict) -> dict:
    """The catalog config with every semantic default written out, so no reader needs Keras's defaults."""
    keys = (*LAYER_KEYS[layer], *SEQUENCE_KEYS)
    full = {k: config.get(k, DEFAULTS.get(k)) for k in keys}
    full.update({k: v for k, v in config.items() if k not in full})  # extras: dropout, zero_output_for_mask...
    return full


def sublayers(entry: dict) -> list[tuple[str, str, dict]]:
    """(weight prefix, layer class, full config) of each recurrent layer in the fixture."""
    layer = entry["layer"]
    if layer == "Bidirectional":
        inner = full_config(entry["wrapped"], entry["config"])
        return [("forward", entry["wrapped"], inner), ("backward", entry["wrapped"], inner)]
    if layer == "Stacked":
        return [(f"layers/{k}", sub["layer"], full_config(sub["layer"], sub["config"]))
                for k, sub in enumerate(entry["layers"])]
    return [("", layer, full_config(layer, entry["config"]))]


def fixture_config(entry: dict, subs: list) -> dict:
    if entry["layer"] == "Bidirectional":
        return {"wrapped": entry["wrapped"], "merge_mode": entry.get("merge_mode", "concat"), **subs[0][2]}
    if entry["layer"] == "Stacked":
        return {"layers": [{"layer": layer, "config": config} for _, layer, config in subs]}
    return subs[0][2]


def activation_spec(entry: dict, layer: str, config: dict) -> tuple[dict, dict]:
    """Structured activation definitions, and Keras callables where a variant needs one."""
    variant = entry.get("hard_sigmoid", "keras3")
    specs, overrides = {}, {}
    for key in ("activation", "recurrent_activation"):
        if key not in config:
            continue
        name = config[key]
        if name == "hard_sigmoid":
            specs[key] = dict(HARD_SIGMOID[variant])
            if variant == "keras2":  # this Keras is 3: compute the Keras 2 formula through Keras itself
                overrides[key] = keras2_hard_sigmoid
        else:
            specs[key] = dict(ACTIVATIONS[name])
    return specs, overrides


def keras2_hard_sigmoid(x):
    from conformance.adapters.keras import keras_module
    ops = keras_module().ops
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def gate_slices(layer: str, units: int, has_bias: bool) -> dict:
    """Gate name -> [start, stop) on the last axis of every weight: the seed question, as data."""
    blocks = {g: [k * units, (k + 1) * units] for k, g in enumerate(GATES[layer])}
    names = ("kernel", "recurrent_kernel", "bias") if has_bias else ("kernel", "recurrent_kernel")
    return {name: dict(blocks) for name in names}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


# -- drawing values ------------------------------------------------------------------------------

def draw(entry: dict, subs: list) -> tuple[dict, dict]:
    """Seeded weights and inputs, float32, uniform in the catalog's ranges."""
    rng = np.random.default_rng(seed_of(entry))
    batch, steps, features = entry["batch"], entry["timesteps"], entry["features"]
    scale, bias_scale = entry.get("weight_scale", 0.5), entry.get("bias_scale", 0.5)

    def uniform(shape, limit):
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)

    weights, inputs, width_in = {}, {}, features
    for prefix, layer, config in subs:
        units = config["units"]
        width = units * len(GATES[layer])
        weights[_join(prefix, "kernel")] = uniform((width_in, width), scale)
        weights[_join(prefix, "recurrent_kernel")] = uniform((units, width), scale)
        if config["use_bias"]:
            bias_shape = (2, width) if layer == "GRU" and config["reset_after"] else (width,)
            weights[_join(prefix, "bias")] = uniform(bias_shape, bias_scale)
        if entry["layer"] == "Stacked":
            width_in = units
    if "x" in entry:
        inputs["x"] = np.asarray(entry["x"], np.float32).reshape(batch, steps, features)
    else:
        inputs["x"] = uniform((batch, steps, features), entry.get("input_scale", 1.0))
    if "mask" in entry:
        inputs["mask"] = np.asarray(entry["mask"], bool).reshape(batch, steps)
    if entry.get("initial_state"):
        for prefix, layer, config in subs:
            for s in STATES[layer]:
                inputs[_join(prefix, f"initial_state_{s}")] = uniform((batch, config["units"]),
                                                                      entry.get("state_scale", 0.8))
    return weights, inputs


# -- one fixture ---------------------------------------------------------------------------------

def provenance() -> dict:
    import tensorflow as tf
    from conformance.adapters import keras as keras_adapter
    return {"tensorflow": tf.__version__, "keras": keras_adapter.keras_version(),
            "backend": keras_adapter.backend_name(), "numpy": np.__version__,
            "python": platform.python_version(), "platform": f"{platform.system()}-{platform.machine()}",
            "generator": GENERATOR_VERSION}


def cross_check(fid: str, expected: dict, ref: dict, tolerance: dict) -> None:
    """Keras and the numpy reference must agree within a tenth of the fixture's tolerance, or generation aborts."""
    missing = sorted(set(expected) ^ {k for k in ref if k != "trace"})
    if missing:
        raise GenerationError(f"{fid}: Keras and the reference return different outputs: {missing}")
    for name, value in expected.items():
        want = ref[name]
        if want.shape != value.shape:
            raise GenerationError(f"{fid}: {name} shape {value.shape} from Keras, {want.shape} from the reference")
        bad = ~np.isclose(value, want, atol=tolerance["atol"] / 10, rtol=tolerance["rtol"] / 10)
        if bad.any():
            err = np.abs(value - want).max()
            raise GenerationError(f"{fid}: Keras and the numpy reference disagree on {name!r} "
                                  f"(max abs error {err:.3g}, at {np.argwhere(bad)[0].tolist()})")


def generate(entry: dict, generated_by: dict) -> tuple[dict, dict, dict]:
    """Metadata, arrays and extra files (the saved model) of one fixture, computed by Keras and checked by the reference."""
    from conformance.adapters import keras as keras_adapter

    fid, layer = entry["id"], entry["layer"]
    subs = sublayers(entry)
    config = fixture_config(entry, subs)
    weights, inputs = draw(entry, subs)
    gates, activations, overrides = {}, {}, {}
    for prefix, sub_layer, sub_config in subs:
        specs, sub_overrides = activation_spec(entry, sub_layer, sub_config)
        if layer == "Stacked":
            activations[prefix], overrides[prefix] = specs, sub_overrides
        else:
            activations, overrides = specs, sub_overrides
        slices = gate_slices(sub_layer, sub_config["units"], sub_config["use_bias"])
        gates.update({_join(prefix, name): blocks for name, blocks in slices.items()})
    if entry.get("bias") == "initializer":  # the layer's own initial bias (e.g. unit_forget_bias ones)
        built = keras_adapter.build_layer(layer, config, inputs["x"].shape, overrides)
        weights["bias"] = np.asarray(built.get_weights()[2], np.float32)
    tolerance = entry["tolerance"]

    calls = entry.get("calls")
    expected = keras_adapter.compute_any(layer, config, weights, inputs, overrides, calls=calls)
    expected = {k: np.asarray(v, np.float32) for k, v in expected.items()}
    ref = reference.compute(layer, config, weights, gates, activations, inputs, calls=calls)
    cross_check(fid, expected, ref, tolerance)
    if layer not in ("Bidirectional", "Stacked") and not calls:
        # The trace is the reference's, proven step by step by its full output sequence against Keras.
        # (For wrappers, every sub-layer's final states and the merged outputs are checked above.)
        sequence_config = {**config, "return_sequences": True}
        keras_sequence = keras_adapter.compute(layer, sequence_config, weights, inputs, overrides)
        ref_sequence = reference.forward(layer, sequence_config, weights, gates, activations, inputs)
        cross_check(fid, {k: np.asarray(v) for k, v in keras_sequence.items()}, ref_sequence, tolerance)

    arrays = {**weights, **inputs, **expected,
              **{f"trace/{k}": v.astype(np.float32) for k, v in ref["trace"].items()}}
    applies_to = dict(entry.get("applies_to", {}))
    if any("hard_sigmoid" in (c["activation"], c.get("recurrent_activation")) for _, _, c in subs):
        applies_to.setdefault("keras", HARD_SIGMOID_APPLIES[entry.get("hard_sigmoid", "keras3")])
    meta = {
        "id": fid,
        "description": " ".join(entry["description"].split()),
        "layer": layer,
        "config": config,
        "activations": activations,
        "weights": list(weights),
        "gates": gates,
        "inputs": list(inputs),
        "outputs": list(expected),
        "trace": list(ref["trace"]),
        "tolerance": tolerance,
        "tags": sorted(entry.get("tags", [])),
        "seed": seed_of(entry),
    }
    if calls:
        meta["calls"] = {"steps": list(calls["steps"]), "reset_before": list(calls.get("reset_before", []))}
    if applies_to:
        meta["applies_to"] = applies_to
    files = {}
    if not any(overrides.values()):  # a Python activation override cannot be saved (and loaded in safe mode)
        meta["model_file"], files = saved_model(layer, config, weights, inputs, calls)
    meta["generated_by"] = generated_by
    return finish_meta(meta, arrays), arrays, files


def saved_model(layer: str, config: dict, weights: dict, inputs: dict, calls) -> tuple[dict, dict]:
    """The fixture as a ``.keras`` file (inputs in, outputs and final states out), written reproducibly.

    ``keras-load`` loads it in safe mode instead of rebuilding the layer; its sha256 is in the YAML.
    """
    from conformance.adapters import keras_load
    batch = inputs["x"].shape[0] if calls else None
    model, input_keys, output_keys = keras_load.contract_model(layer, config, weights, inputs,
                                                               batch_size=batch, stateful=bool(calls))
    data = keras_load.model_file_bytes(model)
    return keras_load.model_file_entry(keras_load.MODEL_FILE, data, input_keys, output_keys), {keras_load.MODEL_FILE: data}


# -- the command ---------------------------------------------------------------------------------

def compare_with_disk(out: Path, meta: dict, arrays: dict, files: dict | None = None) -> str | None:
    """None when the fixture on disk has the same digest; else what differs and by how much."""
    folder = out / meta["id"]
    if not folder.exists():
        return "not on disk"
    try:
        on_disk = yaml.safe_load((folder / "fixture.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        return f"unreadable on disk ({exc})"
    if not isinstance(on_disk, dict):
        return "fixture.yaml on disk is not a mapping"
    stale = [name for name, data in (files or {}).items()
             if not (folder / name).is_file() or (folder / name).read_bytes() != data]
    if on_disk.get("digest") == meta["digest"] and compute_digest(on_disk) == meta["digest"] and not stale:
        return None
    changes = [k for k in sorted(set(meta) | set(on_disk))
               if k not in ("arrays", "digest", "generated_by") and meta.get(k) != on_disk.get(k)]
    details = [f"field {k!r} differs" for k in changes]
    try:
        old = load_arrays(folder, {**on_disk, "arrays": {k: v for k, v in on_disk["arrays"].items()}})
    except (FixtureError, KeyError, TypeError) as exc:
        details.append(f"arrays unreadable: {exc}")
        old = {}
    for name, value in arrays.items():
        if name in old and old[name].shape == value.shape:
            diff = float(np.max(np.abs(old[name].astype(np.float64) - value.astype(np.float64)), initial=0))
            if diff:
                details.append(f"{name}: max abs difference {diff:.3g}")
        elif name in old:
            details.append(f"{name}: shape {old[name].shape} on disk, {value.shape} now")
    if on_disk.get("digest") != compute_digest(on_disk):
        details.append("fixture.yaml on disk does not match its own digest (hand-edited)")
    details += [f"{name} differs from the regenerated file" for name in stale]
    return "; ".join(details) or "digest differs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "fixtures", help="output folder (default: fixtures/)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="only ids matching this glob (repeatable)")
    parser.add_argument("--check", action="store_true", help="compare with disk instead of writing")
    parser.add_argument("--update", action="store_true", help="overwrite fixtures whose values changed")
    parser.add_argument("--catalog", type=Path, default=CATALOG_DIR)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    import tensorflow as tf
    try:  # one thread: the same reduction order on every machine
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised in this process (main() called from a test)
        pass
    from conformance.adapters import keras as keras_adapter
    if keras_adapter.backend_name() != "tensorflow":
        print("generate_fixtures.py: the gallery is generated with the TensorFlow backend", file=sys.stderr)
        return 2

    entries = [e for e in read_catalog(args.catalog)
               if not args.only or any(fnmatch.fnmatchcase(e["id"], p) for p in args.only)]
    generated_by = provenance()
    problems, written, unchanged = [], 0, 0
    for entry in entries:
        try:
            meta, arrays, files = generate(entry, generated_by)
        except GenerationError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # a catalog or Keras error: name the entry, then stop
            print(f"ERROR {entry.get('id', '?')}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        difference = compare_with_disk(args.out, meta, arrays, files)
        if difference is None:
            unchanged += 1
            continue
        if args.check:
            problems.append(f"{meta['id']}: {difference}")
        elif difference != "not on disk" and not args.update:
            problems.append(f"{meta['id']}: refusing to overwrite a fixture whose values changed "
                            f"({difference}); ids are citation handles: give it a new id, or pass --update")
        else:
            write_fixture(args.out, meta, arrays, files)
            written += 1
    if args.check and not args.only:
        known = {e["id"] for e in entries}
        if args.out.is_dir():
            listing = list_fixtures(args.out)
            problems += [f"{f.id}: on disk but not in the catalog" for f in listing.fixtures if f.id not in known]
            problems += [f"{e}" for e in listing.errors]
    elapsed = time.perf_counter() - started
    for problem in problems:
        print(f"DIFFERS {problem}" if args.check else f"REFUSED {problem}", file=sys.stderr)
    verb = "checked" if args.check else f"wrote {written},"
    print(f"{verb} {len(entries)} fixtures ({unchanged} unchanged, {len(problems)} problems) "
          f"in {elapsed:.1f}s with Keras {generated_by['keras']} / TensorFlow {generated_by['tensorflow']}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
