"""The diagnosis beyond one catalogued mistake, on real reference outputs transformed as real tools get them wrong.

Every result below is the numpy reference (float64) run on a gallery fixture and then changed the way a
converter or runtime changes it: computed in bfloat16 or float16, with two mistakes at once, with its outputs
returned in another order, with some outputs left out. No expected number is typed in.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util

import numpy as np
import pytest

from conformance import list_fixtures, reference, wrappers
from conformance.compare import compare
from conformance.mistakes import (BY_KEY, CATALOGUE, MAX_PAIRS, PRECISIONS, Problem, diagnose, precision,
                                  round_bfloat16, round_float16)
import conformance.mistakes as mistakes
from conformance.diagnosis import search
from conformance.verdict import Status

from helpers.repo import REPO

FIXTURES = {f.id: f for f in list_fixtures().fixtures}
BF16, F16 = (p for p in PRECISIONS)


def as_returned(outputs) -> dict:
    """What a port hands back: float32 arrays, no trace."""
    return {k: np.asarray(v, np.float32) for k, v in outputs.items() if k != "trace"}


def keras(fixture_id: str) -> dict:
    return Problem.of(FIXTURES[fixture_id]).outputs()


def diagnosis(fixture_id: str, result, **options) -> list[str]:
    verdict = compare(FIXTURES[fixture_id], result, "port", "1.0", "repro-command", diagnose, **options)
    assert verdict.status == Status.FAILED, verdict.message
    lines = [line.strip() for line in verdict.message.splitlines() if line.strip().startswith("diagnosis:")]
    assert all(line.startswith("diagnosis: ") for line in lines)
    return [line[len("diagnosis: "):] for line in lines]


def rounded_steps(rnd):
    """A runtime in reduced precision unlike the catalogue's emulation: x, states, gates and new states rounded
    each step, the pre-activations not; weights rounded once."""
    def cell_override(fam):
        def cell(x, states, w, act, rec_act, config):
            values, new = fam.cell(rnd(x), tuple(rnd(s) for s in states), w, act, rec_act, config)
            return {k: rnd(v) for k, v in values.items()}, tuple(rnd(s) for s in new)
        return cell

    def run(problem: Problem) -> dict:
        problem = dataclasses.replace(problem, weights={k: rnd(v) for k, v in problem.weights.items()})
        return problem.overridden(cell=cell_override).outputs()
    return run


PRECISION_FIXTURES = ["lstm-seed-question", "gru-reset-after-basic", "simple-rnn-return-sequences",
                      "conv-lstm1d-basic", "bidirectional-lstm-concat-sequences", "stacked-lstm-gru",
                      "stateful-lstm-three-calls"]


# -- reduced precision -------------------------------------------------------------------------------------

def _precision_lines(fixture_id: str, how: str, rounder) -> list[str]:
    """The diagnosis of the reference run rounded like a runtime: at each step, or only its outputs."""
    problem = Problem.of(FIXTURES[fixture_id])
    run = rounded_steps(rounder)(problem) if how == "each step" else {
        k: rounder(v) for k, v in problem.outputs().items() if k != "trace"}
    lines = diagnosis(fixture_id, as_returned(run))
    assert lines[0] == "no single catalogued mistake matches"
    return lines


@pytest.mark.parametrize("fixture_id", PRECISION_FIXTURES)
@pytest.mark.parametrize("how", ["each step", "outputs only"])
def test_a_bfloat16_run_is_named_bfloat16_and_not_float16(fixture_id, how):
    lines = _precision_lines(fixture_id, how, round_bfloat16)
    assert len(lines) == 2 and lines[1].startswith("consistent with computing in bfloat16 (median rel error ")
    assert "bf16 unit roundoff 0.0039" in lines[1]
    assert "float16" not in lines[1].replace("bfloat16", "")


@pytest.mark.parametrize("fixture_id", PRECISION_FIXTURES)
@pytest.mark.parametrize("how", ["each step", "outputs only"])
def test_a_float16_run_is_named_float16_and_not_bfloat16(fixture_id, how):
    lines = _precision_lines(fixture_id, how, round_float16)
    assert len(lines) == 2 and lines[1].startswith("consistent with computing in float16 (median rel error ")
    # bfloat16 is never the dtype named; it may appear only as "bfloat16 matmul operands", whose errors
    # look like float16's (measured on OpenVINO's bf16 CPU default)
    assert "computing in bfloat16" not in lines[1]
    assert lines[1].replace("bfloat16 matmul operands", "").replace("bfloat16 hardware", "").count("bfloat16") == 0


def test_returned_values_that_are_bfloat16_numbers_are_said_to_be():
    outputs = {k: round_bfloat16(v) for k, v in keras("lstm-seed-question").items() if k != "trace"}
    (_, hint) = diagnosis("lstm-seed-question", as_returned(outputs))
    assert hint.endswith("every returned value is exactly a bfloat16 number")


def test_the_catalogued_emulation_itself_is_named_as_its_mistake():
    for mistake in (BY_KEY["reduced-precision-bf16"], BY_KEY["reduced-precision-f16"]):
        lines = diagnosis("lstm-basic", as_returned(mistake.outputs(FIXTURES["lstm-basic"])))
        assert lines == [f"matches the reference computed with {mistake.description} [mistake {mistake.key}]"]


def test_a_concentrated_error_is_never_called_reduced_precision():
    fixture_id = "lstm-return-sequences"
    want = keras(fixture_id)
    bf16 = {k: round_bfloat16(v) for k, v in want.items() if k != "trace"}
    rng = np.random.default_rng(0)
    half_exact = {k: np.where(rng.random(v.shape) < 0.5, want[k], v) for k, v in bf16.items()}
    one_far = {k: v.copy() for k, v in bf16.items()}
    one_far["output"][0, -1, 0] += 0.1
    wrong_rows = {k: v.copy() for k, v in want.items() if k != "trace"}
    wrong_rows["output"][1] *= 1.01  # one batch row off by 1%, the other exact
    for result in (half_exact, one_far, wrong_rows):
        lines = diagnosis(fixture_id, as_returned(result))
        assert not any("consistent with computing" in line for line in lines), lines


@pytest.mark.parametrize("factor", [0.98, 1.01, 1.05])
def test_a_uniform_scaling_is_not_called_reduced_precision(factor):
    scaled = {k: v * factor for k, v in keras("gru-reset-before-basic").items() if k != "trace"}
    lines = diagnosis("gru-reset-before-basic", as_returned(scaled))
    assert not any("consistent with computing" in line for line in lines), lines


def test_rounding_to_bfloat16_is_to_nearest_even_on_the_upper_16_bits():
    one, step = 1.0, 2.0 ** -7                       # bfloat16 keeps 7 fraction bits
    assert round_bfloat16(np.array([one + step / 2]))[0] == one                  # a tie goes to the even number
    assert round_bfloat16(np.array([one + 3 * step / 2]))[0] == one + 2 * step   # ...from either side
    assert round_bfloat16(np.array([one + step / 2 + 2.0 ** -20]))[0] == one + step
    values = np.random.default_rng(1).normal(size=1000) * 10.0 ** np.random.default_rng(2).integers(-5, 5, 1000)
    rounded = round_bfloat16(values)
    assert np.all(np.abs(rounded - values) <= BF16.unit_roundoff * np.abs(values) * (1 + 1e-6))
    assert np.all(rounded.astype(np.float32).view(np.uint32) & 0xFFFF == 0)
    assert np.all(np.abs(round_float16(values[np.abs(values) < 6e4]) - values[np.abs(values) < 6e4])
                  <= np.maximum(F16.unit_roundoff * np.abs(values[np.abs(values) < 6e4]), 2.0 ** -25))


# -- two mistakes at once ---------------------------------------------------------------------------------

def test_two_mistakes_at_once_are_named_as_a_pair():
    fixture = FIXTURES["lstm-mask-hard-sigmoid-keras3"]
    first, second = BY_KEY["mask-ignored"], BY_KEY["hard-sigmoid-keras2"]
    both = second.transform(first.transform(Problem.of(fixture))).outputs()
    lines = diagnosis(fixture.id, as_returned(both))
    assert lines[0] == "no single catalogued mistake matches"
    assert lines[1].startswith("matches the reference computed with two mistakes at once: ")
    for mistake in (first, second):
        assert f"{mistake.description} [mistake {mistake.key}]" in lines[1]


def test_a_stateless_conversion_in_bfloat16_is_named_as_a_pair():
    fixture = FIXTURES["stateful-lstm-three-calls"]
    stateless, bf16 = BY_KEY["stateful-state-not-carried"], BY_KEY["reduced-precision-bf16"]
    both = bf16.transform(stateless.transform(Problem.of(fixture))).outputs()
    (_, line) = diagnosis(fixture.id, as_returned(both))
    assert "two mistakes at once" in line and f"[mistake {stateless.key}]" in line and f"[mistake {bf16.key}]" in line


def test_a_mistake_in_a_real_runtimes_bfloat16_is_named_with_the_precision():
    """No emulation reproduces a runtime's bfloat16 bit for bit: the mistake is named up to that error."""
    fixture = FIXTURES["stateful-lstm-three-calls"]
    stateless = BY_KEY["stateful-state-not-carried"]
    run = rounded_steps(round_bfloat16)(stateless.transform(Problem.of(fixture)))
    (_, line) = diagnosis(fixture.id, as_returned(run))
    assert line.startswith(f"matches the reference computed with {stateless.description} [mistake {stateless.key}], "
                           "in reduced precision: consistent with computing in bfloat16")


