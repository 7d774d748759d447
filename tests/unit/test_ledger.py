"""The divergence ledger is applied as strict xfail: explained divergences xfail, stale or changed ones fail.

Each test runs the real suite (``pytest --pyargs conformance``, in-process via pytester)
on copies of two gallery fixtures, with implementations written into the pytester folder
(``--impl module:attr``) and a ledger file written for the test.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from conformance import ledger
from conformance.fixtures import list_fixtures

from helpers.repo import REPO

FIXTURES = ("lstm-basic", "lstm-return-sequences")

IMPLS = '''
"""Implementations for the ledger tests: right, slightly wrong, crashing, and one posing as Keras 3 on JAX."""
from conformance.reference import run as correct


def scaled(fixture):
    """Every output 1 % too large: a value mismatch."""
    return {k: v * 1.01 for k, v in correct(fixture).items() if k != "trace"}


def raises(fixture):
    raise RuntimeError("deliberate crash in ledger_impls.raises")


def jax_like(fixture):
    return scaled(fixture)


jax_like.keras_version = "3.4.1"
jax_like.backend = "jax"


def not_installed(fixture):
    """A port whose library is missing: every case is a skip with the install command."""
    from conformance.adapters.requires import missing
    raise missing("no_such_tool")


def bf16_port(fixture):
    """A port that reports the precision it ran in: scaled on lstm-basic, right on lstm-return-sequences."""
    result = {k: v for k, v in correct(fixture).items() if k != "trace"}
    return scaled(fixture) if fixture.id == "lstm-basic" else result
bf16_port.info = lambda: {"inference_precision": "bf16"}
'''


@pytest.fixture
def gallery(tmp_path):
    root = tmp_path / "fixtures"
    for name in FIXTURES:
        shutil.copytree(REPO / "fixtures" / name, root / name)
    assert [f.id for f in list_fixtures(root).fixtures] == sorted(FIXTURES)
    return root


def write_ledger(path, *entries: dict) -> str:
    lines = ["format_version: 1", "entries:"]
    for entry in entries:
        lines.append("  - " + json.dumps(entry))  # JSON is YAML; keeps quoting right
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def entry(fixture="lstm-basic", impl="ledger_impls:scaled", kind="mismatch", **extra) -> dict:
    return {"fixture": fixture, "impl": impl, "kind": kind,
            "reason": "A deliberate divergence for this test.",
            "link": "https://example.invalid/made-up-ledger-entry", **extra}


def run_suite(pytester, gallery, impl: str, *args: str):
    """The suite in-process; returns (result, {fixture id: JSON summary record})."""
    pytester.makepyfile(ledger_impls=IMPLS)
    pytester.syspathinsert()
    out = pytester.path / "summary.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--pyargs", "conformance", "--fixtures-dir", str(gallery),
                                "--impl", impl, f"--conformance-json={out}", *args)
    records = {r["fixture"]: r for r in json.loads(out.read_text())["cases"]} if out.exists() else {}
    return result, records


def test_matching_failure_is_xfailed_with_reason_and_link(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml", entry())
    result, records = run_suite(pytester, gallery, "ledger_impls:scaled", "--ledger", path, "-rx")
    result.assert_outcomes(xfailed=1, failed=1)  # lstm-return-sequences has no entry: still a failure
    assert records["lstm-basic"]["status"] == "xfailed"
    assert records["lstm-basic"]["message"] == (
        "A deliberate divergence for this test. (https://example.invalid/made-up-ledger-entry)")
    # the ledger's reason and link are fields, and the failure it explains keeps its structure
    explained = records["lstm-basic"]
    assert {k: explained["ledger"][k] for k in ("entry", "reason", "link", "strict", "outcome")} == {
        "entry": 1, "reason": "A deliberate divergence for this test.",
        "link": "https://example.invalid/made-up-ledger-entry", "strict": True, "outcome": "explained"}
    assert explained["reason"] == explained["ledger"]["reason"] and explained["mismatches"]
    assert records["lstm-return-sequences"]["status"] == "failed" and records["lstm-return-sequences"]["ledger"] is None
    result.stdout.fnmatch_lines(["*XFAIL*lstm-basic*A deliberate divergence for this test.*"])


def test_no_ledger_and_glob_patterns(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml", entry(fixture="lstm-*", impl="ledger_impls:*"))
    result, records = run_suite(pytester, gallery, "ledger_impls:scaled", "--ledger", path)
    result.assert_outcomes(xfailed=2)
    assert result.ret == 0
    result, records = run_suite(pytester, gallery, "ledger_impls:scaled", "--ledger", path, "--no-ledger")
    result.assert_outcomes(failed=2)
    assert {r["status"] for r in records.values()} == {"failed"}


def test_stale_entry_fails(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml", entry(impl="ledger_impls:correct"))
    result, records = run_suite(pytester, gallery, "ledger_impls:correct", "--ledger", path)
    result.assert_outcomes(passed=1, failed=1)
    assert records["lstm-basic"]["status"] == "failed"
    assert records["lstm-basic"]["message"].startswith("ledger entry is stale")
    assert records["lstm-basic"]["ledger"]["outcome"] == "stale" and records["lstm-basic"]["reason"].startswith(
        "ledger entry is stale: ledger entry 1")
    result.stdout.fnmatch_lines(["*ledger entry is stale*entry 1 (lstm-basic; impl ledger_impls:correct; mismatch)*"])


def test_kind_change_fails(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml", entry(impl="ledger_impls:raises", kind="mismatch"))
    result, records = run_suite(pytester, gallery, "ledger_impls:raises", "--ledger", path)
    result.assert_outcomes(failed=2)
    assert records["lstm-basic"]["message"].startswith("divergence changed kind")
    result.stdout.fnmatch_lines(["*expects a mismatch, got a error*", "*deliberate crash in ledger_impls.raises*"])
    # recorded as what it is, an error, the same entry xfails the crash
    path = write_ledger(tmp_path / "ledger.yaml",
                        entry(impl="ledger_impls:raises", kind="error", message="deliberate crash in ledger_impls"))
    result, records = run_suite(pytester, gallery, "ledger_impls:raises", "--ledger", path)
    result.assert_outcomes(xfailed=1, failed=1)


def test_an_error_entry_explains_only_the_error_its_message_names(pytester, gallery, tmp_path):
    """Kind alone would xfail any error of a matching case: a broken fixture, a refused model file."""
    path = write_ledger(tmp_path / "ledger.yaml",
                        entry(impl="ledger_impls:raises", kind="error", message=r"another crash \(time_major\)"))
    result, records = run_suite(pytester, gallery, "ledger_impls:raises", "--ledger", path)
    result.assert_outcomes(failed=2)
    assert records["lstm-basic"]["status"] == "failed"
    assert (records["lstm-basic"]["ledger"]["entry"], records["lstm-basic"]["ledger"]["outcome"]) == (1, "other-error")
    assert records["lstm-basic"]["message"].startswith("lstm-basic@"), records["lstm-basic"]
    result.stdout.fnmatch_lines(["*deliberate crash in ledger_impls.raises*",
                                 "*not the error ledger entry 1 (lstm-basic; *) explains: its message pattern*"])


def test_the_entry_that_explains_a_case_applies_whatever_the_order_of_globs(pytester, gallery, tmp_path):
    """Two causes of one port are two entries keyed on their messages; a broader glob first does not take the
    case the later entry explains, and a case neither explains still names the first entry it matched."""
    path = write_ledger(tmp_path / "ledger.yaml",
                        entry(fixture="lstm-*", impl="ledger_impls:raises", kind="error", message="unimplemented Loop"),
                        entry(fixture="lstm-*", impl="ledger_impls:raises", kind="mismatch"),
                        entry(impl="ledger_impls:raises", kind="error", message=r"deliberate crash in ledger_impls"))
    result, records = run_suite(pytester, gallery, "ledger_impls:raises", "--ledger", path)
    result.assert_outcomes(xfailed=1, failed=1)
    assert (records["lstm-basic"]["status"], records["lstm-basic"]["ledger"]["entry"]) == ("xfailed", 3)
    other = records["lstm-return-sequences"]
    assert (other["status"], other["ledger"]["entry"], other["ledger"]["outcome"]) == ("failed", 1, "other-error")


def test_version_and_backend_conditions(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml",
                        entry(impl="ledger_impls:jax_like", keras=">=3,<3.5", backend="jax"),
                        entry(fixture="lstm-return-sequences", impl="ledger_impls:jax_like", keras=">=3.5"),
                        entry(fixture="lstm-return-sequences", impl="ledger_impls:jax_like", backend=["torch"]))
    result, records = run_suite(pytester, gallery, "ledger_impls:jax_like", "--ledger", path)
    result.assert_outcomes(xfailed=1, failed=1)
    assert records["lstm-basic"]["status"] == "xfailed"
    assert records["lstm-return-sequences"]["status"] == "failed"
    # entries for other versions/backends are out of scope here: not applied, and no warning either
    assert "unmatched ledger" not in result.stdout.str()


def test_when_and_non_strict_entries_for_ports(pytester, gallery, tmp_path):
    """``when`` matches the port's info(); ``strict: false`` lets a matching case pass without being stale."""
    loose = entry(fixture="lstm-*", impl="ledger_impls:bf16_port", when={"inference_precision": "bf16"}, strict=False)
    result, records = run_suite(pytester, gallery, "ledger_impls:bf16_port", "--ledger",
                                write_ledger(tmp_path / "ledger.yaml", loose))
    result.assert_outcomes(xfailed=1, passed=1)
    assert records["lstm-basic"]["status"] == "xfailed" and records["lstm-return-sequences"]["status"] == "passed"
    other_precision = {**loose, "when": {"inference_precision": "f32"}}
    result, records = run_suite(pytester, gallery, "ledger_impls:bf16_port", "--ledger",
                                write_ledger(tmp_path / "ledger.yaml", other_precision))
    result.assert_outcomes(failed=1, passed=1)  # the condition does not hold: the divergence is a failure
    strict = {**loose, "strict": True}
    result, records = run_suite(pytester, gallery, "ledger_impls:bf16_port", "--ledger",
                                write_ledger(tmp_path / "ledger.yaml", strict))
    assert records["lstm-return-sequences"]["message"].startswith("ledger entry is stale")


