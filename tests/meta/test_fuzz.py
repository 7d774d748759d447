"""The differential fuzzer: every catalogued mistake is found, shrunk, written and reproduced by the suite.

The meta test runs a port with each mistake of ``conformance/mistakes.py`` (``conformance.fuzz.mistaken``)
through ``fuzz`` with the documented budget and seed 0, against the numpy reference (fast; the drawn
examples do not depend on the oracle), and checks the written fixture: ``verify`` accepts it, the
mistaken port fails it with the mistake named, the correct reference passes it. The rest: the
in-memory fixture is held to the loader's checks, a seed and budget give the same examples, a
finding replays from its printed command, the database lives in the user's cache, the CLI and the
pytest option, Keras itself as the oracle, and the behaviour without Hypothesis.
"""

from __future__ import annotations

import re

import argparse
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance import Unsupported, fuzz, reference
from conformance.errors import FixtureError
from conformance.fixtures import Fixture, list_fixtures, load_fixture
from conformance.fuzz import engine, mistaken, space
from conformance.mistakes import BY_KEY, CATALOGUE, diagnose
from conformance.registry import Implementation
from conformance.suite import Case, judge
from conformance.verdict import Status

from helpers.repo import REPO
from helpers.venvs import clean_env

REFERENCE = engine.reference_oracle()
HAS_KERAS = importlib.util.find_spec("keras") is not None and importlib.util.find_spec("tensorflow") is not None


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fuzz.add_arguments(parser)
    return parser.parse_args(list(argv))


def recording(seen: list):
    """The numpy reference, recording the id (content-addressed) of every fixture it is given."""
    def run(fixture):
        seen.append(fixture.id)
        return reference.run(fixture)
    return Implementation("recording", "tests:recording", _loader=lambda: run)


# -- the meta test: every mistake of the catalogue ---------------------------------------------------

# The fuzzer draws the layers of ``space.LAYERS``: the layer of every mistake's tagged gallery fixture.
TAGGED_LAYER = {f.id: f.layer for f in list_fixtures().fixtures}


def test_the_fuzzer_draws_the_layer_of_every_catalogued_mistake():
    beyond = {m.key: TAGGED_LAYER.get(m.fixture) for m in CATALOGUE if TAGGED_LAYER.get(m.fixture) not in space.LAYERS}
    assert not beyond, beyond
    assert {"ConvLSTM1D", "ConvLSTM2D"} <= set(TAGGED_LAYER.values()) and len(CATALOGUE) >= 49


@pytest.mark.slow
@pytest.mark.parametrize("mistake", CATALOGUE, ids=[m.key for m in CATALOGUE])
def test_fuzzer_finds_every_catalogued_mistake(mistake, tmp_path):
    impl = mistaken.implementation(mistake)
    result = engine.search(impl, REFERENCE, seed=0, budget=engine.DEFAULT_BUDGET, out=tmp_path, database=False)
    found = result.finding
    assert found is not None, f"{mistake.key}: no counterexample in {engine.DEFAULT_BUDGET} examples"
    assert found.kind == "failed" and found.reproduced, result.text()
    assert result.examples <= engine.DEFAULT_BUDGET
    assert mistake.description in found.message, result.text()    # named by the suite's diagnosis
    assert found.citation in found.message
    assert re.search(r"repro: (\S+=\S* )*pytest --pyargs conformance", found.message)  # env first, if any

    listing = list_fixtures(tmp_path)                              # what `verify` checks
    assert not listing.errors and [f.id for f in listing.fixtures] == [found.path.name]
    written = listing.fixtures[0]
    assert written.verify_files() and written.citation == found.citation
    assert "reference-oracle" in written.tags and written.meta["generated_by"]["oracle"] == REFERENCE.label
    wrong = judge(Case(impl, written, tmp_path), timeout=30, diagnose=diagnose)
    assert wrong.status is Status.FAILED and mistake.description in wrong.message
    right = judge(Case(engine.REFERENCE_IMPL, written, tmp_path), timeout=30)
    assert right.status is Status.PASSED, right.message


def test_a_correct_port_passes(tmp_path):
    result = engine.search(engine.REFERENCE_IMPL, REFERENCE, seed=0, budget=40, out=tmp_path, database=False)
    assert result.finding is None and result.examples == 40
    assert not list(tmp_path.iterdir())
    assert "no counterexample in 40 examples" in result.text()


