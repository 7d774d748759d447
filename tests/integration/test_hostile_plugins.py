"""Hostile and broken implementations: each fails its own cases, clearly; the run and the others go on.

The plug-ins are real modules written to a temporary folder and named with
``--impl module:attr`` (or registered through a temporary ``.dist-info``), and the
suite runs in a subprocess exactly as a user runs it, with ``numpy-reference`` in the
same run to prove that nothing a plug-in does reaches the next implementation.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import time
from pathlib import Path

import pytest

import hostile

MODULE = "hostile_impls"
IMPLS = textwrap.dedent('''
    """Implementations that misbehave in one way each (written by tests/test_hostile_plugins.py)."""
    import os
    import sys
    import time

    import numpy as np

    from conformance import Unsupported, reference


    def _right(fixture):
        return {k: v for k, v in reference.run(fixture).items() if k != "trace"}


    def _with(fixture, name, change):
        result = _right(fixture)
        result[name] = change(result[name].copy())
        return result


    def _poke(array, value):
        array.flat[0] = value
        return array


    def raises(fixture):
        raise RuntimeError("the plug-in broke on purpose")

    def exits(fixture):
        sys.exit(3)

    def returns_none(fixture):
        return None

    def returns_list(fixture):
        return list(_right(fixture).values())

    def missing_key(fixture):
        result = _right(fixture)
        del result["state_c"]
        return result

    def extra_key(fixture):
        return {**_right(fixture), "bonus": np.zeros(3, np.float32)}

    def wrong_shape(fixture):
        return _with(fixture, "output", lambda a: a[None])

    def int32(fixture):
        return _with(fixture, "output", lambda a: a.astype(np.int32))

    def float16(fixture):
        return _with(fixture, "output", lambda a: a.astype(np.float16))

    def object_dtype(fixture):
        return _with(fixture, "output", lambda a: a.astype(object))

    def python_lists(fixture):
        return {k: v.tolist() for k, v in _right(fixture).items()}

    def nan(fixture):
        return _with(fixture, "output", lambda a: _poke(a, np.nan))

    def inf(fixture):
        return _with(fixture, "state_h", lambda a: _poke(a, -np.inf))

    def trace_a_list(fixture):
        return {**_right(fixture), "trace": [1, 2, 3]}

    def float64_off(fixture):
        return {k: v.astype(np.float64) + 1e-3 for k, v in _right(fixture).items()}

    class _Exploding(dict):
        def __getitem__(self, key):
            raise RuntimeError("this mapping explodes when read")

    def exploding_mapping(fixture):
        return _Exploding(_right(fixture))

    def _keras_version():
        raise RuntimeError("keras_version() exploded")

    def bad_keras_version(fixture):
        return _right(fixture)
    bad_keras_version.keras_version = _keras_version

    def garbage_wrong(fixture):
        print("\\x00\\x1b[2J garbage \\udcff", flush=True)
        return _with(fixture, "output", lambda a: a + 0.5)

    def writes_input(fixture):
        fixture.inputs["x"][...] = 0.0
        return _right(fixture)

    def vandal(fixture):
        """Flips every writeable flag it can and zeroes the arrays; rewrites config, gates, meta."""
        for array in fixture.arrays.values():
            array.setflags(write=True)
            array[...] = 0
        fixture.config["go_backwards"] = not fixture.config["go_backwards"]
        fixture.config["units"] = 999
        fixture.gates["kernel"]["i"] = [0, 0]
        fixture.activations["activation"]["formula"] = "x"
        fixture.tolerance["atol"] = 1e9
        fixture.meta["inputs"] = []
        return {"output": np.zeros(1)}

    not_callable = 42

    def banana_version(fixture):
        return _right(fixture)
    banana_version.keras_version = "banana"

    # -- these pass (or skip): the rule, not a loophole ---------------------------------------------
    def float64(fixture):
        return {k: v.astype(np.float64) for k, v in reference.run(fixture).items() if k != "trace"}

    def garbage_right(fixture):
        print("\\x00\\x1b[2J\\x07 garbage on stdout \\udcff " * 50, flush=True)
        os.write(1, bytes(range(256)))
        os.write(2, b"\\xff\\xfe garbage on stderr\\n")
        sys.stdout.write("FAILED test_conformance.py::test_conformance[numpy-reference-lstm-basic] - fake\\n")
        return _right(fixture)

    def unsupported(fixture):
        raise Unsupported("masking is not implemented here")

    # -- never returns --------------------------------------------------------------------------------
    def hangs(fixture):
        time.sleep(600)
''')
IMPORT_ERROR = 'import numpy\nimport a_dependency_that_is_not_installed_xyz\n\ndef run(fixture):\n    pass\n'


@dataclasses.dataclass(frozen=True)
class Hostile:
    """A misbehaving implementation and the exact verdict its every case must get."""
    spec: str          # the --impl value
    status: str        # failed | error
    says: str          # regex on the full failure text

    def __str__(self):
        return self.spec.split(":")[-1]


def _m(attr: str) -> str:
    return f"{MODULE}:{attr}"


UNUSABLE = r"implementation '{spec}' .*returned unusable output:\n  - "
FAILING = [
    Hostile("hostile_import_error:run", "error",
            r"implementation 'hostile_import_error:run' \(hostile_import_error:run\) failed to load:\n"
            r"(.|\n)*ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed_xyz'"),
    Hostile(_m("no_such_attribute"), "error",
            r"failed to load:(.|\n)*AttributeError: module 'hostile_impls' has no attribute 'no_such_attribute'"),
    Hostile("no_such_module_xyz:run", "error",
            r"failed to load:(.|\n)*ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    Hostile(_m("not_callable"), "error", r"hostile_impls:not_callable is a int, not a callable run\(fixture\)"),
    Hostile(_m("raises"), "failed", r"implementation '{spec}' raised RuntimeError: the plug-in broke on purpose"),
    Hostile(_m("exits"), "failed", r"implementation '{spec}' raised SystemExit: 3"),
    Hostile(_m("returns_none"), "failed",
            UNUSABLE + r"run\(\) returned NoneType, expected a mapping of output name -> numpy.ndarray"),
    Hostile(_m("returns_list"), "failed", UNUSABLE + r"run\(\) returned list, expected a mapping"),
    Hostile(_m("missing_key"), "failed", UNUSABLE + r"missing output 'state_c'"),
    Hostile(_m("extra_key"), "failed", UNUSABLE + r"unexpected output 'bonus' \(allowed: output, state_h, state_c, trace\)"),
    Hostile(_m("wrong_shape"), "failed", UNUSABLE + r"output 'output' has shape \(1, \d+, \d+\), expected \(\d+, \d+\)"),
    Hostile(_m("int32"), "failed", UNUSABLE + r"output 'output' has dtype int32, expected float32 \(float64 is accepted\)"),
    Hostile(_m("float16"), "failed", UNUSABLE + r"output 'output' has dtype float16, expected float32"),
    Hostile(_m("object_dtype"), "failed", UNUSABLE + r"output 'output' has dtype object, expected float32"),
    Hostile(_m("python_lists"), "failed", UNUSABLE + r"output 'output' is list, expected numpy.ndarray"),
    Hostile(_m("nan"), "failed", UNUSABLE + r"output 'output' contains NaN or Inf \(first at index \[0, 0\]\)"),
    Hostile(_m("inf"), "failed", UNUSABLE + r"output 'state_h' contains NaN or Inf \(first at index \[0, 0\]\)"),
    Hostile(_m("trace_a_list"), "failed", UNUSABLE + r"'trace' is list, expected a mapping of gate name -> array"),
    Hostile(_m("float64_off"), "failed", r"implementation '{spec}' .*does not match Keras(.|\n)*max abs error 0\.001"),
    Hostile(_m("exploding_mapping"), "failed",
            r"implementation '{spec}' returned output that could not be read: RuntimeError: this mapping explodes"),
    Hostile(_m("bad_keras_version"), "error",
            r"implementation '{spec}' \({spec}\) could not be prepared: RuntimeError: keras_version\(\) exploded"),
    Hostile(_m("garbage_wrong"), "failed", r"implementation '{spec}' .*does not match Keras(.|\n)*max abs error 0\.5"),
    Hostile(_m("writes_input"), "failed",
            r"implementation '{spec}' raised ValueError: assignment destination is read-only"),
    Hostile(_m("vandal"), "failed", UNUSABLE + r"missing output 'state_h'"),
]
PASSING = [_m("float64"), _m("garbage_right")]
FIXTURES = ("lstm-seed-question", "lstm-units1")


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / f"{MODULE}.py").write_text(IMPLS)
    (folder / "hostile_import_error.py").write_text(IMPORT_ERROR)
    return folder


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory) -> Path:
    return hostile.copied_gallery(tmp_path_factory.mktemp("gallery"), FIXTURES)


@pytest.fixture(scope="module")
def failing_run(plugin_dir, fixtures_dir):
    """Every failing plug-in, then numpy-reference, in one run."""
    return hostile.run_suite(fixtures_dir, impls=[h.spec for h in FAILING] + ["numpy-reference"],
                             pythonpath=[plugin_dir], timeout=300)


def test_failing_run_exit_status_and_reference(failing_run):
    assert failing_run.returncode == 1, failing_run.output[-3000:]
    assert failing_run.statuses("numpy-reference") == {f: "passed" for f in FIXTURES}, failing_run.output[-3000:]
    assert len(failing_run.cases) == (len(FAILING) + 1) * len(FIXTURES)


@pytest.mark.parametrize("bad", FAILING, ids=str)
def test_hostile_plugin(bad, failing_run):
    """Each case of the plug-in fails (or errors) with a message naming it and what went wrong."""
    says = bad.says.replace("{spec}", re.escape(bad.spec))
    for fid in FIXTURES:
        case = failing_run.case(fid, bad.spec)
        assert case["status"] == bad.status, case
        text = failing_run.failure(f"{bad.spec}-{fid}")
        assert re.search(says, text), f"{bad.spec} on {fid}:\n{text}\ndoes not match {says!r}"
        if bad.status == "failed":
            # the repro line carries the environment the case depended on (KERAS_BACKEND under tox)
            assert re.search(rf"repro: (\S+=\S* )*pytest --pyargs conformance --impl {re.escape(bad.spec)} "
                             rf"--fixture-id {fid}", text), text


def test_vandal_cannot_reach_the_next_implementation(failing_run, fixtures_dir):
    """The vandal zeroed its arrays and rewrote config, gates and tolerance; numpy-reference still passes."""
    for fid in FIXTURES:
        assert failing_run.case(fid, _m("vandal"))["status"] == "failed"
        reference = failing_run.case(fid, "numpy-reference")
        assert reference["status"] == "passed" and reference["max_abs_error"] < 1e-5, reference
    order = [c["impl"] for c in failing_run.cases]  # records are written in the order the cases ran
    assert order.index(_m("vandal")) < order.index("numpy-reference")


def test_passing_plugins(plugin_dir, fixtures_dir):
    """float64 with the right values passes (compared in float64); garbage on stdout changes nothing."""
    run = hostile.run_suite(fixtures_dir, impls=[*PASSING, _m("unsupported"), "numpy-reference"],
                            pythonpath=[plugin_dir])
    assert run.returncode == 0, run.output[-3000:]
    for spec in [*PASSING, "numpy-reference"]:
        assert run.statuses(spec) == {f: "passed" for f in FIXTURES}, (spec, run.output[-3000:])
    assert run.statuses(_m("unsupported")) == {f: "skipped" for f in FIXTURES}
    assert all(c["message"] == f"{_m('unsupported')}: masking is not implemented here"
               for c in run.cases if c["impl"] == _m("unsupported"))
    assert f"{len(FIXTURES) * 3} passed, {len(FIXTURES)} skipped" in run.output


def test_hanging_plugin_times_out(plugin_dir, fixtures_dir):
    """A run() that sleeps 600 s fails after --impl-timeout 1 s per fixture; the run finishes quickly."""
    started = time.perf_counter()
    run = hostile.run_suite(fixtures_dir, "--impl-timeout", "1", impls=[_m("hangs"), "numpy-reference"],
                            pythonpath=[plugin_dir], timeout=120)
    elapsed = time.perf_counter() - started
    assert run.returncode == 1, run.output[-3000:]
    assert run.statuses(_m("hangs")) == {f: "failed" for f in FIXTURES}
    assert run.statuses("numpy-reference") == {f: "passed" for f in FIXTURES}
    for fid in FIXTURES:
        assert re.search(r"implementation 'hostile_impls:hangs' raised TimeoutError: run\(\) did not return within "
                         r"1 s \(per-fixture timeout; set --impl-timeout or LSTM_CONFORMANCE_TIMEOUT\)",
                         run.failure(f"{_m('hangs')}-{fid}"))
    assert "per-fixture timeout 1 s" in run.output
    assert elapsed < 30, f"the run took {elapsed:.0f} s"


def test_unreadable_keras_version(plugin_dir, tmp_path):
    """A plug-in declaring keras_version "banana" errors on fixtures with ``applies_to``, and only there."""
    root = tmp_path / "fixtures"
    root.mkdir()
    versioned = next(p.name for p in sorted(hostile.gallery_dir().iterdir())
                     if "applies_to" in hostile.read_meta_raw(p) and "keras" in hostile.read_meta_raw(p)["applies_to"])
    for fid in (versioned, FIXTURES[0]):
        hostile.copy_fixture(root, fid)
    run = hostile.run_suite(root, impls=[_m("banana_version"), "numpy-reference"], pythonpath=[plugin_dir])
    assert run.returncode == 1, run.output[-3000:]
    assert run.statuses(_m("banana_version")) == {versioned: "error", FIXTURES[0]: "passed"}
    assert re.search(rf"{versioned}: cannot decide applies_to \{{'keras': '[^']+'\}} for implementation "
                     rf"'{_m('banana_version')}' \(keras_version 'banana', backend None\): InvalidVersion: ",
                     run.case(versioned, _m("banana_version"))["message"]), run.output[-3000:]
    assert set(run.statuses("numpy-reference").values()) <= {"passed", "skipped"}


# -- registered entry points: a temporary .dist-info on sys.path ----------------------------------

ENTRY_POINTS = """\
[lstm_conformance.implementations]
broken-module = a_registered_module_that_is_missing_xyz:run
broken-attribute = hostile_dup:no_such_run
numpy-reference = hostile_dup:run
"""


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory) -> Path:
    """A folder that importlib.metadata reads as an installed distribution ``hostile-eps`` 1.0."""
    site = tmp_path_factory.mktemp("site")
    info = site / "hostile_eps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-eps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "hostile_dup.py").write_text("from conformance.reference import run\n")
    return site


def test_broken_registered_entry_points(dist_dir, fixtures_dir):
    """A registered entry point naming a missing module or attribute errors in its own cases only;
    a second ``numpy-reference`` registration warns, naming both, and the run goes on."""
    run = hostile.run_suite(fixtures_dir, impls=["broken-module", "broken-attribute",
                                                                 "numpy-reference"], pythonpath=[dist_dir])
    assert run.returncode == 1, run.output[-3000:]
    assert run.statuses("broken-module") == {f: "error" for f in FIXTURES}
    assert run.statuses("broken-attribute") == {f: "error" for f in FIXTURES}
    assert run.statuses("numpy-reference") == {f: "passed" for f in FIXTURES}
    for fid in FIXTURES:
        assert re.search(r"implementation 'broken-module' \(a_registered_module_that_is_missing_xyz:run\) failed "
                         r"to load:(.|\n)*No module named 'a_registered_module_that_is_missing_xyz'",
                         run.failure(f"broken-module-{fid}"))
        assert re.search(r"implementation 'broken-attribute' \(hostile_dup:no_such_run\) failed to load:"
                         r"(.|\n)*has no attribute 'no_such_run'", run.failure(f"broken-attribute-{fid}"))
    warning = re.search(r"implementation name 'numpy-reference' is registered twice: (\S+) \((\S+)\) and "
                        r"(\S+) \((\S+)\); using the first", run.output)
    assert warning, run.output[-3000:]
    assert {warning.group(1), warning.group(3)} == {"conformance.reference:run", "hostile_dup:run"}
    assert {warning.group(2), warning.group(4)} == {"lstm-conformance", "hostile-eps"}
    assert re.search(rf"implementation numpy-reference \S+ = {re.escape(warning.group(1))}\b", run.output)


def test_registry_lists_broken_entry_points_without_loading_them(dist_dir, tmp_path):
    """Listing reads metadata only: a broken entry point is listed, and its info() reports the error."""
    script = ("import warnings; warnings.simplefilter('error')\n"
              "from conformance import registry\n"
              "try:\n    registry.registered()\nexcept UserWarning as w:\n    print('WARNED', w)\n"
              "warnings.simplefilter('ignore')\n"
              "impls = registry.registered()\n"
              "print('LISTED', sorted(impls))\n"
              "print('INFO', impls['broken-module'].info())\n")
    done = hostile.subprocess.run([hostile.sys.executable, "-c", script], capture_output=True, text=True,
                                  timeout=120, cwd=tmp_path, env=hostile.clean_env([dist_dir]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNED implementation name 'numpy-reference' is registered twice" in done.stdout
    listed = re.search(r"^LISTED (.*)$", done.stdout, re.M).group(1)
    assert all(name in listed for name in ("'broken-attribute'", "'broken-module'", "'numpy-reference'", "'keras'"))
    assert re.search(r"^INFO \{'version': '1.0', 'error': \"implementation 'broken-module' "
                     r"\(a_registered_module_that_is_missing_xyz:run\) failed to load:\"\}$", done.stdout, re.M), done.stdout
