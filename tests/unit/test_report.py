"""The matrix report is built from real JSON summaries written by real suite runs.

Two "envs" are produced by running ``pytest --pyargs conformance`` (pytester, in-process)
with the numpy reference and deliberately wrong implementations; the report must show
each outcome in the right cell with the recorded max error, ledger reason or skip reason.
"""

from __future__ import annotations

import html
import json
import re
import shutil

import numpy as np
import pytest

from conformance import report
from conformance.fixtures import list_fixtures
from conformance.records import Record
from conformance.reference import run as reference_run

from helpers.repo import REPO

FIXTURES = ("lstm-basic", "lstm-mask-trailing", "lstm-return-sequences")
REASON = "Scaled outputs are this test's explained divergence."
LINK = "https://github.com/keras-team/keras/pull/19477"

IMPLS = '''
from conformance import Unsupported
from conformance.reference import run as correct


def scaled(fixture):
    """Outputs 1 % too large, and no masking support."""
    if "mask" in fixture.inputs:
        raise Unsupported("masking is not implemented in report_impls.scaled")
    return {k: v * 1.01 for k, v in correct(fixture).items() if k != "trace"}


def crashes(fixture):
    raise RuntimeError("report_impls.crashes always crashes")
'''


@pytest.fixture
def matrix_inputs(pytester, tmp_path):
    gallery = tmp_path / "fixtures"
    for name in FIXTURES:
        shutil.copytree(REPO / "fixtures" / name, gallery / name)
    ledger = tmp_path / "ledger.yaml"
    ledger.write_text("format_version: 1\nentries:\n" + "  - " + json.dumps(
        {"fixture": "lstm-return-sequences", "impl": "report_impls:scaled", "kind": "mismatch",
         "reason": REASON, "link": LINK}) + "\n")
    pytester.makepyfile(report_impls=IMPLS)
    pytester.syspathinsert()
    results = tmp_path / "results"
    for env, extra in (("env-a", ["--ledger", str(ledger)]), ("env-b", ["--no-ledger", "--impl", "report_impls:crashes"])):
        pytester.runpytest("-p", "no:cacheprovider", "--pyargs", "conformance", "--fixtures-dir", str(gallery),
                           "--impl", "numpy-reference", "--impl", "report_impls:scaled", *extra,
                           f"--conformance-json={results / env / 'summary.json'}")
    return gallery, results


def _record(results, env, impl, fixture):
    cases = json.loads((results / env / "summary.json").read_text())["cases"]
    return next(c for c in cases if c["impl"] == impl and c["fixture"] == fixture)


def test_matrix_cells_follow_the_recorded_outcomes(matrix_inputs):
    gallery, results = matrix_inputs
    summaries = report.load_results(results)
    assert sorted(summaries) == ["env-a", "env-b"]
    matrix = report.build(summaries)

    # the reference passed everywhere: folded into one line, not a column
    assert matrix.folded == {"numpy-reference": 2}
    assert [(c.env, c.impl) for c in matrix.columns] == [
        ("env-a", "report_impls:scaled"), ("env-b", "report_impls:crashes"), ("env-b", "report_impls:scaled")]
    assert matrix.fixtures == sorted(FIXTURES)

    # a failure carries the max error the suite measured, which is what 1 % too large gives
    basic = list_fixtures(gallery).fixtures[0]
    assert basic.id == "lstm-basic"
    ref = reference_run(basic)
    want = max(float(np.abs(ref[k] * 1.01 - basic.expected[k]).max()) for k in basic.expected)
    cell = matrix.cell("lstm-basic", "env-b", "report_impls:scaled")
    assert cell.status == "failed" and cell.max_abs_error == pytest.approx(want, rel=1e-3)
    assert cell.max_abs_error == _record(results, "env-b", "report_impls:scaled", "lstm-basic")["max_abs_error"]

    # the ledger's xfail in env-a, the same case a failure in env-b (no ledger there)
    xfail = matrix.cell("lstm-return-sequences", "env-a", "report_impls:scaled")
    assert xfail.status == "xfailed" and (xfail.message, xfail.link) == (REASON, LINK)
    assert str(xfail.note) == f"{REASON} ({LINK})"
    assert matrix.cell("lstm-return-sequences", "env-b", "report_impls:scaled").status == "failed"

    # Unsupported is a skip with its reason; a crash is a failure without a max error
    skip = matrix.cell("lstm-mask-trailing", "env-a", "report_impls:scaled")
    assert skip.status == "skipped" and "masking is not implemented in report_impls.scaled" in skip.message
    crash = matrix.cell("lstm-basic", "env-b", "report_impls:crashes")
    assert crash.status == "failed" and crash.max_abs_error is None
    assert "report_impls.crashes always crashes" in crash.message
    # env-a never ran the crashing implementation
    assert matrix.cell("lstm-basic", "env-a", "report_impls:crashes").status == "missing"
    assert matrix.totals(matrix.columns[0]) == {"passed": 0, "failed": 1, "xfailed": 1, "skipped": 1, "error": 0,
                                                   "crashed": 0, "partial": 0}


