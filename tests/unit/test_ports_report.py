"""The ports table and the findings list, built from real JSON summaries of real suite runs.

Four "ports" run on a few gallery fixtures with the real plug-in: one that is right (and follows
Keras 3, so the Keras 2-only fixture is n/a), one that computes the GRU gates in the wrong order (a
catalogued mistake the diagnosis names), one whose tool refuses every masked fixture (crashed) and
returns only ``output`` otherwise (partial), and one that fails the way Keras 2 fails to load a Keras 3
model file, explained by the shipped ledger's entry (a column-wide line, not a column).
"""

from __future__ import annotations

import json
import shutil

import pytest

from conformance import findings, ledger, ports, report

from helpers.repo import REPO

FIXTURES = ("lstm-basic", "lstm-mask-trailing", "gru-reset-after-basic", "gru-reset-after-return-sequences",
            "simple-rnn-basic", "lstm-hard-sigmoid-keras2")
PORTS = '''
from conformance import ConversionError
from conformance.mistakes import BY_KEY
from conformance.reference import run as correct


def right(fixture):
    return {k: v for k, v in correct(fixture).items() if k != "trace"}
right.returns_trace = False
right.keras_semantics = "3.15.1"  # like a converter of Keras 3 models: Keras 2-only fixtures are n/a


def gates_swapped(fixture):
    """Right except for GRU, where the z and r gate blocks are read in each other's place."""
    if fixture.layer != "GRU":
        return right(fixture)
    return BY_KEY["gru-gate-order-rzh"].outputs(fixture)
gates_swapped.returns_trace = False


def output_only(fixture):
    if "mask" in fixture.inputs:
        raise ConversionError("tool 1.0: converter refused the model: Loop with a mask input is not supported")
    return {"output": correct(fixture)["output"]}
output_only.returns = lambda fixture: ["output"]


def keras2_loader(fixture):
    """Keras 2 loading a Keras 3 model file, as the matrix's Keras 2 envs do: it fails on every fixture."""
    raise RuntimeError("keras 2.15.0 could not load model.keras: No module named 'keras.src.models.functional'")
'''
# the shipped ledger's entry for exactly this (Keras 2 cannot load Keras 3 model files), reused with its link
SHIPPED = next(e for e in ledger.load() if e.impl == ("keras-load",) and e.keras == "<3")
LEDGER_REASON, LEDGER_LINK = SHIPPED.reason, SHIPPED.link


@pytest.fixture
def summaries(pytester, tmp_path):
    gallery = tmp_path / "fixtures"
    for name in FIXTURES:
        shutil.copytree(REPO / "fixtures" / name, gallery / name)
    ledger = tmp_path / "ledger.yaml"
    ledger.write_text("format_version: 1\nentries:\n  - " + json.dumps(
        {"fixture": "*", "impl": "ports_impls:keras2_loader", "kind": "error", "reason": LEDGER_REASON,
         "link": LEDGER_LINK, "message": r"could not load model\.keras: No module named 'keras\.src"}) + "\n")
    pytester.makepyfile(ports_impls=PORTS)
    pytester.syspathinsert()
    results = tmp_path / "results"
    for env, impls in (("ports-a", ["right", "gates_swapped"]), ("ports-b", ["output_only", "keras2_loader"])):
        pytester.runpytest("-p", "no:cacheprovider", "--pyargs", "conformance", "--fixtures-dir", str(gallery),
                           "--ledger", str(ledger), "--impl", "numpy-reference",
                           *[a for i in impls for a in ("--impl", f"ports_impls:{i}")],
                           f"--conformance-json={results / env / 'summary.json'}")
    return report.load_results(results)


def test_the_table_counts_each_port_per_feature(summaries):
    names, cells = ports.table(summaries)
    assert names == [("ports-a", "ports_impls:gates_swapped"), ("ports-a", "ports_impls:right"),
                     ("ports-b", "ports_impls:keras2_loader"), ("ports-b", "ports_impls:output_only")]
    assert cells[("ports-a", "ports_impls:right", "all")] == {"pass": 5, "n/a": 1}
    assert cells[("ports-a", "ports_impls:right", "hard_sigmoid")] == {"n/a": 1}
    assert ports.cell_text(cells[("ports-a", "ports_impls:right", "hard_sigmoid")]) == "n/a"
    assert cells[("ports-a", "ports_impls:gates_swapped", "GRU reset_after")] == {"wrong": 2}
    assert cells[("ports-a", "ports_impls:gates_swapped", "LSTM")] == {"pass": 3}  # declares no Keras: runs keras2
    assert cells[("ports-b", "ports_impls:output_only", "masking")] == {"crash": 1}
    assert cells[("ports-b", "ports_impls:output_only", "all")] == {"crash": 1, "partial": 5}
    assert ports.cell_text(cells[("ports-a", "ports_impls:right", "SimpleRNN")]) == "✓ 1"
    assert ports.cell_text(cells[("ports-a", "ports_impls:right", "stateful")]) == "—"