def test_pairs_evaluated_are_bounded(monkeypatch):
    composed = []
    pair = mistakes._pair
    monkeypatch.setattr(search, "_pair", lambda a, b: composed.append((a, b)) or pair(a, b))
    for fixture_id in ("conv-lstm1d-go-backwards-initial-state", "bidirectional-lstm-concat-sequences"):
        rng = np.random.default_rng(3)
        random = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in FIXTURES[fixture_id].expected.items()}
        composed.clear()
        assert diagnosis(fixture_id, random)[0] == "no single catalogued mistake matches"
        assert 0 < len(composed) <= MAX_PAIRS


# -- outputs in another order ----------------------------------------------------------------------------

def test_outputs_returned_in_another_order_are_named():
    want = as_returned(keras("lstm-return-state"))
    # a runtime sorting its output tensors by name as text: what it returns as output is what Keras gives as state_c
    moved = {"output": want["state_c"], "state_h": want["output"], "state_c": want["state_h"]}
    lines = diagnosis("lstm-return-state", moved)
    assert lines[0] == "no single catalogued mistake matches"
    assert "output 'output' holds what was expected for 'state_c'" in lines
    assert any(line.startswith("output 'state_c' holds what was expected for 'output'") for line in lines)
    assert len(lines) == 3  # explained: nothing else is tried


