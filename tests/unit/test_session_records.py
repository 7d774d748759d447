"""The JSON summary carries each verdict whole, as structure, and validates against the shipped schema.

Real runs of ``lstm-conformance run`` on gallery fixtures, with ports written here: one 1e-9 off (a float64
fixture must say so with enough digits), one computing a float64 layer in float32 (the precision line), one
making a catalogued mistake and returning its trace (mismatches, the first diverging gate, the diagnosis; a
ledger entry explains it on one fixture), one that raises and one that refuses masks.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import jsonschema
import numpy as np
import pytest

from conformance import cli, findings, ports, report
from conformance.compare import close
from conformance.fixtures import list_fixtures
from conformance.mistakes import BY_KEY
from conformance.reference import run as reference_run
from conformance.records import SUMMARY_FORMAT, Record, SummaryFormatError, check_summary, schema_path
from conformance.session import Results, Session, SummaryError

from helpers.repo import REPO

FIXTURES = ("lstm-basic", "lstm-return-sequences", "lstm-float64-sequences", "lstm-mask-trailing")
MISTAKE = "lstm-gate-order-iofc"
REASON = "A made-up explanation for this test."
LINK = "https://example.invalid/made-up-ledger-entry"
PORTS = f'''
import numpy as np
from conformance import Unsupported
from conformance.mistakes import BY_KEY
from conformance.reference import run as reference_run
from conformance.reference import run as correct


def nudged(fixture):
    """Every value 1e-9 too large: the seventh significant digit cannot show it."""
    return {{k: v + 1e-9 for k, v in correct(fixture).items() if k != "trace"}}
nudged.returns_trace = False


def in_float32(fixture):
    return {{k: v.astype(np.float32) for k, v in correct(fixture).items() if k != "trace"}}
in_float32.returns_trace = False


def mistaken(fixture):
    """The ONNX gate order, with the trace that order computes."""
    if "mask" in fixture.inputs:
        raise Unsupported("masking is not implemented in records_ports.mistaken")
    return BY_KEY["{MISTAKE}"].outputs(fixture)


def raises(fixture):
    raise RuntimeError("records_ports.raises always raises")
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(gallery folder, the summary as written, {(impl, fixture): record}, the terminal output)."""
    tmp = tmp_path_factory.mktemp("records")
    gallery = tmp / "fixtures"
    for name in FIXTURES:
        shutil.copytree(REPO / "fixtures" / name, gallery / name)
    (tmp / "records_ports.py").write_text(PORTS)
    ledger = tmp / "ledger.yaml"
    ledger.write_text("format_version: 1\nentries:\n  - " + json.dumps(
        {"fixture": "lstm-return-sequences", "impl": "records_ports:mistaken", "kind": "mismatch",
         "reason": REASON, "link": LINK}) + "\n")
    target = tmp / "results" / "env" / "summary.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp))
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = cli.main(["run", "--fixtures-dir", str(gallery), "--ledger", str(ledger),
                             *[a for impl in ("nudged", "in_float32", "mistaken", "raises")
                               for a in ("--impl", f"records_ports:{impl}")], "--conformance-json", str(target)])
    assert code == 1
    summary = json.loads(target.read_text())
    cases = {(c["impl"].removeprefix("records_ports:"), c["fixture"]): c for c in summary["cases"]}
    return gallery, summary, cases, buffer.getvalue()


def fixture(gallery, fid):
    return next(f for f in list_fixtures(gallery).fixtures if f.id == fid)