def test_shrinks_to_the_smallest_configuration(tmp_path):
    result = engine.search(mistaken.implementation(BY_KEY["masked-output-h0"]), REFERENCE, budget=200,
                           out=tmp_path, database=False)
    entry = result.finding.entry
    assert entry["layer"] == "LSTM" and entry["config"] == {"units": 1}, entry
    assert (entry["batch"], entry["timesteps"], entry["features"], entry["seed"]) == (1, 1, 1, 0)
    assert entry["mask"] == [[0]] and entry["initial_state"]
    assert result.shrink_examples > 0


# -- the in-memory fixture -----------------------------------------------------------------------------

def _built(entry=None):
    entry = entry or {"layer": "GRU", "batch": 2, "timesteps": 3, "features": 2, "config": {"units": 2},
                      "mask": [[1, 0, 1], [0, 0, 0]], "initial_state": True, "seed": 7}
    meta, arrays, _, _ = engine.build(entry, REFERENCE)
    return meta, arrays


def test_in_memory_fixture_passes_the_loaders_checks_and_equals_its_written_copy(tmp_path):
    meta, arrays = _built()
    fixture = Fixture.from_memory(meta, arrays)
    assert fixture.id.startswith("fuzz-gru-") and fixture.path == Path("<memory>") / fixture.id
    assert set(fixture.arrays) == set(arrays) and not fixture.arrays["x"].flags.writeable
    assert judge(Case(engine.REFERENCE_IMPL, fixture), timeout=30).status is Status.PASSED
    from conformance.writer import write_fixture
    on_disk = load_fixture(write_fixture(tmp_path, meta, arrays))
    assert on_disk.digest == fixture.digest and on_disk.verify_files() == ["arrays.npz"]


@pytest.mark.parametrize("damage, expected", [
    (lambda meta, arrays: arrays.update(x=arrays["x"] + 1), "does not match its sha256"),
    (lambda meta, arrays: arrays.pop("kernel"), "'kernel' listed in its metadata is missing"),
    (lambda meta, arrays: arrays.update(extra=np.zeros(1, np.float32)), "not listed in its metadata: extra"),
    (lambda meta, arrays: meta.update(layer="LSTMX"), "digest mismatch"),
    (lambda meta, arrays: meta.update(format_version=3), "unknown format_version"),
])
def test_in_memory_fixture_refuses_what_the_loader_refuses(damage, expected):
    meta, arrays = _built()
    damage(meta, arrays)
    with pytest.raises(FixtureError, match=expected):
        Fixture.from_memory(meta, arrays)


def test_in_memory_fixture_is_schema_checked():
    from conformance.writer import finish_meta
    meta, arrays = _built()
    bad = finish_meta({**meta, "gates": {**meta["gates"], "kernel": {"z": [0, 99]}}}, arrays)
    with pytest.raises(FixtureError, match=r"\$\.gates\.kernel\.z: range \[0, 99\) runs past"):
        Fixture.from_memory(bad, arrays)


def test_fixture_id_names_its_content():
    (a, _), (b, _) = _built(), _built()
    assert a["id"] == b["id"] and a["digest"] == b["digest"]
    meta, _ = _built({"layer": "LSTM", "batch": 1, "timesteps": 1, "features": 1, "config": {"units": 1}, "seed": 1})
    assert meta["id"] != a["id"] and meta["id"].startswith("fuzz-lstm-")


# -- reproducibility --------------------------------------------------------------------------------