def test_states_of_a_bidirectional_layer_returned_rotated():
    want = as_returned(keras("bidirectional-lstm-return-state"))
    names = ["forward/state_h", "forward/state_c", "backward/state_h", "backward/state_c"]
    moved = {**want, **{names[k]: want[names[k - 1]] for k in range(4)}}
    lines = diagnosis("bidirectional-lstm-return-state", moved)
    for k in range(4):
        assert f"output {names[k]!r} holds what was expected for {names[k - 1]!r}" in lines


# -- the closest mistake ---------------------------------------------------------------------------------

def test_the_closest_mistake_is_named_with_the_share_it_explains():
    fixture = FIXTURES["lstm-seed-question"]
    mistake = BY_KEY["forget-bias-twice"]
    result = as_returned(mistake.outputs(fixture))
    result["output"][0, 0] += 0.05           # and something else goes wrong in one element
    lines = diagnosis(fixture.id, result)
    assert lines[0] == "no single catalogued mistake matches"
    assert lines[-1].startswith(f"closest catalogued mistake: {mistake.description} [mistake {mistake.key}]: "
                                "it explains ")
    assert "% of the squared error" in lines[-1]


def test_no_closest_mistake_for_an_error_none_explains():
    rng = np.random.default_rng(4)
    random = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in FIXTURES["lstm-basic"].expected.items()}
    assert diagnosis("lstm-basic", random) == ["no single catalogued mistake matches"]


# -- states advanced twice ------------------------------------------------------------------------------

def test_states_advanced_twice_means_each_chunk_run_again_from_where_it_ended():
    fixture = FIXTURES["stateful-lstm-three-calls"]
    wrong = BY_KEY["states-advanced-twice"].outputs(fixture)
    right = keras(fixture.id)
    chunk = wrappers.split_calls(fixture.inputs, fixture.meta["calls"])[0]
    twice = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                              {"x": np.concatenate([chunk["x"]] * 2, axis=1)})
    assert np.allclose(wrong["calls/0/output"], right["calls/0/output"])      # the call's outputs: one pass
    for state in ("state_h", "state_c"):
        assert np.allclose(wrong[f"calls/0/{state}"], twice[state])             # its states: a second pass
    second_call = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates,
                                    fixture.activations,
                                    {"x": wrappers.split_calls(fixture.inputs, fixture.meta["calls"])[1]["x"],
                                     "initial_state_h": twice["state_h"], "initial_state_c": twice["state_c"]})
    assert np.allclose(wrong["calls/1/output"], second_call["output"])          # carried to the next call
    assert set(wrong) == set(right)


