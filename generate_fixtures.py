#!/usr/bin/env python3
"""Generate the fixture gallery from the catalog (``catalog/*.yaml``) with real Keras.

For every catalog entry: draw seeded weights, inputs and initial states; build the
layer with Keras (TensorFlow backend, CPU); call it directly; cross-check every
expected array against the numpy reference (which reads the YAML gate slices);
write ``fixtures/<id>/`` reproducibly. Ids are citation handles, so a fixture whose
values changed is not overwritten without ``--update``.

    python generate_fixtures.py            # write new fixtures, refuse changed ones
    python generate_fixtures.py --check    # regenerate in memory, compare with disk (platform rounding passes)
    python generate_fixtures.py --only 'lstm-mask-*' --update   # a Keras 2 model.h5 beside one is kept, now stale
    python generate_fixtures.py --keras2-h5 [--check]   # Keras 2 .h5 files, under tf.keras 2.15 (tox -e generate-keras2)
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN graph rewrites (Eigen's matrix products still
# call oneDNN's sgemm, whose kernels depend on the CPU: --check classifies that rounding, SPEC 4.5)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import yaml

from conformance import reference, rounding, tolerance
from conformance.fixtures import FixtureError, compute_digest, list_fixtures, load_arrays
from conformance.entries import fixture_meta, parts, saved_model
from conformance.writer import finish_meta, write_fixture

HERE = Path(__file__).resolve().parent
CATALOG_DIR = HERE / "catalog"
TOLERANCES = "tolerances.yaml"  # measured differences (SPEC 6.1), in the catalog folder but not a catalog file
FLOAT32_TOLERANCE = {"atol": 1.0e-5, "rtol": 1.0e-4}  # the gallery's float32 default (catalog defaults)
GENERATOR_VERSION = "1"
NOT_ON_DISK = "not on disk"
REGENERATE_KERAS2 = "tox -e generate-keras2"  # conformance.legacy.REGENERATE (not imported here before Keras)


class GenerationError(Exception):
    pass


# -- the catalog ---------------------------------------------------------------------------------

def read_catalog(directory: Path = CATALOG_DIR) -> list[dict]:
    """All catalog entries, each merged over its file's ``defaults``; ids must be unique."""
    entries, seen = [], set()
    for path in sorted(directory.glob("*.yaml")):
        if path.name == TOLERANCES:
            continue
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


def resolve_tolerance(entry: dict, config: dict, expected: dict, ref: dict, measurements: dict,
                      provisional: bool) -> dict:
    """The entry's tolerance; ``measured``: the rule over the matrix's measurements and the float64 reference's
    difference from these expected values (``conformance.tolerance``)."""
    if entry["tolerance"] != "measured":
        return entry["tolerance"]
    own = max(float(np.max(np.abs(np.asarray(v, np.float64) - ref[k]), initial=0.0)) for k, v in expected.items())
    sources = {**measurements.get(entry["id"], {}), "reference-float64": own}
    compute = tolerance.precision(config)["compute"]
    if len(sources) == 1 and not provisional:
        raise GenerationError(f"{entry['id']}: tolerance is 'measured' but {TOLERANCES} has no measurements "
                              "for it: generate with --provisional, run the matrix, then "
                              "--measure-tolerances RESULTS... (SPEC 6.1)")
    result = tolerance.from_measurements(sources, compute)
    if len(sources) == 1:
        result["basis"]["provisional"] = True  # never shipped (tests/unit/test_tolerance.py)
    return result


def keras_compute(layer: str, config: dict, weights: dict, inputs: dict, overrides: dict, calls=None) -> dict:
    """What Keras computes for the fixture. ``time_major`` (a Keras 2 option, which Keras 3 refuses) is the
    batch-major layer on the transposed ``x``, its returned sequence transposed back: Keras 2 itself is
    checked against these values by the matrix's Keras 2 environments (the keras adapter builds
    ``LSTM(time_major=True)`` there), where these fixtures apply."""
    from conformance import wrappers
    from conformance.adapters import keras as keras_adapter
    if config.get("time_major") and keras_adapter.is_keras3():
        plain, plain_inputs = wrappers.batch_major(config, inputs)
        return wrappers.time_major_result(config, keras_adapter.compute_any(layer, plain, weights, plain_inputs,
                                                                            overrides, calls=calls))
    return keras_adapter.compute_any(layer, config, weights, inputs, overrides, calls=calls)


