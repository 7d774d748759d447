"""The converter adapters (``torch``, ``onnxruntime``) against the whole gallery, through the suite's own judge.

Each adapter must pass every fixture it claims, skip the rest with a reason, and be caught
by the suite (with a diagnosis) when its weight conversion is wrong. Which fixtures an
adapter must pass is computed from the gallery's metadata, never listed by hand.
Skipped with a reason where torch / onnxruntime are not installed (extras ``torch``, ``onnx``).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys

import numpy as np
import pytest

from conformance import Unsupported, reference, registry, writer
from conformance import session
from conformance.adapters import requires
from conformance.fixtures import list_fixtures
from conformance.mistakes import BY_KEY, diagnose
from conformance.suite import Case, judge



@dataclasses.dataclass(frozen=True)
class Adapter:
    name: str       # entry point name
    module: str     # the adapter module
    packages: tuple  # what must be importable

    def load(self):
        for package in self.packages:
            pytest.importorskip(package, reason=f"{package} is not installed (extra of lstm-conformance)")
        return importlib.import_module(self.module)


TORCH = Adapter("torch", "conformance.adapters.torch", ("torch",))
ONNX = Adapter("onnxruntime", "conformance.adapters.onnx", ("onnx", "onnxruntime"))
ADAPTERS = [pytest.param(TORCH, id="torch"), pytest.param(ONNX, id="onnxruntime")]


def implementation(adapter: Adapter) -> registry.Implementation:
    known = registry.registered()
    assert adapter.name in known, (f"entry point {adapter.name!r} is not registered (registered: {sorted(known)}); "
                                   "reinstall the project: pip install -e .")
    return known[adapter.name]


_VERDICTS: dict = {}


def verdicts(adapter: Adapter, fixtures) -> dict:
    """fixture id -> Verdict for the whole gallery, computed once per adapter."""
    if adapter.name not in _VERDICTS:
        impl = implementation(adapter)
        _VERDICTS[adapter.name] = {f.id: judge(Case(impl, f), 120, diagnose) for f in fixtures}
    return _VERDICTS[adapter.name]


def _masked(fixture) -> bool:
    return "mask" in fixture.meta["inputs"] and not np.all(fixture.inputs["mask"])


# -- the tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_failures_and_every_skip_has_a_reason(adapter, gallery):
    adapter.load()
    results = verdicts(adapter, gallery)
    bad = {fid: v.message for fid, v in results.items() if v.status not in ("passed", "skipped")}
    assert not bad, f"{adapter.name} fails {len(bad)} fixture(s):\n" + "\n\n".join(bad.values())
    prefix = f"{adapter.name}: "
    for fid, verdict in results.items():
        if verdict.status == "skipped":
            assert verdict.message.startswith(prefix) and len(verdict.message) > len(prefix) + 20, \
                f"{fid}: the skip does not say why: {verdict.message!r}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_passes_exactly_what_it_declares_it_supports(adapter, gallery):
    """The adapter's ``supports(fixture)`` is its claim: None must pass, a reason must be the skip's reason."""
    module = adapter.load()
    results = verdicts(adapter, gallery)
    declared = {f.id: module.supports(f) for f in gallery}
    missed = {fid: results[fid].message.splitlines()[0] for fid, reason in declared.items()
              if reason is None and results[fid].status != "passed"}
    assert not missed, f"{adapter.name} does not pass fixtures it supports: {missed}"
    wrong_skip = {fid: results[fid].message for fid, reason in declared.items()
                  if reason is not None and results[fid].message != f"{adapter.name}: {reason}"}
    assert not wrong_skip, f"{adapter.name} skipped for another reason than supports() gave: {wrong_skip}"
    supported = [f for f in gallery if declared[f.id] is None]
    assert any(_masked(f) for f in supported), "no masked fixture exercises the sequence-length path"
    assert len(supported) >= len(gallery) // 2, (len(supported), len(gallery))


CONVERSION_MISTAKES = [  # (adapter, layer whose gate table is broken, broken table, catalogued mistake)
    pytest.param(ONNX, "LSTM", ("i", "f", "c", "o"), "lstm-gate-order-iofc", id="onnx-lstm-keras-order"),
    pytest.param(TORCH, "GRU", ("z", "r", "h"), "gru-gate-order-rzh", id="torch-gru-keras-order"),
    pytest.param(TORCH, "LSTM", ("i", "o", "f", "c"), "lstm-gate-order-", id="torch-lstm-onnx-order"),
]


@pytest.mark.parametrize("adapter, layer, table, mistake", CONVERSION_MISTAKES)
def test_a_wrong_gate_table_fails_with_a_gate_order_diagnosis(adapter, layer, table, mistake, gallery, monkeypatch):
    """Break the adapter's gate-reorder table (e.g. identity: Keras blocks fed unconverted): the fixture
    tagged for that mistake fails, and the diagnosis names a gate-order mistake."""
    module = adapter.load()
    monkeypatch.setitem(module.GATE_ORDER, layer, table)
    tagged = BY_KEY["lstm-gate-order-iofc" if layer == "LSTM" else "gru-gate-order-rzh"].fixture
    fixture = next(f for f in gallery if f.id == tagged)
    verdict = judge(Case(implementation(adapter), fixture), 120, diagnose)
    assert verdict.status == "failed", f"{adapter.name} with gate table {table} still {verdict.status} {tagged}"
    assert "gate order" in verdict.message and f"[mistake {mistake}" in verdict.message, verdict.message
    others = [f for f in gallery if f.layer == layer and module.supports(f) is None][:8]
    still = [f.id for f in others if judge(Case(implementation(adapter), f), 120).status == "passed"]
    assert not still, f"the broken {layer} gate table goes unnoticed by {still}"


def _tail_padded_variant(fixture, root):
    """The fixture with its mask replaced by a right-padded one (every row non-empty), expected outputs
    recomputed by the numpy reference (the gallery has no bidirectional right-padded case)."""
    arrays = dict(fixture.arrays)
    batch, steps = arrays["mask"].shape
    lengths = [steps - (k % 3) * 2 if steps - (k % 3) * 2 > 0 else 1 for k in range(batch)]
    mask = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
    assert not mask.all()
    arrays["mask"] = mask
    inputs = {k: arrays[k] for k in fixture.meta["inputs"]}
    result = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                               fixture.activations, inputs, calls=fixture.meta.get("calls"))
    arrays.update({k: result[k].astype(np.float32) for k in fixture.meta["outputs"]})
    arrays.update({f"trace/{k}": v.astype(np.float32) for k, v in result["trace"].items()})
    meta = {k: v for k, v in fixture.meta.items() if k not in ("arrays", "digest", "format_version")}
    meta.update(id=f"{fixture.id}-tail-padded", description=fixture.description + " Mask right-padded.")
    writer.write_fixture(root, writer.finish_meta(meta, arrays), arrays)


TAIL_PADDED = {  # gallery fixture -> adapters that must pass its right-padded variant (the rest must skip)
    "bidirectional-lstm-mask-sequences": {"torch", "onnxruntime"},   # Keras forces zeros: matches
    "bidirectional-lstm-mask-last": {"torch", "onnxruntime"},
    "bidirectional-gru-mask-sequences": {"torch", "onnxruntime"},
    "lstm-mask-zero-output-for-mask": {"torch", "onnxruntime"},
    "lstm-mask-go-backwards": {"onnxruntime"},  # PyTorch has no reverse-only direction for padded rows
    "lstm-mask-trailing": set(),                # Keras repeats the last output, the ops zero-fill
}


@pytest.fixture(scope="module")
def tail_padded(gallery, tmp_path_factory):
    root = tmp_path_factory.mktemp("tail-padded")
    for fixture in gallery:
        if fixture.id in TAIL_PADDED:
            _tail_padded_variant(fixture, root)
    listing = list_fixtures(root)
    assert len(listing.fixtures) == len(TAIL_PADDED) and not listing.errors, listing.errors
    return listing.fixtures


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_right_padded_masks_become_sequence_lengths_where_keras_agrees(adapter, tail_padded):
    adapter.load()
    impl = implementation(adapter)
    for fixture in tail_padded:
        verdict = judge(Case(impl, fixture), 120, diagnose)
        source = fixture.id[:-len("-tail-padded")]
        expected = "passed" if adapter.name in TAIL_PADDED[source] else "skipped"
        assert verdict.status == expected, f"{fixture.id}: {verdict.status}, expected {expected}\n{verdict.message}"


# -- a missing library: every built-in adapter says it the same way, with the install command ----

def _clear_import_caches():
    from conformance.adapters import keras, onnx, torch
    for cached in (keras.keras_module, torch._torch, onnx._libraries):
        cached.cache_clear()


@pytest.fixture
def blocked(monkeypatch):
    """``blocked("torch")`` makes ``import torch`` fail as if it were not installed, for this test only."""
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    _clear_import_caches()

    def block(*packages):
        for package in packages:
            monkeypatch.setitem(sys.modules, package, None)  # "import package" now raises ImportError
    yield block
    monkeypatch.undo()
    _clear_import_caches()


def standard(package: str, extra: str) -> str:
    return f"needs {package}, which is not installed: {requires.extra_install(extra)}"


MISSING = [  # (entry point, what is not installed, the library named, the extra that installs it)
    ("keras", ("keras",), "keras", "keras"),
    ("keras-load", ("keras",), "keras", "keras"),
    ("tflite", ("keras",), "keras", "keras"),
    ("torch", ("torch",), "torch", "torch"),
    ("onnxruntime", ("onnx", "onnxruntime"), "onnx", "onnx"),
    ("onnxruntime", ("onnxruntime",), "onnxruntime", "onnx"),
]


@pytest.mark.parametrize("name, packages, library, extra", MISSING)
def test_missing_library_is_a_skip_with_the_install_command(name, packages, library, extra, gallery, blocked):
    blocked(*packages)
    verdict = judge(Case(registry.registered()[name], gallery[0]), 60)
    assert verdict.status == "skipped", verdict
    assert verdict.message == f"{name}: {standard(library, extra)}", verdict.message


@pytest.mark.parametrize("name, packages, library, extra", MISSING)
def test_missing_library_is_flagged_by_info(name, packages, library, extra, blocked):
    """``--list-impls`` and the report header read ``info()``: they say it in the same words."""
    blocked(*packages)
    info = registry.registered()[name].info()
    assert info.get("not_installed") == standard(library, extra), info
    # the header says only that, with the command: no version of a tool that is not there
    assert session.describe(info) == f"not installed (needs {library}): {requires.install_command(library)}"


def test_missing_tensorflow_for_tflite(blocked):
    from conformance.adapters import tflite
    blocked("tensorflow")
    with pytest.raises(Unsupported, match=rf"^{re.escape(standard('tensorflow', 'keras'))}$"):
        tflite._tf()


def test_a_library_that_fails_to_import_is_not_called_missing(tmp_path, monkeypatch):
    """Installed but broken: "pip install" would not help, so the import error is shown instead."""
    from conformance.adapters.requires import require
    (tmp_path / "broken_lib_xyz.py").write_text("import a_dependency_that_is_missing_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from conformance.errors import BrokenLibrary
    with pytest.raises(BrokenLibrary, match=r"^needs broken_lib_xyz, which is installed but fails to import: "
                                          r"No module named 'a_dependency_that_is_missing_xyz'$"):
        require("broken_lib_xyz")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_suite_runs_the_entry_point(adapter, pytester):
    """``pytest --pyargs conformance --impl NAME`` in a fresh process: header with the library version,
    one pass and (torch) one skip with its reason."""
    adapter.load()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--pyargs", "conformance",
                                           "--impl", adapter.name, "--fixture-id", "lstm-basic",
                                           "--fixture-id", "gru-reset-before-basic")
    module = importlib.import_module(adapter.module)
    result.stdout.fnmatch_lines([f"*implementation {adapter.name} {module.run.version}*"])
    if adapter is TORCH:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*reset_after=False has no PyTorch equivalent*"])
    else:
        result.assert_outcomes(passed=2)