# -- compare's options -------------------------------------------------------------------------------------

def test_no_trace_hint_for_an_implementation_that_cannot_return_one():
    result = {k: v * 1.1 for k, v in as_returned(keras("lstm-return-state")).items()}
    fixture = FIXTURES["lstm-return-state"]
    assert "return a 'trace' mapping" in compare(fixture, result, "port").message
    assert "return a 'trace'" not in compare(fixture, result, "port", can_trace=False).message


def test_declared_partial_outputs_agreeing_are_partial_never_passed():
    fixture = FIXTURES["lstm-return-state"]
    only = {"output": as_returned(keras(fixture.id))["output"]}
    verdict = compare(fixture, only, "converter", returns={"output"}, diagnose=diagnose)
    assert verdict.status == Status.PARTIAL and not verdict.ok
    assert "checked: 'output'" in verdict.message
    assert "not returned" in verdict.message and "'state_h', 'state_c'" in verdict.message
    assert compare(fixture, only, "converter").status == Status.FAILED        # undeclared: missing outputs


def test_declared_partial_outputs_with_a_wrong_output_fail():
    fixture = FIXTURES["lstm-return-state"]
    wrong = {"output": as_returned(BY_KEY["cell-tanh-omitted"].outputs(fixture))["output"]}
    verdict = compare(fixture, wrong, "converter", returns={"output"}, diagnose=diagnose)
    assert verdict.status == Status.FAILED and verdict.mismatched == ["output"]
    assert "not returned" in verdict.message
    named = BY_KEY["cell-tanh-omitted"].description
    assert f"diagnosis: matches the reference computed with {named}" in verdict.message


def test_declared_partial_outputs_all_returned_pass():
    fixture = FIXTURES["lstm-return-state"]
    assert compare(fixture, as_returned(keras(fixture.id)), "converter", returns={"output"}).status == Status.PASSED


def test_a_declared_output_missing_is_still_a_problem():
    fixture = FIXTURES["lstm-return-state"]
    verdict = compare(fixture, {}, "converter", returns={"output"})
    assert verdict.status == Status.FAILED and "missing output 'output'" in verdict.message


def test_correct_outputs_are_never_diagnosed():
    for fixture_id in ("lstm-basic", "stateful-lstm-three-calls", "conv-lstm2d-basic"):
        assert diagnose(FIXTURES[fixture_id], as_returned(keras(fixture_id))) is None


def test_every_catalogued_mistake_has_a_fixture_of_its_own_and_a_unique_key():
    assert len({m.key for m in CATALOGUE}) == len(CATALOGUE)
    assert {"reduced-precision-bf16", "reduced-precision-f16", "states-advanced-twice"} <= set(BY_KEY)


def test_precision_is_none_without_non_zero_expected_values():
    zeros = {"output": np.zeros((2, 3))}
    assert precision(zeros, zeros, ["output"]) is None


def test_a_scale_fixture_is_not_searched_for_mistakes_and_says_so_with_the_precision_hint():
    """The scale family (SPEC 5.14): each catalogued mistake would be a whole 500-step run; the failure says the
    search was not made, and the precision hint, which needs one run, is still given."""
    fid = "scale-lstm-128u-500t"
    assert mistakes.step_values(FIXTURES[fid]) > mistakes.SEARCH_LIMIT
    assert max(mistakes.step_values(f) for f in FIXTURES.values() if "scale" not in f.tags) <= mistakes.SEARCH_LIMIT
    rounded = as_returned({k: round_bfloat16(v) for k, v in keras(fid).items() if k != "trace"})
    lines = diagnosis(fid, rounded)
    assert lines[0].startswith("catalogued mistakes not searched: this fixture is large (256,000 step-values")
    assert "consistent with computing in bfloat16" in lines[1]
    wrong = as_returned(BY_KEY["lstm-gate-order-ifoc"].outputs(FIXTURES[fid]))  # a mistake: still not searched
    lines = diagnosis(fid, wrong)
    assert len(lines) == 1 and lines[0].startswith("catalogued mistakes not searched"), lines