def generate(entry: dict, generated_by: dict, measurements: dict | None = None,
             provisional: bool = False) -> tuple[dict, dict, dict]:
    """Metadata, arrays and extra files (the saved model) of one fixture, computed by Keras and checked by the reference."""
    from conformance.adapters import keras as keras_adapter

    fid, layer = entry["id"], entry["layer"]
    p = parts(entry)  # config, seeded weights and inputs, gates, activations (conformance.fuzz.entries)
    if entry.get("bias") == "initializer":  # the layer's own initial bias (e.g. unit_forget_bias ones)
        built = keras_adapter.build_layer(layer, p.config, p.inputs["x"].shape, p.overrides)
        p.weights["bias"] = np.asarray(built.get_weights()[2], np.float32)

    calls = p.calls
    stored = tolerance.stored_dtype(tolerance.precision(p.config)["outputs"])
    expected = keras_compute(layer, p.config, p.weights, p.inputs, p.overrides, calls=calls)
    expected = {k: np.asarray(v).astype(stored) for k, v in expected.items()}
    ref = reference.outputs(p)
    fixture_tolerance = resolve_tolerance(entry, p.config, expected, ref, measurements or {}, provisional)
    # The semantics: the reference against Keras at a tenth of the tolerance; for a dtype policy, against Keras
    # computing the same layer in float32 (the policy changes only the rounding, which the tolerance measures).
    plain = {k: v for k, v in p.config.items() if k != "dtype"}
    if "dtype" in p.config:
        cross_check(fid, keras_compute(layer, plain, p.weights, p.inputs, p.overrides, calls=calls), ref,
                    FLOAT32_TOLERANCE)
    else:
        cross_check(fid, expected, ref, fixture_tolerance)
    if entry.get("trace", True) is False:
        ref["trace"] = {}  # scale fixtures: the trace would be most of the gallery's size
    elif layer not in ("Bidirectional", "Stacked", "Model") and not calls:
        # The trace is the reference's, proven step by step by its full output sequence against Keras.
        # (For wrappers, every sub-layer's final states and the merged outputs are checked above.)
        sequence_config = {**plain, "return_sequences": True}
        keras_sequence = keras_compute(layer, sequence_config, p.weights, p.inputs, p.overrides)
        ref_sequence = reference.forward(layer, sequence_config, p.weights, p.gates, p.activations, p.inputs)
        cross_check(fid, {k: np.asarray(v) for k, v in keras_sequence.items()}, ref_sequence,
                    FLOAT32_TOLERANCE if "dtype" in p.config else fixture_tolerance)

    meta, arrays = fixture_meta(entry, p, expected, ref["trace"], fixture_tolerance)
    files = {}
    # A Python activation override cannot be saved (and loaded in safe mode); Keras 3 has no time_major layer.
    if not any(p.overrides.values()) and not p.config.get("time_major"):
        meta["model_file"], files = saved_model(layer, p.config, p.weights, p.inputs, calls)
    meta["generated_by"] = generated_by
    return finish_meta(meta, arrays), arrays, files


# -- the command ---------------------------------------------------------------------------------