def test_same_seed_and_budget_give_the_same_examples():
    runs = []
    for seed in (3, 3, 4):
        seen: list = []
        engine.search(recording(seen), REFERENCE, seed=seed, budget=25, out=None, database=False)
        runs.append(seen)
    assert len(runs[0]) == 25 and runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_seed_draws_the_same_examples_whatever_local_code_is_loaded(tmp_path, monkeypatch):
    """Hypothesis draws constants from local modules' source now and then; the fuzzer turns that off, so
    a seed means the same examples in any checkout (and nothing is cached in the working directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)  # conftest's redirect would hide a write here
    before: list = []
    engine.search(recording(before), REFERENCE, seed=3, budget=200, out=None, database=False)
    rng = np.random.default_rng(1)
    (tmp_path / "port_with_constants.py").write_text(f"VALUES = {rng.integers(0, 2**32, 300).tolist()}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "port_with_constants", raising=False)
    import port_with_constants  # noqa: F401 - a local module full of integers in the seed's range
    after: list = []
    engine.search(recording(after), REFERENCE, seed=3, budget=200, out=None, database=False)
    assert before == after
    assert not (tmp_path / ".hypothesis").exists()


def test_a_finding_replays_from_its_printed_command(tmp_path, capsys):
    spec = "conformance.fuzz.mistaken:stateful_state_not_carried"
    code = fuzz.main(cli_args("--impl", spec, "--seed", "5", "--budget", "200", "--oracle", "reference",
                              "--out", str(tmp_path / "first"), "--no-database"))
    first = capsys.readouterr().out
    assert code == 1 and "COUNTEREXAMPLE" in first
    replay = next(line for line in first.splitlines() if line.startswith("replay the search: "))
    argv = replay.split(": ", 1)[1].split()
    assert argv[:2] == ["lstm-conformance", "fuzz"] and "--seed" in argv and "5" in argv
    code = fuzz.main(cli_args(*argv[2:], "--out", str(tmp_path / "again"), "--no-database"))
    again = capsys.readouterr().out
    assert code == 1
    assert [p.name for p in (tmp_path / "first").iterdir()] == [p.name for p in (tmp_path / "again").iterdir()]
    cite = lambda text: next(line for line in text.splitlines() if "cite as" in line).split("cite as ")[1]  # noqa: E731
    assert cite(first) == cite(again)


def test_database_lives_in_the_user_cache_and_replays_the_counterexample(tmp_path, monkeypatch):
    monkeypatch.delenv("LSTM_CONFORMANCE_CACHE", raising=False)  # it would win over XDG_CACHE_HOME
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    impl = mistaken.implementation(BY_KEY["go-backwards-ignored"])
    first = engine.search(impl, REFERENCE, seed=0, budget=200, out=tmp_path / "out")
    assert first.finding is not None and first.examples > 1
    assert Path(first.database).is_relative_to(tmp_path / "cache" / "lstm-conformance" / "hypothesis")
    assert any(Path(first.database).rglob("*")), "the counterexample was not recorded"
    again = engine.search(impl, REFERENCE, seed=0, budget=200, out=tmp_path / "out")
    assert again.examples == 1 and again.finding.citation == first.finding.citation  # replayed first
    assert not list(work.iterdir()), "nothing may be written to the working directory"
    other = engine.search(mistaken.implementation(BY_KEY["mask-ignored"]), REFERENCE, budget=5, out=None)
    assert other.database != first.database      # one database per implementation and search space


# -- the command line ----------------------------------------------------------------------------------

def test_cli_report_fixture_and_the_ordinary_suite(tmp_path, capsys):
    out = tmp_path / "found"
    spec = "conformance.fuzz.mistaken:forget_bias_twice"
    code = fuzz.main(cli_args("--impl", spec, "--oracle", "reference", "--out", str(out), "--no-database"))
    report = capsys.readouterr().out
    assert code == 1, report
    for text in ("lstm-conformance fuzz: implementation", "the numpy reference", "COUNTEREXAMPLE after",
                 "LSTM(units=1); batch 1, 2 steps, 1 feature", "[mistake forget-bias-twice]",
                 f"pytest --pyargs conformance --impl {spec} --fixture-id fuzz-lstm-",
                 f"fixture written: {out}/fuzz-lstm-", "cite as fuzz-lstm-", "replay the search: lstm-conformance"):
        assert text in report, report
    from conformance import cli
    assert cli.main(["verify", "--fixtures-dir", str(out)]) == 0
    capsys.readouterr()
    env = clean_env(PYTHONPATH=str(REPO))
    suite = [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider", "-q",
             "--fixtures-dir", str(out), "--no-ledger"]
    done = subprocess.run([*suite, "--impl", spec], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "[mistake forget-bias-twice]" in done.stdout, done.stdout + done.stderr
    done = subprocess.run([*suite, "--impl", "numpy-reference"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("argv, expected", [
    ((), "name the implementation to fuzz with --impl"),
    (("--impl", "numpy-reference", "--layer", "LSTMX"), "--layer 'LSTMX'"),
    (("--impl", "numpy-reference", "--tag", "nope"), "--tag 'nope': the fuzzer draws these tags"),
    (("--impl", "numpy-reference", "--layer", "Bidirectional", "--tag", "go_backwards"), "can carry every tag"),
    (("--impl", "numpy-reference", "--tag", "strides", "--tag", "dilation"), "can carry every tag"),
    (("--impl", "numpy-reference", "--layer", "ConvLSTM1D", "--tag", "stateful"), "can carry every tag"),
    (("--impl", "no-such-port"), "no implementation named 'no-such-port'"),
])
def test_cli_usage_errors_exit_2(argv, expected, capsys, monkeypatch):
    monkeypatch.delenv("LSTM_CONFORMANCE_IMPL", raising=False)
    assert fuzz.main(cli_args(*argv)) == 2
    assert expected in capsys.readouterr().err


def test_tags_and_layers_restrict_the_search():
    seen: list = []
    result = engine.search(recording(seen), REFERENCE, budget=30, layers=["LSTM", "GRU"], tags=["mask", "stateful"],
                           out=None, database=False)
    assert result.finding is None and len(seen) == 30
    examples = []

    def keep(fixture):
        examples.append(fixture)
        return reference.run(fixture)
    engine.search(Implementation("keep", "tests:keep", _loader=lambda: keep), REFERENCE, budget=30,
                  tags=["mask-full-row", "go_backwards"], out=None, database=False)
    assert examples and all({"mask-full-row", "go_backwards", "fuzz"} <= set(f.tags) for f in examples)
    assert all(f.layer in (*space.SINGLE, *space.CONV) and not f.inputs["mask"].all() for f in examples)


def test_convolutional_layers_are_drawn_as_keras_accepts_them():
    """ConvLSTM1D/2D alone (no wrapper, not stateful), channels_last, strides or dilation but not both above 1,
    every output position non-empty, and every option the gallery gives them drawn somewhere."""
    examples = []

    def keep(fixture):
        examples.append(fixture)
        return reference.run(fixture)
    result = engine.search(Implementation("keep", "tests:keep", _loader=lambda: keep), REFERENCE, budget=150,
                           layers=list(space.CONV), out=None, database=False)
    assert result.finding is None and len(examples) == 150
    seen = set()
    for f in examples:
        config, rank = f.config, int(f.layer[-2])
        assert f.layer in space.CONV and "stateful" not in config and config["data_format"] == "channels_last"
        assert not (max(config["strides"]) > 1 and max(config["dilation_rate"]) > 1), config
        x = f.inputs["x"]
        assert x.ndim == 3 + rank and f.arrays["kernel"].shape[:rank] == tuple(config["kernel_size"])
        assert all(n > 0 for n in f.arrays["output"].shape), (f.id, config, x.shape)
        seen |= set(f.tags) | {f.layer, *(k for k in ("mask", "initial_state_h") if k in f.inputs)}
    assert {"ConvLSTM1D", "ConvLSTM2D", "padding-valid", "padding-same", "strides", "dilation", "even-kernel",
            "go_backwards", "return_sequences", "return_state", "mask", "initial_state_h"} <= seen, seen


def test_cli_fuzzes_one_convolutional_layer(tmp_path, capsys):
    spec = "conformance.fuzz.mistaken:conv_lstm_kernel_oihw"
    code = fuzz.main(cli_args("--impl", spec, "--layer", "ConvLSTM2D", "--oracle", "reference", "--budget", "50",
                              "--out", str(tmp_path), "--no-database"))
    report = capsys.readouterr().out
    assert code == 1, report
    assert "layers ConvLSTM2D;" in report and "COUNTEREXAMPLE" in report and "  ConvLSTM2D(filters=" in report
    assert "[mistake conv-lstm-kernel-oihw]" in report and f"fixture written: {tmp_path}/fuzz-conv-lstm2d-" in report
    assert "--layer ConvLSTM2D" in report.splitlines()[-1]


def test_the_budget_counts_only_examples_the_implementation_supports():
    seen = []

    def gru_only(fixture):
        if fixture.layer != "GRU":
            raise Unsupported("GRU only")
        seen.append(fixture.layer)
        return reference.run(fixture)
    result = engine.search(Implementation("gru-only", "tests:gru_only", _loader=lambda: gru_only), REFERENCE,
                           budget=20, out=None, database=False)
    assert result.finding is None and result.examples == 20 == len(seen)
    assert sum(result.skipped.values()) > 20 and list(result.skipped) == ["GRU only"]
    assert "no counterexample in 20 examples (" in result.text() and "skipped: GRU only" in result.text()

    def nothing(fixture):
        raise Unsupported("nothing")
    none = engine.search(Implementation("nothing", "tests:nothing", _loader=lambda: nothing), REFERENCE,
                         budget=20, out=None, database=False)
    assert none.finding is None and none.examples == 0 and none.skipped["nothing"] > 20


@pytest.mark.parametrize("tag", space.TAGS)
def test_every_tag_can_be_asked_for(tag):
    examples = []

    def keep(fixture):
        examples.append(fixture)
        return reference.run(fixture)
    result = engine.search(Implementation("keep", "tests:keep", _loader=lambda: keep), REFERENCE, budget=8,
                           tags=[tag], out=None, database=False)
    assert result.finding is None and len(examples) == 8
    assert all(tag in f.tags for f in examples), [f.tags for f in examples]


def test_time_budget_runs_seeded_rounds(capsys):
    code = fuzz.main(cli_args("--impl", "numpy-reference", "--seconds", "1", "--oracle", "reference", "--no-database"))
    assert code == 0
    assert "no counterexample in" in capsys.readouterr().out


def test_without_hypothesis_the_command_says_how_to_install_it(tmp_path):
    script = textwrap.dedent("""
        import argparse, sys
        sys.modules["hypothesis"] = None   # as if not installed: import fails, find_spec says None
        from conformance import fuzz
        import conformance.fuzz.pytest_plugin, conformance.entries, conformance.fuzz.mistaken  # no Hypothesis needed
        parser = argparse.ArgumentParser()
        fuzz.add_arguments(parser)
        sys.exit(fuzz.main(parser.parse_args(["--impl", "numpy-reference"])))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the fuzzer needs Hypothesis, which is not installed: pip install " in done.stderr, done.stderr
    assert "hypothesis" in done.stderr.rsplit("pip install ", 1)[1], done.stderr