def test_markdown_and_html_render_every_cell(matrix_inputs, tmp_path):
    _, results = matrix_inputs
    md_path, html_path = tmp_path / "matrix.md", tmp_path / "matrix.html"
    assert report.main([str(results), "--md", str(md_path), "--html", str(html_path)]) == 0
    markdown, page = md_path.read_text(), html_path.read_text()
    summaries = report.load_results(results)
    matrix = report.build(summaries)

    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
            for line in markdown.splitlines() if line.startswith("| `")}
    assert sorted(rows) == sorted(FIXTURES)
    err = matrix.cell("lstm-basic", "env-b", "report_impls:scaled").max_abs_error
    fail_note = matrix.note_number(matrix.cell("lstm-basic", "env-b", "report_impls:scaled"))
    assert rows["lstm-basic"][2] == f"FAIL {err:.2g} [{fail_note}]"
    assert "does not match Keras" in matrix.notes[fail_note - 1].text
    xfail_note = matrix.notes.index(report.Note(REASON, LINK)) + 1
    assert rows["lstm-return-sequences"][0] == f"xfail [{xfail_note}]"
    assert f"{xfail_note}. {REASON} ([link]({LINK}))" in markdown
    skip_cell = rows["lstm-mask-trailing"][0]
    number = int(re.fullmatch(r"skip \[(\d+)\]", skip_cell).group(1))
    assert "masking is not implemented" in matrix.notes[number - 1].text
    assert "`numpy-reference` passed every fixture in all 2 envs" in markdown

    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page  # self-contained
    assert f'<li id="note-{xfail_note}">{html.escape(REASON)} (<a href="{LINK}">{LINK}</a>)</li>' in page
    # every fixture has a non-pass cell here, so each row is in both tables: "not passing everywhere" and "all"
    assert matrix.differing() == matrix.fixtures
    assert page.count('<td class="failed"') == 2 * sum(
        matrix.cell(f, c.env, c.impl).status == "failed" for f in matrix.fixtures for c in matrix.columns)


def test_function_form_and_stdout(matrix_inputs, capsys):
    _, results = matrix_inputs
    assert report.main(results) == 0  # main(results_dir, out_md=None, out_html=None): Markdown to stdout
    markdown = capsys.readouterr().out
    assert markdown.startswith("# lstm-conformance matrix") and "| `lstm-basic` |" in markdown


def test_missing_or_bad_results_are_clear_errors(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope")]) == 2
    assert "results folder" in capsys.readouterr().err
    with pytest.raises(report.ReportError, match="does not exist"):
        report.load_results(tmp_path / "nope")
    with pytest.raises(report.ReportError, match="no .*summary.json found"):
        report.load_results(tmp_path)
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "summary.json").write_text("{not json")
    with pytest.raises(report.ReportError, match=r"env/summary.json: not a readable JSON summary"):
        report.load_results(tmp_path)


def test_a_malformed_case_is_named_not_a_traceback(tmp_path, matrix_inputs):
    _, results = matrix_inputs
    good = json.loads((results / "env-a" / "summary.json").read_text())
    del good["cases"][0]["status"]
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "summary.json").write_text(json.dumps(good))
    with pytest.raises(report.ReportError, match=r"env/summary.json: not a JSON summary of format 2 "
                                                 r"\(summary.schema.json\): \$.cases\[0\]: 'status' is a required"):
        report.load_results(tmp_path)


def test_a_summary_of_the_previous_format_is_refused_by_name(tmp_path):
    """Format 1 kept each message's first line only: its records cannot be read as structure."""
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "summary.json").write_text(json.dumps({"lstm_conformance": "0.1.0", "cases": [
        {"fixture": "lstm-basic", "impl": "keras", "status": "passed", "message": "", "ledger_entry": None}]}))
    with pytest.raises(report.ReportError, match=r"env/summary.json: a JSON summary of format 1 .*lstm-conformance "
                                                 r"0.1.0.*reads format 2 only: rerun the suite"):
        report.load_results(tmp_path)