def compare_with_disk(out: Path, meta: dict, arrays: dict, files: dict | None = None) -> rounding.FixtureDifference:
    """How the fixture on disk differs from the regenerated one: each array identical, platform rounding or a real
    change (``conformance.rounding``, SPEC 4.5); any other difference (a field, a file, the digest) is a real change."""
    folder = out / meta["id"]
    result = rounding.FixtureDifference()
    if not folder.exists():
        result.changes.append(NOT_ON_DISK)
        return result
    try:
        on_disk = yaml.safe_load((folder / "fixture.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        result.changes.append(f"unreadable on disk ({exc})")
        return result
    if not isinstance(on_disk, dict):
        result.changes.append("fixture.yaml on disk is not a mapping")
        return result
    stale = [name for name, data in (files or {}).items()
             if not (folder / name).is_file() or (folder / name).read_bytes() != data]
    if on_disk.get("digest") == meta["digest"] and compute_digest(on_disk) == meta["digest"] and not stale:
        result.arrays = [rounding.ArrayDifference(name, rounding.IDENTICAL) for name in arrays]
        return result
    result.changes += [f"field {k!r} differs" for k in sorted(set(meta) | set(on_disk))
                       if k not in ("arrays", "digest", "generated_by", "tolerance") and meta.get(k) != on_disk.get(k)]
    try:
        old = load_arrays(folder, {**on_disk, "arrays": {k: v for k, v in on_disk["arrays"].items()}})
    except (FixtureError, KeyError, TypeError, AttributeError) as exc:
        result.changes.append(f"arrays unreadable: {exc}")
        old = {}
    stored_tolerance = on_disk.get("tolerance")
    atol = stored_tolerance.get("atol") if isinstance(stored_tolerance, dict) else None
    atol = atol if isinstance(atol, (int, float)) else meta["tolerance"]["atol"]
    value_dtypes = rounding.value_dtypes(meta)
    result.arrays = [rounding.classify_array(name, old[name], value, atol, value_dtypes.get(name))
                     for name, value in arrays.items() if name in old]
    result.changes += [f"{name}: not on disk" for name in arrays if name not in old and old]
    result.changes += [f"{name}: on disk, not regenerated" for name in old if name not in arrays]
    tolerance_change = rounding.tolerance_change(stored_tolerance, meta.get("tolerance"), result.largest()[1])
    if tolerance_change:
        result.changes.append(tolerance_change)
    if on_disk.get("digest") != compute_digest(on_disk):
        result.changes.append("fixture.yaml on disk does not match its own digest (hand-edited)")
    result.changes += [f"{name} differs from the regenerated file" for name in stale]
    if result.kind == rounding.IDENTICAL:  # the same arrays and fields, yet another digest
        result.changes.append("digest differs")
    return result


def _counts(counted: dict[str, int]) -> str:
    """``18 identical, 132 platform rounding, 0 real changes``"""
    plural = {rounding.CHANGED: "real changes"}
    return ", ".join(f"{n} {kind if n == 1 else plural.get(kind, kind)}" for kind, n in counted.items())


def keras2_files(out: Path) -> dict[str, str]:
    """Fixture id -> the plain name of its Keras 2 model file, as the gallery's keras2-h5.yaml lists them.

    ``--update`` rewrites a fixture's folder whole; these files are not the fixture's (no digest covers them),
    so they are carried over rather than deleted: the entry is stale until regenerated (SPEC 12).
    """
    from conformance.legacy import read_manifest
    found = {}
    for fid, item in (read_manifest(out) or {}).items():
        file = item.get("file") if isinstance(item, dict) else None
        folder, _, name = file.partition("/") if isinstance(file, str) else ("", "", "")
        if folder == fid and name and "/" not in name:
            found[fid] = name
    return found


def measure_tolerances(catalog: Path, result_dirs: list[Path]) -> int:
    """catalog/tolerances.yaml: for every ``tolerance: measured`` entry, the largest difference from its expected
    values that Keras produced in each env of the matrix (SPEC 6.1). The float64 reference's is taken at generation."""
    measured = {e["id"] for e in read_catalog(catalog) if e["tolerance"] == "measured"}
    found = tolerance.matrix_differences(result_dirs, measured)
    missing = sorted(measured - set(found))
    header = ("# Measured differences of Keras from the expected values of each `tolerance: measured` fixture\n"
              "# (SPEC 6.1), per <env>/<implementation> of the tox matrix; written by\n"
              f"#   python generate_fixtures.py --measure-tolerances {' '.join(str(d) for d in result_dirs)}\n"
              "# Cases a ledger entry explains are left out. Regenerate the fixtures after changing it.\n")
    tolerance.write_measurements(catalog / TOLERANCES, found, header)
    print(f"measured {len(found)} of {len(measured)} fixtures over {len(result_dirs)} result folders"
          + (f"; none for {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "fixtures", help="output folder (default: fixtures/)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="only ids matching this glob (repeatable)")
    parser.add_argument("--check", action="store_true", help="compare with disk instead of writing")
    parser.add_argument("--update", action="store_true",
                        help="overwrite fixtures whose values changed; a Keras 2 model.h5 that keras2-h5.yaml lists "
                             "beside one is kept, its entry then stale: regenerate it with `tox -e generate-keras2`")
    parser.add_argument("--catalog", type=Path, default=CATALOG_DIR)
    parser.add_argument("--provisional", action="store_true",
                        help="let 'tolerance: measured' entries without measurements through, marked provisional "
                             "(to run the matrix that measures them; never shipped)")
    parser.add_argument("--measure-tolerances", nargs="+", type=Path, metavar="RESULT_DIR",
                        help="write catalog/tolerances.yaml from these envs' summary.json (results/<env>/) and stop")
    parser.add_argument("--keras2-h5", action="store_true",
                        help="the Keras 2 model files (fixtures/keras2-h5.yaml) instead, under tf.keras 2.15")
    args = parser.parse_args(argv)
    if args.measure_tolerances:
        return measure_tolerances(args.catalog, args.measure_tolerances)
    if args.keras2_h5:
        from conformance.legacy import generate_command
        return generate_command(args.out, args.catalog, args.only, args.check, args.update)

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
    measurements = tolerance.read_measurements(args.catalog / TOLERANCES)
    problems, written, largest = [], 0, [0.0, 0.0]
    classes = (rounding.IDENTICAL, rounding.ROUNDING, rounding.CHANGED)
    counted, counted_arrays = dict.fromkeys(classes, 0), dict.fromkeys(classes, 0)
    try:
        kept = keras2_files(args.out)
    except FixtureError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    for entry in entries:
        try:
            meta, arrays, files = generate(entry, generated_by, measurements, args.provisional)
        except GenerationError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - a catalog or Keras error: name the entry, then stop
            print(f"ERROR {entry.get('id', '?')}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        difference = compare_with_disk(args.out, meta, arrays, files)
        counted[difference.kind] += 1
        for array in difference.arrays:
            counted_arrays[array.kind] += 1
        largest = [max(pair) for pair in zip(largest, difference.largest())]
        if difference.kind == rounding.IDENTICAL:
            continue
        if difference.kind == rounding.ROUNDING:  # kept as it is: rewriting would change a citation handle for nothing
            print(f"ROUNDING {meta['id']}: {difference}")
        elif args.check:
            problems.append(f"{meta['id']}: {difference}")
        elif difference.changes != [NOT_ON_DISK] and not args.update:
            problems.append(f"{meta['id']}: refusing to overwrite a fixture whose values changed "
                            f"({difference}); ids are citation handles: give it a new id, or pass --update")
        else:
            keep = [kept[meta["id"]]] if meta["id"] in kept and difference.changes != [NOT_ON_DISK] else []
            write_fixture(args.out, meta, arrays, files, keep=keep)
            written += 1
            for name in keep:
                print(f"KEPT {meta['id']}/{name}: keras2-h5.yaml lists it, bound to the fixture's old digest, so it is "
                      f"stale now; regenerate it: {REGENERATE_KERAS2} -- --update --only {meta['id']}", file=sys.stderr)
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
    print(f"{verb} {len(entries)} fixtures: {_counts(counted)}; arrays: {_counts(counted_arrays)}; largest platform "
          f"rounding {largest[0]:.3g} ulps, {largest[1]:.3g} (bound {rounding.ULPS} ulps of the array's largest "
          f"value and {rounding.TOLERANCE_FRACTION:g} of atol); {len(problems)} problems "
          f"in {elapsed:.1f}s with Keras {generated_by['keras']} / TensorFlow {generated_by['tensorflow']}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