def test_findings_come_first_one_line_per_divergence(summaries):
    found = findings.divergences(summaries, {impl for _, impl in ports.ports_of(summaries)})
    by_status = {d.status: d for d in found}
    swapped = by_status["failed"]
    assert "diagnosis:" in swapped.what and swapped.fixtures == {"gru-reset-after-basic",
                                                                 "gru-reset-after-return-sequences"}
    assert swapped.where == ["ports-a ports_impls:gates_swapped"]
    assert swapped.smallest.startswith("gru-reset-after-basic@sha256:")  # fewer expected values than -sequences
    crash = by_status["crashed"]
    assert "Loop with a mask input is not supported" in crash.what and crash.fixtures == {"lstm-mask-trailing"}
    markdown = ports.to_markdown(summaries)
    head, _, table = markdown.partition("## Port × feature")
    assert "## Divergences found" in head and swapped.line(markdown=True) in head and crash.line(markdown=True) in head
    # the ledger entry covering the whole keras2_loader column is one line, and the column leaves the table
    assert f"`ports-b ports_impls:keras2_loader`: xfailed on all 6 fixtures it ran: {LEDGER_REASON} ({LEDGER_LINK})" in head
    assert "ports_impls:keras2_loader" not in table.split("## Versions")[0]
    assert "| `ports_impls:output_only` (ports-b) |" in table


def test_the_matrix_report_also_leads_with_findings(summaries, tmp_path):
    matrix = report.build(summaries)
    assert ("ports-b", "ports_impls:keras2_loader") not in [(c.env, c.impl) for c in matrix.columns]
    text = report.to_markdown(matrix, summaries)
    assert text.index("## Divergences found") < text.index("## Not passing everywhere")
    assert "`ports-b ports_impls:keras2_loader`: xfailed on all 6 fixtures it ran" in text
    html = ports.to_html(summaries, report.CSS)
    assert "Divergences found (2)" in html and "ports_impls:output_only" in html


def test_each_port_gets_one_line_counting_what_it_got_right(summaries):
    assert ports.agreement(summaries, "ports-a", "ports_impls:right") == (
        "`ports_impls:right` (ports-a): computes what Keras computes on every fixture it ran, 5 fixtures; "
        "not run: 1 for another Keras")
    swapped = ports.agreement(summaries, "ports-a", "ports_impls:gates_swapped")
    assert "on 4 of the 6 fixtures it ran (2 wrong)" in swapped  # two GRU fixtures, neither in a ledger
    assert "(1 crash, 5 partial)" in ports.agreement(summaries, "ports-b", "ports_impls:output_only")
    head = ports.to_markdown(summaries).partition("## Port × feature")[0]
    assert f"- {swapped}" in head


def test_tools_not_run_are_data_with_their_exact_error(tmp_path):
    entries = ports.not_run()
    assert entries and all(e["error"] and e["until"] for e in entries)
    keras2c = next(e for e in entries if e["tool"] == "keras2c")
    markdown = ports.to_markdown({})
    assert f"`{keras2c['error']}`" in markdown.partition("## Tools not run")[2]
    broken = tmp_path / "not_run.yaml"
    broken.write_text("- tool: x\n  version: '1'\n")
    with pytest.raises(ValueError, match=r"not_run.yaml: entry 1 lacks tried, error, why, until"):
        ports.not_run(broken)


# tract's words on fixtures of the ports-tract run (its node indices and tf2onnx's node names differ per fixture)
TRACT = ("the tool crashed or refused the model: tract 0.23.9 failed running what tf2onnx 1.17.0 wrote: TractError: "
         'Evaluating #%d "%s" Scan Caused by: 0: Setting body inputs 1: Clashing resolution for expression. %s. '
         "(TurnState(SymbolValues { values: {} }))")


def test_one_crash_on_many_fixtures_is_one_line_whatever_the_tool_names_their_nodes():
    crashes = {"lstm-basic": (7, "LSTM__27613", "2=2 != 1"), "lstm-seed-question": (7, "LSTM__3047", "2=2 != 1"),
               "stacked-lstm-2": (4, "LSTM__47428", "2=2 != 1"),
               "lstm-batch1": (4, "LSTM__27748", "1=1 != 3"),       # another value: told apart
               "gru-reset-after-basic": (7, "GRU__27613", "2=2 != 1")}  # another op: told apart
    cases = [{"fixture": fixture, "impl": "tract", "status": "crashed", "reason": TRACT % words, "size": size}
             for size, (fixture, words) in enumerate(crashes.items(), start=1)]
    found = findings.divergences({"ports-tract": {"cases": cases}})
    assert sorted(sorted(d.fixtures) for d in found) == [
        ["gru-reset-after-basic"], ["lstm-basic", "lstm-seed-question", "stacked-lstm-2"], ["lstm-batch1"]]
    merged = max(found, key=lambda d: len(d.fixtures))
    assert 'Evaluating #… "LSTM__…" Scan' in merged.what and "2=2 != 1" in merged.what
    assert merged.smallest == "lstm-basic"
    assert findings.normalised("'fixture_1/rnn_12/zeros_1' and \"float16\"") == "'fixture_…/rnn_…/zeros_…' and \"float16\""