def test_the_summary_validates_against_the_shipped_schema(run):
    _, summary, cases, _ = run
    schema = json.loads(schema_path().read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
    jsonschema.validate(summary, schema)  # independent of the writer's own check
    assert summary["format"] == SUMMARY_FORMAT
    assert len(cases) == 4 * len(FIXTURES)
    for record in summary["cases"]:
        # a record read back is the record written: nothing is lost between the two
        assert {k: v for k, v in Record.from_json(record).to_json().items() if k != "impl_info"} == record


def test_a_float64_failure_prints_the_digits_that_tell_the_values_apart(run):
    """Issue 21.5: ``expected 0.5433592, got 0.5433592`` cannot happen."""
    gallery, _, cases, out = run
    record = cases[("nudged", "lstm-float64-sequences")]
    assert record["status"] == "failed" and record["mismatches"]
    data = fixture(gallery, "lstm-float64-sequences")
    for m in record["mismatches"]:
        want = data.expected[m["output"]]
        assert m["dtype"] == want.dtype.name == "float64"
        assert m["expected"] == float(want[tuple(m["index"])])  # the JSON keeps every bit
        assert m["got"] == float(reference_run(data)[m["output"]][tuple(m["index"])] + 1e-9)  # what the port returned
        shown = re.search(rf"first offending element {re.escape(m['where'])}: expected (\S+), got (\S+)",
                          record["message"]).groups()
        assert shown[0] != shown[1], record["message"]
        assert float(shown[0]) != float(shown[1])
    # where seven digits, the old width, would read alike, the line shows more
    assert any(f"{m['expected']:.7g}" == f"{m['got']:.7g}" for m in record["mismatches"]), record["message"]
    assert f"FAILED records_ports:nudged-lstm-float64-sequences\n{record['message']}" in out  # as the terminal shows it


def returned(impl: str, data) -> dict:
    """What each port here returns, computed again in the test."""
    correct = {k: v for k, v in reference_run(data).items() if k != "trace"}
    if impl == "nudged":
        return {k: v + 1e-9 for k, v in correct.items()}
    if impl == "in_float32":
        return {k: v.astype(np.float32) for k, v in correct.items()}
    return {k: v for k, v in BY_KEY[MISTAKE].outputs(data).items() if k != "trace"}


def test_each_mismatch_is_what_the_arrays_say(run):
    gallery, _, cases, _ = run
    checked = 0
    for (impl, fid), record in cases.items():
        if impl == "raises" or record["status"] == "skipped":
            continue
        data = fixture(gallery, fid)
        got = returned(impl, data)
        bad = {k: ~close(got[k], want, data.tolerance) for k, want in data.expected.items()}
        assert [m["output"] for m in record["mismatches"]] == [k for k in data.expected if bad[k].any()]
        for m in record["mismatches"]:
            want, out = data.expected[m["output"]], got[m["output"]]
            diff = np.abs(out.astype(np.float64) - want)
            assert (m["count"], m["size"]) == (int(bad[m["output"]].sum()), want.size)
            assert m["max_abs_error"] == float(diff.max())
            assert (m["atol"], m["rtol"]) == (data.tolerance["atol"], data.tolerance["rtol"])
            where = [tuple(i) for i in np.argwhere(bad[m["output"]])]
            earliest = min(where, key=lambda i: (i[1], i[0], *i[2:]) if len(i) == 3 else i)  # timestep first
            assert tuple(m["index"]) == earliest and m["got"] == float(out[earliest])
            checked += 1
        if record["status"] in ("passed", "failed"):
            assert record["max_abs_error"] == max(float(np.abs(got[k].astype(np.float64) - v).max())
                                                  for k, v in data.expected.items())
    assert checked >= 6


def test_the_trace_diagnosis_and_ledger_are_fields(run):
    gallery, _, cases, _ = run
    failed = cases[("mistaken", "lstm-basic")]
    data = fixture(gallery, "lstm-basic")
    wrong = BY_KEY[MISTAKE].outputs(data)
    assert failed["status"] == "failed" and failed["diagnosis"]["mistake"] == MISTAKE
    assert f"[mistake {MISTAKE}]" in failed["diagnosis"]["cause"]
    assert [f"  diagnosis: {line}" for line in failed["diagnosis"]["findings"]] == [
        line for line in failed["message"].splitlines() if line.startswith("  diagnosis: ")]
    # the first diverging gate: out of tolerance at that timestep, and no gate is at an earlier one
    trace = failed["trace"]
    bad = {g: ~close(wrong["trace"][g], data.trace[g], data.tolerance) for g in data.trace}
    first = min(int(np.argwhere(b.any(axis=tuple(i for i in range(b.ndim) if i != 1)))[0][0])
                for b in bad.values() if b.any())
    assert trace["timestep"] == first and bad[trace["gate"]][:, first].any()
    assert bad[trace["gate"]][trace["batch"], trace["timestep"]].any()
    assert trace["expected"] == float(data.trace[trace["gate"]][tuple(trace["index"])])
    # the ledger explains it on one fixture: its reason and link are fields, the failure keeps its structure
    known = cases[("mistaken", "lstm-return-sequences")]
    assert known["status"] == "xfailed" and known["ledger"]["reason"] == REASON and known["ledger"]["link"] == LINK
    assert known["ledger"]["outcome"] == "explained" and known["diagnosis"]["mistake"] == MISTAKE
    assert known["mismatches"] and known["trace"]["gate"] is not None


def test_a_float64_layer_computed_in_float32_says_so_in_the_record(run):
    """Issue 21.4: the precision line was lost from the JSON."""
    _, _, cases, _ = run
    record = cases[("in_float32", "lstm-float64-sequences")]
    assert record["status"] == "failed"
    assert record["precision"] == {"fixture": "float64", "computed": "float32", "error": record["max_abs_error"]}
    assert "precision: the error" in record["message"] and "precision:" not in record["headline"]
    assert cases[("in_float32", "lstm-basic")]["status"] == "passed"
    assert cases[("in_float32", "lstm-basic")]["precision"] is None


def test_skips_and_raises_carry_their_reason_without_prefixes(run):
    _, _, cases, _ = run
    skip = cases[("mistaken", "lstm-mask-trailing")]
    assert skip["status"] == "skipped" and skip["reason"] == "masking is not implemented in records_ports.mistaken"
    raised = cases[("raises", "lstm-basic")]
    assert raised["status"] == "failed"
    assert raised["reason"] == "raised RuntimeError: records_ports.raises always raises"
    assert raised["repro"] and raised["repro"] in raised["message"] and raised["citation"] in raised["headline"]


def test_the_readers_use_fields_not_messages(run, tmp_path):
    """Blank every message and headline: the findings, the ports table and the skip notes stay what they were."""
    _, summary, _, _ = run
    summaries = {"env": summary}
    blank = json.loads(json.dumps(summary))
    for case in blank["cases"]:
        case["message"] = case["headline"] = ""
    blanked = {"env": blank}
    assert findings.divergences(blanked) == findings.divergences(summaries)
    assert findings.column_wide(blanked) == findings.column_wide(summaries)
    assert ports.to_markdown(blanked) == ports.to_markdown(summaries)
    whats = {d.what for d in findings.divergences(summaries)}
    assert f"diagnosis: {cases_cause(summary)}" in whats and REASON in whats
    known = next(d for d in findings.divergences(summaries) if d.status == "xfailed")
    assert known.link == LINK and f"{REASON} ([source]({LINK}))" in known.line(markdown=True)


def cases_cause(summary) -> str:
    return next(c["diagnosis"]["cause"] for c in summary["cases"] if c["status"] == "failed" and c["diagnosis"]
                and c["diagnosis"]["mistake"] == MISTAKE)


def test_a_summary_that_breaks_the_schema_is_refused_naming_the_file(run, tmp_path):
    _, summary, _, _ = run
    for change, said in ((lambda s: s["cases"][0].pop("reason"), r"\$.cases\[0\]: 'reason' is a required"),
                         (lambda s: s["cases"][1].update(colour="red"), r"\$.cases\[1\]: Additional properties"),
                         (lambda s: s["cases"][2].update(status="fine"), r"\$.cases\[2\].status: 'fine' is not one"),
                         (lambda s: s.update(format=3), r"a JSON summary of format 3; this version reads format 2")):
        broken = json.loads(json.dumps(summary))
        change(broken)
        with pytest.raises(SummaryFormatError, match=r"^where/summary.json: .*" + said):
            check_summary(broken, "where/summary.json")


def test_the_writer_refuses_a_summary_its_schema_refuses(tmp_path):
    """Every summary the suite writes is checked before it is written: a bug is one error line, not a bad file."""
    results = Results(Session.open(impl=["numpy-reference"], fixture_id=["lstm-basic"]))
    results.add(Record("lstm-basic", "numpy-reference", "fine"))
    target = tmp_path / "summary.json"
    with pytest.raises(SummaryError, match=r"not written, .*\$.cases\[0\].status: 'fine' is not one of"):
        results.write_json(target)
    assert not target.exists() and not list(tmp_path.iterdir())
    assert report.SUMMARY == target.name
