"""The one engine behind pytest and ``lstm-conformance run``: selection, usage errors, xdist, ledger, JSON.

The suite runs in a child process exactly as a user types it (``python -m pytest --pyargs
conformance ...``), so pytest-xdist's controller and workers are the real ones.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys

import pytest

from conformance import cli, session
from conformance import ledger as shipped_ledger
from conformance.options import OPTIONS, dest
from conformance.session import Results, Session, UsageError, short_name

from helpers.repo import REPO
from hostile import clean_env

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "conformance"]


def run_pytest(tmp_path, *args: str, pythonpath=()) -> subprocess.CompletedProcess:
    return subprocess.run([*PYTEST, *args], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=clean_env(pythonpath))


def statuses(summary: dict) -> dict[tuple[str, str], str]:
    pairs = [(c["impl"], c["fixture"]) for c in summary["cases"]]
    assert len(pairs) == len(set(pairs)), "a case is recorded twice"
    return {(c["impl"], c["fixture"]): c["status"] for c in summary["cases"]}


def timeless(record: dict) -> dict:
    """A record without how long judging took (the one field that may differ between two runs)."""
    return {k: v for k, v in record.items() if k != "duration_s"}


# -- pytest-xdist: every case reaches the JSON summary, written once by the controller ----------------

@pytest.mark.slow
def test_xdist_run_writes_every_case_once_and_matches_the_serial_run(tmp_path, gallery):
    serial = run_pytest(tmp_path, "--impl", "numpy-reference", "--conformance-json", str(tmp_path / "serial.json"))
    assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-3000:]
    spread = run_pytest(tmp_path, "--impl", "numpy-reference", "-n", "2",
                        "--conformance-json", str(tmp_path / "xdist.json"))
    assert spread.returncode == 0, spread.stdout[-3000:] + spread.stderr[-3000:]
    want = {("numpy-reference", f.id): "passed" for f in gallery}
    assert statuses(json.loads((tmp_path / "serial.json").read_text())) == want
    assert statuses(json.loads((tmp_path / "xdist.json").read_text())) == want
    # records reach the controller as JSON and come back whole
    assert ([timeless(c) for c in json.loads((tmp_path / "xdist.json").read_text())["cases"]]
            == [timeless(c) for c in json.loads((tmp_path / "serial.json").read_text())["cases"]])
    assert "lstm-conformance summary" in spread.stdout
    assert f"JSON summary written to {tmp_path / 'xdist.json'} ({len(gallery)} cases)" in spread.stdout
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary file was left"


def test_results_write_json_replaces_the_file_whole(tmp_path):
    run = Session.open(impl=["numpy-reference"], fixture_id=["lstm-basic"])
    results = Results(run)
    for case in run.cases:
        results.add(run.run(case)[1])
    target = tmp_path / "summary.json"
    target.write_text("{ half a file from an earlier run")
    results.write_json(target)
    assert statuses(json.loads(target.read_text())) == {("numpy-reference", "lstm-basic"): "passed"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


# -- usage errors: one line before collection, never one traceback per case ------------------------------

def test_a_mistyped_implementation_is_one_usage_error_with_a_suggestion(tmp_path):
    done = run_pytest(tmp_path, "--impl", "numpy-referenc")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:]
    assert "did you mean 'numpy-reference'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "numpy-referenc-" not in done.stdout  # no case was collected


@pytest.mark.parametrize("patterns", [["no-such-fixture"], ["lstm-basic", "lstm-basci"]])
def test_a_fixture_id_pattern_that_matches_nothing_is_a_usage_error(patterns):
    with pytest.raises(UsageError) as caught:
        Session.open(impl=["numpy-reference"], fixture_id=patterns)
    assert f"--fixture-id {patterns[-1]!r} matches no fixture" in str(caught.value)
    if patterns[-1] == "lstm-basci":
        assert "did you mean 'lstm-basic'" in str(caught.value)


def test_a_tag_no_fixture_carries_is_a_usage_error_listing_the_tags():
    with pytest.raises(UsageError, match="no fixture carries every tag of --fixture-tag 'masked'.*mask-leading"):
        Session.open(impl=["numpy-reference"], fixture_tag=["masked"])


def test_the_plugin_reports_a_bad_pattern_as_a_usage_error(tmp_path):
    done = run_pytest(tmp_path, "--impl", "numpy-reference", "--fixture-id", "lstm-basic", "--fixture-id", "nope")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --fixture-id 'nope' matches no fixture" in done.stderr
    assert "broken fixture" not in done.stdout + done.stderr


def test_the_header_counts_the_broken_fixtures_the_run_reports(tmp_path):
    root = tmp_path / "fixtures"
    import shutil
    shutil.copytree(REPO / "fixtures" / "lstm-basic", root / "lstm-basic")
    (root / "half-written").mkdir()
    (root / "half-written" / "fixture.yaml").write_text("id: half-written\n")
    done = run_pytest(tmp_path, "--impl", "numpy-reference", "--fixtures-dir", str(root), "-rfE")
    assert "(1 selected, 1 broken;" in done.stdout
    closing = done.stdout.strip().splitlines()[-1]  # the broken fixture counted once, as the table counts it
    assert "1 passed, 1 error in" in closing and "failed" not in closing, closing


# -- marks: fixture tags and the layer select with -m ----------------------------------------------------

def test_tags_are_marks(tmp_path, gallery):
    done = run_pytest(tmp_path, "--impl", "numpy-reference", "-m", "mask and not stateful", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout[-2000:]
    collected = sorted(line.rsplit("[numpy-reference-", 1)[1].rstrip("]") for line in done.stdout.splitlines()
                       if "test_conformance[" in line)
    want = sorted(f.id for f in gallery if "mask" in f.tags and "stateful" not in f.tags)
    assert collected == want and want


def test_the_layer_is_a_mark(tmp_path, gallery):
    done = run_pytest(tmp_path, "--impl", "numpy-reference", "-m", "gru", "--collect-only", "-q")
    n = sum(1 for line in done.stdout.splitlines() if "test_conformance[" in line)
    assert n == sum(f.layer == "GRU" for f in gallery) > 0


# -- the CLI's run is the same engine: same options, ledger applied, same JSON ------------------------------

SCALED = '''
from conformance.reference import run as correct

def scaled(fixture):
    """Every output 1 % too large."""
    return {k: v * 1.01 for k, v in correct(fixture).items() if k != "trace"}
'''


def test_cli_run_takes_exactly_the_plugin_options():
    run_parser = cli.parser()._subparsers._group_actions[0].choices["run"]
    flags = {s for a in run_parser._actions for s in a.option_strings} - {"-h", "--help"}
    assert flags == {flag for flag, _ in OPTIONS} | {"--no-isolate"}  # --isolate's negation (BooleanOptionalAction)


def test_cli_run_and_pytest_give_the_same_json_with_the_ledger_applied(tmp_path, monkeypatch, capsys):
    (tmp_path / "scaled_impl.py").write_text(SCALED)
    monkeypatch.syspath_prepend(str(tmp_path))
    ledger = tmp_path / "ledger.yaml"
    link = shipped_ledger.load()[0].link  # a well-formed link the ledger rules accept; this entry is made up
    ledger.write_text("format_version: 1\nentries:\n"
                      '  - {"fixture": "lstm-basic", "impl": "scaled_impl:scaled", "kind": "mismatch", '
                      f'"reason": "deliberately scaled.", "link": "{link}"}}\n')
    args = ["--impl", "scaled_impl:scaled", "--fixture-id", "lstm-basic", "--fixture-id", "gru-reset-after-basic",
            "--ledger", str(ledger)]
    code = cli.main(["run", *args, "--conformance-json", str(tmp_path / "cli.json")])
    out = capsys.readouterr().out
    assert code == 1  # gru-reset-after-basic fails; lstm-basic is explained by the ledger
    done = run_pytest(tmp_path, *args, "--conformance-json", str(tmp_path / "pytest.json"), pythonpath=[tmp_path])
    assert done.returncode == 1, done.stdout[-2000:]
    from_cli, from_pytest = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("cli", "pytest"))
    assert statuses(from_cli) == statuses(from_pytest) == {("scaled_impl:scaled", "lstm-basic"): "xfailed",
                                                           ("scaled_impl:scaled", "gru-reset-after-basic"): "failed"}
    assert set(from_cli) == set(from_pytest)
    # the same records, structure and all (the pytest run's crossed no process boundary but its own)
    assert [timeless(c) for c in from_cli["cases"]] == [timeless(c) for c in from_pytest["cases"]]
    head = next(line for line in out.splitlines() if line.startswith("implementation "))
    row = next(line for line in out.splitlines() if line.startswith("scaled_impl:scaled "))
    table = dict(zip(head.split()[1:], map(int, row.split()[1:])))
    assert table == {"passed": 0, "failed": 1, "skipped": 0, "error": 0, "xfailed": 1, "crashed": 0, "partial": 0}


def test_every_option_reaches_the_session():
    params = set(Session.open.__code__.co_varnames[1:Session.open.__code__.co_argcount])
    assert {dest(flag) for flag, _ in OPTIONS} - {"conformance_json"} <= params  # the JSON is written by Results


def test_long_names_are_shortened_in_the_middle():
    name = "cmd:node /home/someone/projects/engine/main.js --fast"
    short = short_name(name, 24)
    assert len(short) == 24 and short.startswith("cmd:node") and short.endswith("--fast")
    assert short_name("keras", 24) == "keras"


def test_selection_matches_globs_like_the_listing(gallery):
    run = Session.open(impl=["numpy-reference"], fixture_id=["gru-*"])
    assert [f.id for f in run.fixtures] == sorted(f.id for f in gallery if fnmatch.fnmatchcase(f.id, "gru-*"))
    with pytest.raises(session.UsageError, match=r"--fixture-id 'grux-\*' matches no fixture in "):
        Session.open(impl=["numpy-reference"], fixture_id=["gru-*", "grux-*"])  # one bad pattern stops the run


# -- marks: the layer as the fixtures spell it, and a hint when an expression selects nothing ---------

def test_the_layer_mark_takes_the_fixtures_own_spelling(tmp_path, gallery):
    """``-m "LSTM and go_backwards"`` selects what ``-m "lstm and go_backwards"`` does: the plain LSTM fixtures."""
    want = sorted(f.id for f in gallery if f.layer == "LSTM" and "go_backwards" in f.tags)
    assert want
    for expression in ("LSTM and go_backwards", "lstm and go_backwards"):
        done = run_pytest(tmp_path, "--impl", "numpy-reference", "-m", expression, "--collect-only", "-q")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        ids = sorted(line.split("[numpy-reference-", 1)[1].rstrip("]") for line in done.stdout.splitlines()
                     if "[numpy-reference-" in line)
        assert ids == want, (expression, ids)


def test_an_expression_matching_nothing_names_the_marks(tmp_path):
    done = run_pytest(tmp_path, "--impl", "numpy-reference", "-m", "Lstm and masked")
    assert done.returncode == 5, done.stdout[-2000:]
    hint = next(line for line in done.stdout.splitlines() if "no case matched -m" in line)
    assert "'Lstm and masked'" in hint and " LSTM, " in hint and " lstm, " in hint and " mask, " in hint, hint


@pytest.mark.parametrize("runner", ["pytest", "lstm-conformance run"])
def test_a_json_summary_that_cannot_be_written_is_one_error_line_after_the_table(tmp_path, capsys, runner):
    """A file where the summary's folder should be: the table is printed, then one ERROR line naming the path
    and why, and the run exits non-zero (it passed otherwise); no internal error, no traceback."""
    (tmp_path / "results").write_text("a file, not a folder\n")
    target = tmp_path / "results" / "env" / "summary.json"
    args = ["--impl", "numpy-reference", "--fixture-id", "lstm-basic", "--conformance-json", str(target)]
    if runner == "pytest":
        done = run_pytest(tmp_path, *args, pythonpath=[REPO])  # this checkout, not an installed copy
        code, out = done.returncode, done.stdout + done.stderr
    else:
        code = cli.main(["run", *args])
        captured = capsys.readouterr()
        out = captured.out + captured.err
    assert code == 1, out
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("numpy-reference "))
    errors = [line for line in lines if line.startswith("ERROR ")]
    assert errors == [f"ERROR --conformance-json {target}: cannot write the JSON summary: "
                      f"{tmp_path / 'results'} is a file, not a folder"], out
    assert lines.index(errors[0]) > row or runner != "pytest", out  # pytest: after the table
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    assert not target.exists()
