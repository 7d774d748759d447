"""Meta tests of the mistake catalogue against the gallery: every mistake is caught, and named.

Each mistake is run as an implementation (the reference computed the wrong way) through the
same engine as the suite. A gallery change that lets a mistake through fails here.
"""

import importlib.util

import numpy as np
import pytest

from conformance import Unsupported, list_fixtures
from conformance.compare import matches
from conformance.mistakes import CATALOGUE, Problem, diagnose
from conformance.registry import Implementation
from conformance.suite import Case, judge

from helpers.repo import REPO

LISTING = list_fixtures()
assert not LISTING.errors, LISTING.errors  # a broken fixture must not silently shrink what is tested
GALLERY = LISTING.fixtures
BY_ID = {f.id: f for f in GALLERY}
IMPLS = REPO / "tests" / "impls"


def as_implementation(mistake) -> Implementation:
    def run(fixture):
        outputs = mistake.outputs(fixture)
        if outputs is None:
            raise Unsupported(f"mistake {mistake.key} does not apply to this fixture")
        return {k: np.asarray(v, np.float32) for k, v in outputs.items() if k != "trace"}
    return Implementation(f"mistake-{mistake.key}", f"tests:{mistake.key}", _loader=lambda: run)


def killed_by(mistake) -> list[str]:
    """Gallery fixtures on which a port with this mistake fails."""
    killers = []
    for fixture in GALLERY:
        wrong = mistake.outputs(fixture)
        if wrong is not None and not matches(fixture, {k: v.astype(np.float32) for k, v in wrong.items()
                                                       if k != "trace"}):
            killers.append(fixture.id)
    return killers


@pytest.fixture(scope="module")
def kill_table(request):
    table = {m.key: killed_by(m) for m in CATALOGUE}
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            print_kill_table(reporter, table)
    return table


def print_kill_table(reporter, table):
    reporter.write_line("")
    reporter.write_line(f"mistake kill table ({len(CATALOGUE)} mistakes x {len(GALLERY)} fixtures):")
    for key, killers in table.items():
        reporter.write_line(f"  {key:40} killed by {len(killers):3} fixtures, e.g. {', '.join(killers[:3])}")


@pytest.mark.parametrize("mistake", CATALOGUE, ids=[m.key for m in CATALOGUE])
def test_mistake_is_detected_by_its_own_fixture(mistake, kill_table):
    assert mistake.fixture in BY_ID, f"{mistake.key}: tagged fixture {mistake.fixture!r} is not in the gallery"
    assert kill_table[mistake.key], f"{mistake.key}: no gallery fixture detects this mistake"
    assert mistake.fixture in kill_table[mistake.key], (
        f"{mistake.key}: its tagged fixture {mistake.fixture} does not detect it "
        f"(detected by: {', '.join(kill_table[mistake.key][:5])})")


# Ports written apart from the catalogue (tests/impls/: own numpy loops, or the reference with ONNX's gate slices),
# each making one mistake: port module -> (the catalogued mistake it makes, a fixture that shows it).
INDEPENDENT_PORTS = {
    "impl_onnx_gate_order": ("lstm-gate-order-iofc", "lstm-return-sequences"),
    "impl_lstm_forget_bias_twice": ("forget-bias-twice", "lstm-seed-question"),
    "impl_gru_reset_wrong_side": ("gru-reset-after-mixed-up", "gru-reset-after-return-sequences"),
    "impl_lstm_go_backwards_flipped": ("go-backwards-flipped-back", "lstm-go-backwards-sequences"),
}


def _independent_port(module: str) -> Implementation:
    spec = importlib.util.spec_from_file_location(f"_mistakes_{module}", IMPLS / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return Implementation(module, f"tests/impls/{module}.py:run", _loader=lambda: loaded.run)


@pytest.mark.parametrize("module", INDEPENDENT_PORTS)
def test_mistake_is_named_in_the_failure_message(module):
    """A port that makes a mistake, computed without the catalogue, is named with it in the failure message."""
    key, fixture_id = INDEPENDENT_PORTS[module]
    mistake = next(m for m in CATALOGUE if m.key == key)
    fixture = BY_ID[fixture_id]
    verdict = judge(Case(_independent_port(module), fixture), timeout=30, diagnose=diagnose)
    assert verdict.status == "failed", verdict.message
    assert fixture.citation in verdict.message
    assert mistake.description in verdict.message, verdict.message
    assert f"[mistake {mistake.key}]" in verdict.message
    assert "no single catalogued mistake matches" not in verdict.message, verdict.message


def test_correct_output_is_not_diagnosed_as_a_mistake():
    for fixture in GALLERY:
        expected = {k: np.array(v) for k, v in fixture.expected.items()}
        assert diagnose(fixture, expected) is None, fixture.id


NOT_PRECISION = [m for m in CATALOGUE if not m.key.startswith("reduced-precision-")]


@pytest.mark.parametrize("mistake", NOT_PRECISION, ids=[m.key for m in NOT_PRECISION])
def test_a_mistake_in_bfloat16_is_named_as_a_pair_on_its_fixture(mistake):
    """Every mistake composes with the bfloat16 emulation (``mistakes.chain``): a port making it in bfloat16 is
    named with both, whichever way the diagnosis finds the pair."""
    fixture = BY_ID[mistake.fixture]
    bf16 = next(m for m in CATALOGUE if m.key == "reduced-precision-bf16")
    both = bf16.transform(mistake.transform(Problem.of(fixture))).outputs()
    result = {k: np.asarray(v, np.float32) for k, v in both.items() if k != "trace"}
    text = diagnose(fixture, result)
    assert text and f"[mistake {mistake.key}]" in text, text
    assert (f"[mistake {bf16.key}]" in text
            or "in reduced precision: consistent with computing in bfloat16" in text), text


def test_onnx_order_message_reads_in_plain_words():
    onnx = next(m for m in CATALOGUE if m.key == "lstm-gate-order-iofc")
    fixture = BY_ID["lstm-return-sequences"]
    verdict = judge(Case(as_implementation(onnx), fixture), timeout=30, diagnose=diagnose)
    assert "matches the reference computed with LSTM gate order i,o,f,c — the ONNX order" in verdict.message
    assert "output 'output'" in verdict.message and "timestep" in verdict.message