# -- pytest --conformance-fuzz N ---------------------------------------------------------------------

def _suite(pytester, *args):
    return pytester.runpytest_subprocess("--pyargs", "conformance", "-p", "conformance.fuzz.pytest_plugin",
                                         "-p", "no:cacheprovider", "--no-ledger", "--fixture-id", "lstm-basic", *args)


def test_pytest_collects_no_fuzz_test_without_the_option(pytester):
    result = _suite(pytester, "--impl", "numpy-reference", "--collect-only", "-q")
    assert "test_conformance" in result.stdout.str() and "test_fuzz" not in result.stdout.str()


def test_pytest_option_fuzzes_each_implementation(pytester, monkeypatch):
    monkeypatch.delenv("LSTM_CONFORMANCE_CACHE", raising=False)  # it would win over XDG_CACHE_HOME
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    spec = "conformance.fuzz.mistaken:h_c_swapped"
    result = _suite(pytester, "--impl", spec, "--impl", "numpy-reference", "--conformance-fuzz", "20",
                    "--conformance-fuzz-oracle", "reference", "--conformance-fuzz-out", "found")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 2 and outcomes.get("passed") == 2, result.stdout.str()  # lstm-basic + fuzz
    text = result.stdout.str()
    assert f"test_fuzz[{spec}]" in text and "[mistake h-c-swapped]" in text
    assert "fixture written: found/fuzz-lstm-" in text
    assert list_fixtures(pytester.path / "found").fixtures
    assert any((pytester.path / "cache" / "lstm-conformance" / "hypothesis").iterdir())