def test_cells_where_a_fixture_does_not_apply_leave_it_out_of_the_not_passing_table(tmp_path, matrix_inputs):
    """A skip recorded as n/a (applies_to, no Keras 2 file) is not a fixture failing to pass there."""
    _, results = matrix_inputs
    summary = json.loads((results / "env-a" / "summary.json").read_text())
    cases = [Record("a", "keras", "passed"),
             Record("a", "keras-load-h5", "skipped", "no Keras 2 model file is listed for this fixture",
                    not_applicable=True),
             Record("b", "keras", "skipped", "some library is missing"),
             Record("b", "keras-load-h5", "passed")]
    summary["cases"] = [{k: v for k, v in c.to_json().items() if k != "impl_info"} for c in cases]
    (tmp_path / "env1").mkdir()
    (tmp_path / "env1" / "summary.json").write_text(json.dumps(summary))
    matrix = report.build(report.load_results(tmp_path))
    assert matrix.differing() == ["b"]
    assert matrix.cell("a", "env1", "keras-load-h5").not_applicable


def _write_env(root, env, keras, cases):
    """A summary.json for ``env`` from Records, its implementations on Keras ``keras`` (tensorflow backend)."""
    summary = {"complete": True, "env": {}, "fixture_set": "sha256:" + "0" * 64, "fixtures_dir": "fixtures",
               "format": 2, "ledger": {"path": "ledger.yaml", "unmatched": []}, "lstm_conformance": "0.1.0",
               "not_run": [], "implementations": {c.impl: {"backend": "tensorflow", "keras": keras, "version": "0.1.0"}
                                                  for c in cases},
               "cases": [{k: v for k, v in c.to_json().items() if k != "impl_info"} for c in cases]}
    (root / env).mkdir()
    (root / env / "summary.json").write_text(json.dumps(summary))


def test_the_nightly_section_lists_what_changed_against_the_newest_release(tmp_path):
    """Computed from the cells, not typed: the nightly is compared with the newest released Keras on its backend
    (tf221 here, not the older tf216), a cell that changes is listed with its reason, one that does not is not."""
    from conformance.records import Ledger
    known = Ledger(7, "entry 7 (x; impl keras; mismatch)", "mismatch", "The next Keras drops the mask.",
                   "https://github.com/keras-team/keras/commit/a8b52ca11a46486ec42211692d663eb0749a2fea", True,
                   "explained")
    _write_env(tmp_path, "tf216", "3.3.3", [Record("a", "keras", "failed", "old Keras", max_abs_error=0.5),
                                            Record("b", "keras", "passed")])
    _write_env(tmp_path, "tf221", "3.15.1", [Record("a", "keras", "passed"), Record("b", "keras", "passed")])
    _write_env(tmp_path, "nightly", "3.16.0.dev2026102704",
               [Record("a", "keras", "passed"),
                Record("b", "keras", "xfailed", "The next Keras drops the mask.", max_abs_error=0.0247, ledger=known)])
    matrix = report.build(report.load_results(tmp_path))
    assert report.matrix.nightly_baseline(matrix) == "tf221"
    changes = report.matrix.nightly_changes(matrix)
    assert [(c.fixture, c.impl, c.before, c.after) for c in changes] == [("b", "keras", "passed", "xfailed")]
    text = report.matrix.to_markdown(matrix, report.load_results(tmp_path))
    section = text.split("## Keras nightly")[1].split("## ")[0]
    assert "Against tf221 (Keras 3.15.1" in section and "changes 1 cell:" in section
    assert "`b` keras: pass -> xfail, max abs error 0.0247: The next Keras drops the mask." in section
    assert "`a`" not in section


def test_a_column_that_only_xfails_folds_into_one_line_with_each_entry_counted(tmp_path):
    """Two ledger entries explaining a whole column (Keras 2 on Keras 3 files): one line, each reason counted."""
    from conformance.records import Ledger

    def entry(n, reason):
        return Ledger(n, f"entry {n}", "error", reason, f"https://github.com/keras-team/keras/issues/{n}", True,
                      "explained")
    cases = [Record(f, "keras-load", "xfailed", "modules", ledger=entry(1, "Keras 3 modules.")) for f in "abc"]
    cases.append(Record("d", "keras-load", "xfailed", "input layer", ledger=entry(2, "Keras 3 InputLayer.")))
    cases.append(Record("a", "keras", "failed", "a real failure", max_abs_error=0.1))
    _write_env(tmp_path, "tf212", "2.12.0", cases)
    matrix = report.build(report.load_results(tmp_path))
    assert [(c.env, c.impl) for c in matrix.columns] == [("tf212", "keras")]
    line = matrix.wide[("tf212", "keras-load")]
    assert line.startswith("xfailed on all 4 fixtures it ran, each by a ledger entry: 3 by: Keras 3 modules.")
    assert "1 by: Keras 3 InputLayer." in line