# -- slips of an independently written port (tests/impls/impl_lstm_slips.py) ------------------------------

def _slips():
    spec = importlib.util.spec_from_file_location("_impl_lstm_slips", REPO / "tests" / "impls" / "impl_lstm_slips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLIPS = _slips()


def _verdict(fixture, run):
    return compare(fixture, run(fixture.isolated()), "port", "1.0", "repro-command", diagnose)


@functools.cache
def _ported() -> tuple:
    """The LSTM fixtures the slip-free version of the independent port passes: where its slips are judged."""
    ported = []
    for fixture in FIXTURES.values():
        if fixture.layer != "LSTM" or fixture.meta.get("calls") or "scale" in fixture.tags:
            continue
        try:
            if _verdict(fixture, SLIPS.lstm).status == Status.PASSED:
                ported.append(fixture)
        except (KeyError, ValueError):   # an option the independent port does not implement
            continue
    assert len(ported) > 20, [f.id for f in ported]
    return tuple(ported)


def _named_where_it_shows(run, key: str, must_show: set[str]) -> set[str]:
    """Every fixture on which the slip makes the port fail names ``key``; the fixtures where it fails."""
    failing = set()
    for fixture in _ported():
        verdict = _verdict(fixture, run)
        if verdict.status == Status.PASSED:
            continue
        failing.add(fixture.id)
        assert f"[mistake {key}]" in verdict.message, (fixture.id, verdict.message)
        assert "no single catalogued mistake matches" not in verdict.message, (fixture.id, verdict.message)
    assert must_show <= failing, must_show - failing
    for fixture in _ported():   # the correct reference (numpy-reference) is never diagnosed as it
        assert _verdict(fixture, reference.run).status == Status.PASSED, fixture.id
    return failing


def test_tf1_forget_bias_is_named_also_on_a_layer_without_a_bias():
    failing = _named_where_it_shows(SLIPS.run_tf1_forget_bias, "forget-bias-twice",
                                    {"lstm-no-bias", "lstm-no-bias-initial-state", "lstm-seed-question"})
    assert len(failing) > 10


def test_the_trace_of_a_float32_port_on_a_float64_layer_names_the_gate_that_really_differs():
    """Every gate of a float32 trace is off by float32 rounding at the float64 tolerance: the line names the gate
    the mistake changed (TF1's forget bias: 'f', at the first step), not the first gate in computation order."""
    fixture = FIXTURES["lstm-float64-sequences"]
    verdict = _verdict(fixture, SLIPS.run_tf1_forget_bias_float32_with_trace)
    trace = next(line.strip() for line in verdict.message.splitlines() if line.strip().startswith("trace:"))
    assert trace.startswith("trace: first diverging gate is 'f' at timestep 0 "), trace
    correct = SLIPS.lstm(fixture.isolated(), dtype=np.float32, trace=True)   # rounding only: still localised
    verdict = compare(fixture, correct, "port", "1.0", "repro-command", diagnose)
    assert verdict.status == Status.FAILED and "trace: first diverging gate is 'i' at timestep 0" in verdict.message


def test_go_backwards_last_output_taken_after_flipping_back_is_named():
    failing = _named_where_it_shows(SLIPS.run_last_after_flip, "go-backwards-last-after-flip-back",
                                    {"lstm-go-backwards", "lstm-go-backwards-return-state",
                                     "lstm-mask-go-backwards-last"})
    assert all(FIXTURES[fid].config.get("go_backwards") and not FIXTURES[fid].config.get("return_sequences")
               for fid in failing), failing


def test_the_mask_applied_to_the_output_only_is_named():
    failing = _named_where_it_shows(SLIPS.run_mask_output_only, "mask-output-only",
                                    {"lstm-mask-middle", "lstm-mask-leading-initial-state"})
    assert all("mask" in FIXTURES[fid].inputs for fid in failing), failing


@pytest.mark.parametrize("clip", [0.5, 0.8])
def test_a_clipped_cell_state_is_named_with_the_clip_read_from_the_port(clip):
    """The clip is not the catalogue port's own (mistakes.CELL_CLIP): the diagnosis reads it from what was returned."""
    assert clip != mistakes.CELL_CLIP
    failing = _named_where_it_shows(SLIPS.run_cell_clip(clip), "cell-clipped", {"lstm-saturated"})
    assert len(failing) > 3, failing