# -- Keras as the oracle --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not HAS_KERAS, reason="needs TensorFlow and Keras")
def test_keras_oracle_accepts_every_drawn_configuration_and_agrees_with_the_reference(tmp_path):
    """Keras refuses nothing the fuzzer draws, and the numpy reference agrees with it on every example."""
    oracle = engine.choose_oracle("keras")
    assert oracle.is_keras and dict(oracle.provenance)["backend"] == "tensorflow"
    result = engine.search(engine.REFERENCE_IMPL, oracle, seed=11, budget=60, out=tmp_path, database=False)
    assert result.finding is None, result.text()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_KERAS, reason="needs TensorFlow and Keras")
def test_keras_oracle_accepts_every_drawn_convolutional_configuration(tmp_path):
    oracle = engine.choose_oracle("keras")
    result = engine.search(engine.REFERENCE_IMPL, oracle, seed=11, budget=40, layers=list(space.CONV), out=tmp_path,
                           database=False)
    assert result.finding is None, result.text()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_KERAS, reason="needs TensorFlow and Keras")
def test_keras_oracle_fixture_is_as_good_as_a_gallery_one(tmp_path):
    impl = mistaken.implementation(BY_KEY["gru-bias-rows-swapped"])
    result = engine.search(impl, engine.choose_oracle("keras"), budget=100, out=tmp_path, database=False)
    written = load_fixture(result.finding.path)
    assert "reference-oracle" not in written.tags and "model_file" in written.meta
    assert written.verify_files() == ["arrays.npz", "model.keras"]
    provenance = written.meta["generated_by"]
    assert provenance["keras"] and provenance["oracle"].startswith("Keras ") and provenance["fuzz_seed"] == "0"
    for name in ("keras", "keras-load", "numpy-reference"):
        from conformance.registry import registered
        verdict = judge(Case(registered()[name], written, tmp_path), timeout=120)
        assert verdict.status is Status.PASSED, f"{name}: {verdict.message}"