def test_unmatched_entry_warns(pytester, gallery, tmp_path):
    path = write_ledger(tmp_path / "ledger.yaml", entry(), entry(fixture="gru-no-such-fixture-*"))
    result, records = run_suite(pytester, gallery, "ledger_impls:scaled", "--ledger", path)
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*1 entry for this configuration matched no case in this run:*",
                                 "*WARNING unmatched ledger entry 2 (gru-no-such-fixture-*"])
    assert result.stdout.str().count("gru-no-such-fixture-") == 1, "said once, in the suite's summary"
    summary = json.loads((pytester.path / "summary.json").read_text())
    assert summary["ledger"] == {"path": path, "unmatched": [
        "entry 2 (gru-no-such-fixture-*; impl ledger_impls:scaled; mismatch)"]}


@pytest.mark.parametrize("bad, message", [
    ({"kind": "crash"}, "entry 1 (fixture 'lstm-basic'): kind 'crash' is not one of mismatch, error"),
    ({"reason": ""}, "entry 1 (fixture 'lstm-basic'): 'reason' is required"),
    ({"link": "github.com/x"}, "'link' 'github.com/x' must be an https:// URL"),
    ({"keras": "three"}, "'keras' 'three' is not a version specifier"),
    ({"backends": ["jax"]}, "entry 1 (fixture 'lstm-basic'): unknown key(s) backends"),
    ({"kind": "error"}, "entry 1 (fixture 'lstm-basic'): an error entry needs 'message', a regular expression"),
    ({"kind": "error", "message": "("}, "entry 1 (fixture 'lstm-basic'): 'message' '(' is not a regular expression"),
    ({"message": "x"}, "entry 1 (fixture 'lstm-basic'): 'message' is for error entries"),
    ({"impl": []}, "entry 1 (fixture 'lstm-basic'): 'impl' must be an implementation name or glob, or a list"),
    ({"impl": ["tflite", 3]}, "entry 1 (fixture 'lstm-basic'): 'impl' must be an implementation name or glob"),
])
def test_malformed_ledger_is_a_clear_usage_error(pytester, gallery, tmp_path, bad, message):
    path = write_ledger(tmp_path / "ledger.yaml", entry(fixture="lstm-*"), {**entry(), **bad})
    message = message.replace("entry 1", "entry 2")
    with pytest.raises(ledger.LedgerError) as info:
        ledger.load(path)
    assert str(info.value).startswith(f"{path}: entry 2") and message in str(info.value)
    result, _ = run_suite(pytester, gallery, "ledger_impls:scaled", "--ledger", path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


@pytest.mark.parametrize("text, message", [
    ("entries: [oops", "is not valid YAML"),
    ("- fixture: lstm-basic\n", "expected a mapping with 'format_version: 1'"),
    ("format_version: 1\nentries: {a: 1}\n", "'entries' must be a list"),
    ("format_version: 1\nentries:\n  - just a string\n", "entry 1 is a str, expected a mapping"),
])
def test_unreadable_ledger_names_the_file(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ledger.LedgerError, match=str(path)) as info:
        ledger.load(path)
    assert message in str(info.value)
    with pytest.raises(ledger.LedgerError, match="cannot read ledger"):
        ledger.load(tmp_path / "missing.yaml")


def test_shipped_ledger_is_valid_and_explained():
    entries = ledger.load()
    assert ledger.default_path().name == "ledger.yaml"
    fixture_ids = {f.id for f in list_fixtures(REPO / "fixtures").fixtures}
    for item in entries:
        assert item.link.startswith("https://github.com/"), f"{item.label}: link to the issue, PR or release note"
        assert item.reason.endswith("."), f"{item.label}: the reason is one sentence"
        import fnmatch
        assert fnmatch.filter(fixture_ids, item.fixture), f"{item.label} names no fixture in the gallery"


# Entries whose cause lies in a step the second port does not share: Keras's ONNX export calls tf2onnx's
# ``from_function`` on the model's traced function, never tf2onnx's Keras front end ``from_keras``, whose
# output-name lookup is what fails on a Keras 3 Sequential (keras-onnx passes those five Model fixtures).
NOT_SHARED = {("keras-onnx", "model-*")}


@pytest.mark.parametrize("port, same_file_as", [("litert", "tflite"), ("keras-onnx", "tf2onnx")])
def test_shipped_ledger_gives_a_port_on_the_same_file_its_first_ring_entries(port, same_file_as):
    """LiteRT runs the tflite adapter's flatbuffer, and Keras's ONNX export is tf2onnx on the same graph: where the
    first ring's entry explains a fixture, the same entry (an impl list, never a broad glob) explains it for both,
    unless the entry's cause is a step the two do not share (``NOT_SHARED``), and then it must not reach the port."""
    entries = ledger.load()
    explained = 0
    for fixture in list_fixtures().fixtures:
        first = ledger.find(entries, same_file_as, fixture.id, "3.15.1", "tensorflow")
        if first is not None and (port, first.fixture) in NOT_SHARED:
            assert ledger.find(entries, port, fixture.id, "3.15.1", "tensorflow") is None, fixture.id
            continue
        assert ledger.find(entries, port, fixture.id, "3.15.1", "tensorflow") == first, fixture.id
        explained += first is not None
        label = first.label if first else ""
        assert ledger.find(entries, f"{port}-x", fixture.id, "3.15.1", "tensorflow") is None, label
    assert explained


PRECISIONS = ("f32", "bf16")  # what OpenVINO's CPU plugin reports: f32 without native bfloat16, bf16 with it


@pytest.mark.parametrize("precision", PRECISIONS)
def test_shipped_ledger_judges_a_port_by_what_it_reports_not_by_its_name(precision):
    """The same reported precision meets the same entry whichever implementation name reported it.

    On a CPU without native bfloat16 the default ``openvino`` compiles in f32, exactly like ``openvino-f32``;
    an entry keyed on the name rather than on ``when`` would leave one of them unexplained on that CPU.
    """
    entries = ledger.load()
    keras_version = "3.15.1"
    for fixture in list_fixtures().fixtures:
        found = {impl: ledger.find(entries, impl, fixture.id, keras_version, None, {"inference_precision": precision})
                 for impl in ("openvino", "openvino-f32")}
        assert found["openvino"] == found["openvino-f32"], (fixture.id, precision, found)


def test_shipped_ledger_explains_float64_under_every_openvino_precision():
    """A float64 layer computed in f32 or in bf16 is explained on both kinds of CPU, as a mismatch."""
    entries = ledger.load()
    float64 = [f.id for f in list_fixtures().fixtures if f.meta.get("precision", {}).get("compute") == "float64"]
    assert float64
    for fid in float64:
        for precision in PRECISIONS:
            entry = ledger.find(entries, "openvino", fid, "3.15.1", None, {"inference_precision": precision})
            assert entry is not None and entry.kind == "mismatch", (fid, precision)


def test_an_entry_for_a_port_that_is_not_installed_is_not_stale(pytester, gallery, tmp_path):
    """Every case of the port skipped (not installed): its entries matched nothing, and that is no warning."""
    path = write_ledger(tmp_path / "ledger.yaml", entry(impl="ledger_impls:not_installed"))
    result, records = run_suite(pytester, gallery, "ledger_impls:not_installed", "--ledger", path)
    result.assert_outcomes(skipped=len(FIXTURES))
    assert "unmatched ledger" not in result.stdout.str()
    assert {r["status"] for r in records.values()} == {"skipped"}
    assert json.loads((pytester.path / "summary.json").read_text())["ledger"]["unmatched"] == []
