"""The failure message's helpers on tiny arrays: first offending index, index labels, and the trace line.

A trace with the wrong names or layout must be named as such (with the expected names and shape),
never reported as agreeing; a divergence names its gate, timestep and batch row.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from conformance.compare import _describe_index, compare, first_bad, localise_trace

TOL = {"atol": 1e-5, "rtol": 1e-4}
B, T, U = 2, 4, 3
RNG = np.random.default_rng(7)
TRACE = {g: RNG.uniform(-1, 1, (B, T, U)).astype(np.float32) for g in ("i", "f", "c_tilde", "o", "c", "h")}


def fake(trace=TRACE, go_backwards=False, calls=None, steps=T):
    """Just the attributes compare.py reads from a Fixture."""
    x = np.zeros((B, steps, 1), np.float32)
    expected = {"output": trace["h"] if trace else np.zeros((B, steps, U), np.float32)}
    return types.SimpleNamespace(
        id="tiny", citation="tiny@sha256:00000000", layer="LSTM", tags=("tiny",), tolerance=TOL,
        config={"go_backwards": go_backwards}, inputs={"x": x}, meta={"calls": calls} if calls else {},
        trace=trace, expected=expected)


def copy(trace):
    return {k: np.array(v) for k, v in trace.items()}


# -- first_bad and the index labels -----------------------------------------------------------------

def test_first_bad_takes_the_earliest_timestep_before_the_lowest_batch_row():
    bad = np.zeros((B, T, U), bool)
    bad[0, 3, 0] = bad[1, 1, 2] = bad[1, 1, 1] = True
    want = min(map(tuple, np.argwhere(bad).tolist()), key=lambda i: (i[1], i[0], i[2]))
    assert first_bad(bad) == want == (1, 1, 1)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 2, 2, 2)])
def test_first_bad_of_other_ranks_is_the_first_in_c_order(shape):
    bad = np.zeros(shape, bool)
    bad.flat[-1] = True
    if bad.size > 1:
        bad.flat[bad.size // 2] = True
    assert first_bad(bad) == tuple(np.argwhere(bad)[0].tolist())


def test_index_labels_by_rank():
    fixture = fake()
    assert _describe_index(fixture, "output", (1, 2, 0)) == "[batch 1, timestep 2, unit 0]"
    assert _describe_index(fixture, "state_h", (1, 2)) == "[batch 1, unit 2]"
    assert _describe_index(fixture, "x", (1, 0, 1, 0)) == "[1, 0, 1, 0]"
    assert _describe_index(fixture, "x", (3,)) == "[3]"


def test_go_backwards_labels_name_the_input_step_within_each_stateful_call():
    steps = [3, 5]
    fixture = fake(go_backwards=True, calls={"steps": steps, "reset_before": []}, steps=sum(steps))
    for k, n in enumerate(steps):
        offset = sum(steps[:k])
        for t in range(n):
            label = _describe_index(fixture, f"calls/{k}/output", (0, t, 0))
            assert f"input step {offset + n - 1 - t}, go_backwards" in label, label
    plain = fake(go_backwards=True)
    assert f"input step {T - 1}," in _describe_index(plain, "output", (0, 0, 0))


# -- localise_trace -----------------------------------------------------------------------------------

def test_a_matching_trace_agrees_and_lists_what_was_compared():
    lines = localise_trace(fake(), copy(TRACE))
    assert lines == [f"trace: every entry compared agrees with the fixture's trace ({', '.join(TRACE)})"]


def test_no_trace_returned_gives_no_line():
    assert localise_trace(fake(), None) == []


def test_a_fixture_without_a_trace_says_nothing_was_compared():
    lines = localise_trace(fake(trace={}), copy(TRACE))
    assert lines and "not compared" in lines[0] and "agree" not in " ".join(lines)


def test_unknown_names_are_named_with_the_expected_names_and_shape():
    returned = {f"gate_{k}": v for k, v in copy(TRACE).items()}
    text = "\n".join(localise_trace(fake(), returned))
    assert "agree" not in text and "not compared" in text
    for name in returned:
        assert repr(name) in text
    assert ", ".join(repr(g) for g in TRACE) in text   # TRACE is in computation order
    assert str((B, T, U)) in text


def test_a_time_major_trace_is_named_as_such_and_never_agrees():
    returned = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in TRACE.items()}
    text = "\n".join(localise_trace(fake(), returned))
    assert "agree" not in text
    assert f"shape {(T, B, U)}, which looks time-major" in text and f"shape {(B, T, U)}" in text


def test_a_list_or_non_numeric_entry_is_named():
    returned = copy(TRACE)
    returned["i"] = TRACE["i"].tolist()
    returned["f"] = TRACE["f"].astype(object)
    text = "\n".join(localise_trace(fake(), returned))
    assert "list, not numpy.ndarray: 'i'" in text and "dtype object" in text and "'f'" in text


def test_agreement_of_the_entries_compared_still_names_the_ones_that_were_not():
    returned = copy(TRACE)
    returned["c"] = returned["c"][:, :, :1]
    returned["extra"] = returned["h"]
    lines = localise_trace(fake(), returned)
    assert "agrees" in lines[0] and "c_tilde" in lines[0] and "'c'" not in lines[0]
    rest = "\n".join(lines[1:])
    assert "'c'" in rest and "'extra'" in rest and "unknown name" in rest


def test_the_divergence_names_gate_timestep_and_batch_row():
    returned = copy(TRACE)
    returned["h"][0, 3, 0] += 0.5       # the output's first offending element would be in batch row 0...
    returned["c"][1, 1, 2] += 0.25      # ...but the trace leaves the fixture's earlier, in batch row 1
    bad = {g: ~np.isclose(returned[g], TRACE[g], **TOL) for g in TRACE}
    gate = min((g for g in TRACE if bad[g].any()), key=lambda g: first_bad(bad[g])[1])
    b, t, u = first_bad(bad[gate])
    (line,) = localise_trace(fake(), returned)
    assert (gate, b, t, u) == ("c", 1, 1, 2)
    assert f"first diverging gate is {gate!r} at timestep {t} in batch row {b}, unit {u}" in line
    assert f"expected {TRACE[gate][b, t, u]:.7g}, got {returned[gate][b, t, u]:.7g}" in line


def test_a_tie_at_one_timestep_names_the_gate_computed_first():
    returned = copy(TRACE)
    returned["c"][0, 2, 0] += 0.5
    returned["f"][1, 2, 1] += 0.5
    reordered = {k: returned[k] for k in ("h", "c", "o", "c_tilde", "f", "i")}
    (line,) = localise_trace(fake(), reordered)
    assert "gate is 'f' at timestep 2 in batch row 1, unit 1" in line


# -- the whole message ----------------------------------------------------------------------------------

def test_failure_message_with_a_misnamed_trace_says_what_was_expected():
    fixture = fake()
    wrong = np.array(fixture.expected["output"])
    wrong[1, 2, 0] += 0.5
    result = {"output": wrong, "trace": {f"gate_{k}": v for k, v in copy(TRACE).items()}}
    outcome = compare(fixture, result, "my-port")
    assert not outcome.ok
    assert "agree" not in outcome.message
    assert "not compared, unknown name: 'gate_i'" in outcome.message
    assert "expected names 'i', 'f', 'c_tilde', 'o', 'c', 'h'" in outcome.message
    assert "final values only" not in outcome.message


def final_only(extra=()):
    """A fixture whose outputs are final values only (no sequence): the trace hint applies."""
    fixture = fake()
    fixture.expected = {"output": TRACE["h"][:, -1], **{name: TRACE["c"][:, -1] for name in extra}}
    return fixture


def test_every_diagnosis_line_is_prefixed_for_the_bug_report():
    fixture = final_only()
    wrong = {"output": fixture.expected["output"] + 0.5}
    outcome = compare(fixture, wrong, "my-port", diagnose=lambda f, r: "first finding\nsecond finding\n")
    lines = outcome.message.splitlines()
    assert "  diagnosis: first finding" in lines and "  diagnosis: second finding" in lines
    assert sum(line.strip().startswith("diagnosis:") for line in lines) == 2


def test_the_trace_hint_only_for_an_implementation_that_can_return_one():
    fixture = final_only()
    wrong = {"output": fixture.expected["output"] + 0.5}
    assert "return a 'trace' mapping" in compare(fixture, wrong, "my-port").message
    assert "return a 'trace'" not in compare(fixture, wrong, "my-port", can_trace=False).message


def test_declared_outputs_partial_when_they_agree_failed_when_not():
    from conformance.verdict import Status
    fixture = final_only(extra=("state_c",))
    right = {"output": np.array(fixture.expected["output"])}
    partial = compare(fixture, right, "converter", returns=frozenset({"output"}))
    assert partial.status == Status.PARTIAL and not partial.ok
    assert "checked: 'output'" in partial.message and "'state_c'" in partial.message
    assert partial.message.startswith("tiny@sha256:00000000: implementation 'converter'")
    wrong = compare(fixture, {"output": right["output"] + 0.5}, "converter", returns={"output"})
    assert wrong.status == Status.FAILED and wrong.mismatched == ["output"] and "not returned" in wrong.message
    assert compare(fixture, right, "converter").status == Status.FAILED            # undeclared: missing 'state_c'
    assert compare(fixture, {"output": right["output"], "state_c": np.array(fixture.expected["state_c"])},
                   "converter", returns={"output"}).status == Status.PASSED       # returned everything after all
    nothing = compare(fixture, {}, "converter", returns={"forward/output"})
    assert nothing.status == Status.SKIPPED and "returns none of this fixture's outputs" in nothing.message


# -- digits: enough to tell expected from got ---------------------------------------------------------

@pytest.mark.parametrize("dtype, most", [(np.float32, 9), (np.float64, 17)])
def test_values_print_with_the_fewest_digits_that_tell_them_apart(dtype, most):
    """At least seven significant digits; more only where seven would print two different values alike, and
    never more than the dtype needs (9 for float32, 17 for float64)."""
    from decimal import Decimal

    from conformance.records import digits
    rng = np.random.default_rng(3)
    for value in rng.uniform(-2, 2, 200).astype(dtype):
        for neighbour in (np.nextafter(value, dtype(np.inf)), value * dtype(1 + 1e-6), value):
            shown = digits(float(value), float(neighbour))
            assert (shown[0] == shown[1]) == (value == neighbour), shown
            n = max(len(Decimal(s).normalize().as_tuple().digits) for s in shown)
            assert n <= most, shown
            if n > 7:  # one digit fewer would read alike
                assert f"{float(value):.{n - 1}g}" == f"{float(neighbour):.{n - 1}g}", shown
