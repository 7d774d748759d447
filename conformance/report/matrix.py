"""Merge per-env results (``RESULTS_DIR/<env>/summary.json``) into one matrix, as Markdown and HTML.

Rows are fixtures, columns are (env, implementation) pairs, cells say pass / fail with
the max error / xfail with the ledger reason / skip with the reason / error. Long
reasons become numbered notes under the table so the table stays readable. An
implementation that passed every fixture in every env is folded into one line
above the table (the numpy reference, normally), so the table shows where Keras differs.
Every summary is checked against its schema (``records.check_summary``, SPEC 14) and read by
its fields only: a summary of another format is an error naming the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import sys
from pathlib import Path
from typing import Sequence

from packaging.version import InvalidVersion, Version

from . import findings, ports
from ..records import SummaryFormatError, check_summary
from ..judge.verdict import Status

SUMMARY = "summary.json"
#: the env of tf-nightly and keras-nightly (tox.ini); its findings are hand-written in docs/nightly.md
NIGHTLY_ENV, NIGHTLY_DOC = "nightly", "nightly.md"
LABELS = {Status.PASSED: "pass", Status.FAILED: "FAIL", Status.XFAILED: "xfail", Status.SKIPPED: "skip",
          Status.ERROR: "ERROR", Status.CRASHED: "CRASH", Status.PARTIAL: "partial"}
# statuses whose message is a footnote
NOTED = (Status.FAILED, Status.XFAILED, Status.SKIPPED, Status.ERROR, Status.CRASHED, Status.PARTIAL)


class ReportError(ValueError):
    """The results folder holds no usable summaries; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Note:
    """A footnote: its words, and the ledger entry's link where one explains the cell."""
    text: str
    link: str | None = None

    def __str__(self) -> str:
        return f"{self.text} ({self.link})" if self.link else self.text


@dataclasses.dataclass(frozen=True)
class Cell:
    status: str                  # a Status value, or "missing" (no such case in that env)
    max_abs_error: float | None = None
    message: str = ""
    not_applicable: bool = False  # a skip because the fixture does not apply there (applies_to, no such file)
    link: str | None = None      # the ledger entry's link (an xfail)

    @property
    def note(self) -> Note | None:
        """What is worth a footnote: ledger reason, skip reason, failure or error headline."""
        return Note(self.message, self.link) if self.status in NOTED and self.message else None


@dataclasses.dataclass
class Column:
    env: str
    impl: str
    keras: str | None
    backend: str | None

    @property
    def title(self) -> str:
        return f"{self.env} {self.impl}"

    @property
    def detail(self) -> str:
        if self.keras:
            return f"Keras {self.keras}, {self.backend or '?'}"
        return ""


@dataclasses.dataclass
class Matrix:
    columns: list[Column]
    fixtures: list[str]
    cells: dict[tuple[str, str, str], Cell]          # (fixture, env, impl) -> cell
    folded: dict[str, int]                           # impl that passed everywhere -> number of envs
    notes: list[Note]                                # footnotes, numbered from 1
    wide: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)  # column-wide reasons: one line each

    def cell(self, fixture: str, env: str, impl: str) -> Cell:
        return self.cells.get((fixture, env, impl), Cell("missing"))

    def note_number(self, cell: Cell) -> int | None:
        return self.notes.index(cell.note) + 1 if cell.note else None

    def differing(self) -> list[str]:
        """Fixtures with at least one cell that is not a pass, where the fixture applies (n/a cells aside)."""
        return [f for f in self.fixtures
                if any((cell := self.cell(f, c.env, c.impl)).status != "passed" and not cell.not_applicable
                       for c in self.columns)]

    def totals(self, column: Column) -> dict[str, int]:
        counts = {s: 0 for s in LABELS}
        for fixture in self.fixtures:
            status = self.cell(fixture, column.env, column.impl).status
            if status in counts:
                counts[status] += 1
        return counts


def load_results(results_dir: str | Path) -> dict[str, dict]:
    """Every ``<env>/summary.json`` under the folder, by env name (the folder's name), each checked against
    the summary's schema."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"results folder {root} does not exist")
    summaries = {}
    for path in sorted(root.glob(f"*/{SUMMARY}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{path}: not a readable JSON summary ({exc})") from None
        try:
            check_summary(data, path)
        except SummaryFormatError as exc:
            raise ReportError(str(exc)) from None
        summaries[path.parent.name] = data
    if not summaries:
        raise ReportError(f"no {root}/<env>/{SUMMARY} found (run tox, or pytest with --conformance-json)")
    return summaries


def _message(case: dict) -> str:
    """What a cell's note says: a skip's or an xfail's reason (without fixture, implementation or the running
    version, which the row and the column already say, so one note serves every cell with the same reason),
    else the message's headline."""
    if case["status"] in (Status.SKIPPED.value, Status.XFAILED.value):
        return findings.reason(case) if case["status"] == Status.XFAILED.value else case["reason"]
    return case["headline"]


def _column_order(column: "Column"):
    """Columns by Keras version, TensorFlow backend first, then env name; envs without Keras last."""
    try:
        version = Version(column.keras) if column.keras else None
    except InvalidVersion:
        version = None
    return (version is None, version or Version("0"), column.backend != "tensorflow", column.env, column.impl)


def build(summaries: dict[str, dict]) -> Matrix:
    """The matrix from summaries by env name."""
    cells: dict[tuple[str, str, str], Cell] = {}
    impls_by_env: dict[str, list[str]] = {}
    for env, data in summaries.items():
        for case in data["cases"]:
            key = (case["fixture"], env, case["impl"])
            cells[key] = Cell(case["status"], case["max_abs_error"], _message(case), case["not_applicable"],
                              findings.link(case))
            impls_by_env.setdefault(env, [])
            if case["impl"] not in impls_by_env[env]:
                impls_by_env[env].append(case["impl"])
    all_impls = sorted({impl for impls in impls_by_env.values() for impl in impls})
    clean = {impl for impl in all_impls
             if all(c.status == "passed" for (f, e, i), c in cells.items() if i == impl)}
    if clean == set(all_impls):
        clean = set()  # nothing differs anywhere: show every column rather than an empty table
    wide = findings.column_wide(summaries)
    columns = []
    for env in sorted(summaries):
        info = summaries[env].get("implementations") or {}
        for impl in sorted(impls_by_env.get(env, [])):
            if impl not in clean and (env, impl) not in wide:  # a column-wide reason is one line, not a column
                details = info.get(impl) or {}
                columns.append(Column(env, impl, details.get("keras"), details.get("backend")))
    columns.sort(key=_column_order)
    fixtures = sorted({f for f, _, _ in cells})
    notes: list[Note] = []
    for fixture in fixtures:
        for column in columns:
            note = cells.get((fixture, column.env, column.impl), Cell("missing")).note
            if note and note not in notes:
                notes.append(note)
    folded = {impl: sum(impl in impls for impls in impls_by_env.values()) for impl in sorted(clean)}
    return Matrix(columns, fixtures, cells, folded, notes, wide)


def _cell_text(matrix: Matrix, cell: Cell) -> str:
    if cell.status == "missing":
        return "—"
    text = LABELS.get(cell.status, cell.status)
    if cell.status == "failed" and cell.max_abs_error is not None:
        text += f" {cell.max_abs_error:.2g}"
    number = matrix.note_number(cell)
    return f"{text} [{number}]" if number else text


def _note_md(note: Note) -> str:
    return f"{note.text} ([link]({note.link}))" if note.link else note.text


def _preamble(matrix: Matrix, summaries: dict[str, dict]) -> list[str]:
    envs = ", ".join(f"{env} ({c.detail})" for env, c in {c.env: c for c in matrix.columns}.items() if c.detail)
    lines = [f"{len(matrix.fixtures)} fixtures × {len(summaries)} envs" + (f": {envs}" if envs else "") + "."]
    for impl, n in matrix.folded.items():
        lines.append(f"`{impl}` passed every fixture in all {n} envs (not shown as a column).")
    lines += [f"{line} (not shown as a column)." for line in findings.wide_lines(matrix.wide)]
    return lines


def _findings_md(summaries: dict[str, dict]) -> list[str]:
    found = findings.divergences(summaries)
    return [f"## Divergences found ({len(found)})", "",
            *([f"- {d.line(markdown=True)}" for d in found] or ["None: every case passed, or was skipped with its reason."]), ""]


NIGHTLY_TEXT = (f"The {NIGHTLY_ENV} column runs tf-nightly and keras-nightly (tox -e nightly, not in the default "
                "list): what they change, measured and cited, is in {link}.")


@dataclasses.dataclass(frozen=True)
class Change:
    """One cell the nightly computes otherwise than the newest release: fixture, impl, both statuses, the nightly's
    cell (its reason and error)."""
    fixture: str
    impl: str
    before: str
    after: str
    cell: Cell


def nightly_baseline(matrix: Matrix) -> str | None:
    """The env the nightly is compared with: the newest released Keras on the nightly's backend (its columns
    sort by Keras version, so the last such env), None where there is no nightly or no released env beside it."""
    nightly = [c for c in matrix.columns if c.env == NIGHTLY_ENV]
    if not nightly:
        return None
    released = [c for c in matrix.columns if c.env != NIGHTLY_ENV and c.backend == nightly[0].backend and c.keras
                and not _is_prerelease(c.keras)]
    return released[-1].env if released else None


def _is_prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return True


def nightly_changes(matrix: Matrix, baseline: str | None = None) -> list[Change]:
    """Every (fixture, impl) whose status in the nightly differs from the baseline env's (by default
    ``nightly_baseline``), where both apply."""
    baseline = baseline or nightly_baseline(matrix)
    if baseline is None:
        return []
    changes = []
    for column in (c for c in matrix.columns if c.env == NIGHTLY_ENV):
        for fixture in matrix.fixtures:
            before, after = matrix.cell(fixture, baseline, column.impl), matrix.cell(fixture, NIGHTLY_ENV, column.impl)
            if before.status != after.status and not (before.not_applicable or after.not_applicable):
                changes.append(Change(fixture, column.impl, before.status, after.status, after))
    return changes


def _change_line(change: Change) -> str:
    error = f", max abs error {change.cell.max_abs_error:.3g}" if change.cell.max_abs_error is not None else ""
    return (f"`{change.fixture}` {change.impl}: {LABELS.get(change.before, change.before)} -> "
            f"{LABELS.get(change.after, change.after)}{error}: {change.cell.note or 'no reason recorded'}")


def _nightly_summary(matrix: Matrix) -> tuple[str, list[str]]:
    """The sentence and the changed cells, computed from the results (the hand-written account is the doc)."""
    baseline = nightly_baseline(matrix)
    if baseline is None:
        return "No released env on the nightly's backend to compare it with.", []
    version = next(c.keras for c in matrix.columns if c.env == baseline)
    nightly = next(c.keras for c in matrix.columns if c.env == NIGHTLY_ENV)
    lines = [_change_line(c) for c in nightly_changes(matrix, baseline)]
    head = (f"Against {baseline} (Keras {version}, the newest release on the same backend), the nightly (Keras "
            f"{nightly}) changes {len(lines)} cell{'s' if len(lines) != 1 else ''}" + (":" if lines else "."))
    return head, lines


def _nightly_md(matrix: Matrix, summaries: dict[str, dict]) -> list[str]:
    """What the nightly changes, computed, then a pointer to the hand-written findings."""
    if NIGHTLY_ENV not in summaries:
        return []
    head, lines = _nightly_summary(matrix)
    return ["## Keras nightly", "", head, "", *(f"- {line}" for line in lines), *([""] if lines else []),
            NIGHTLY_TEXT.format(link=f"[{NIGHTLY_DOC}]({NIGHTLY_DOC})"), ""]


def _md_table(matrix: Matrix, fixtures: list[str], totals: bool) -> list[str]:
    out = ["| fixture | " + " | ".join(f"{c.env}<br>{c.impl}" for c in matrix.columns) + " |",
           "|---|" + "---|" * len(matrix.columns)]
    for fixture in fixtures:
        row = [_cell_text(matrix, matrix.cell(fixture, c.env, c.impl)) for c in matrix.columns]
        out.append(f"| `{fixture}` | " + " | ".join(row) + " |")
    if totals:
        counts = [" ".join(f"{n} {LABELS[s]}" for s, n in matrix.totals(c).items() if n) for c in matrix.columns]
        out.append("| **total** | " + " | ".join(counts) + " |")
    return out


def to_markdown(matrix: Matrix, summaries: dict[str, dict]) -> str:
    """The matrix as GitHub-flavoured Markdown: rows that differ first, then every fixture, then the notes."""
    out = ["# lstm-conformance matrix", "", *_preamble(matrix, summaries), "", *_findings_md(summaries),
           *_nightly_md(matrix, summaries)]
    differing = matrix.differing()
    out += [f"## Not passing everywhere ({len(differing)} of {len(matrix.fixtures)} fixtures; cells where a fixture "
            "does not apply aside)", ""]
    out += _md_table(matrix, differing, totals=False) if differing else ["Every fixture passed in every column."]
    out += ["", "## All fixtures", "", *_md_table(matrix, matrix.fixtures, totals=True)]
    if matrix.notes:
        out += ["", "## Notes", ""]
        out += [f"{i}. {_note_md(text).replace('|', '/')}" for i, text in enumerate(matrix.notes, 1)]
    return "\n".join(out) + "\n"


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: center; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.fixture { text-align: left; font-family: monospace; }
.passed { background: #e3f6e3; } .failed { background: #f9c9c9; font-weight: bold; }
.xfailed { background: #fff0c2; } .skipped { background: #ececec; color: #666; }
.error, .crashed { background: #e9b3ff; font-weight: bold; } .missing { color: #aaa; } .partial { background: #dfe8ff; }
small { color: #666; font-weight: normal; }
ol li { margin: 2px 0; }
"""


def _note_html(note: Note) -> str:
    if note.link:
        link = html.escape(note.link)
        return f"{html.escape(note.text)} (<a href=\"{link}\">{link}</a>)"
    return html.escape(note.text)


def to_html(matrix: Matrix, summaries: dict[str, dict]) -> str:
    """A self-contained page: inline CSS, no scripts; a cell's full message is its tooltip."""
    e = html.escape
    head = "".join(f"<th>{e(c.env)}<br>{e(c.impl)}<br><small>{e(c.detail)}</small></th>" for c in matrix.columns)

    def rows_for(fixtures):
        return "\n".join(_html_row(matrix, f) for f in fixtures)

    totals = "".join("<td>" + "<br>".join(f"{n} {LABELS[s]}" for s, n in matrix.totals(c).items() if n) + "</td>"
                     for c in matrix.columns)
    notes = "".join(f"<li id=\"note-{i}\">{_note_html(t)}</li>" for i, t in enumerate(matrix.notes, 1))
    preamble = "".join(f"<p>{e(line).replace('`', '')}</p>" for line in _preamble(matrix, summaries))
    differing = matrix.differing()
    divergences = findings.divergences(summaries)
    found = (f"<h2>Divergences found ({len(divergences)})</h2><ul>"
             + ("".join(f"<li>{e(d.line())}</li>" for d in divergences) or "<li>None.</li>") + "</ul>")
    if NIGHTLY_ENV in summaries:
        link = f'<a href="{NIGHTLY_DOC}">{NIGHTLY_DOC}</a>'
        head, lines = _nightly_summary(matrix)
        items = "".join(f"<li>{e(line).replace('`', '')}</li>" for line in lines)
        found += (f"\n<h2>Keras nightly</h2><p>{e(head)}</p>" + (f"<ul>{items}</ul>" if items else "")
                  + f"<p>{NIGHTLY_TEXT.format(link=link)}</p>")
    thead = f"<thead><tr><th>fixture</th>{head}</tr></thead>"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>lstm-conformance matrix</title><style>{CSS}</style></head><body>\n"
            f"<h1>lstm-conformance matrix</h1>{preamble}\n{found}\n"
            f"<h2>Not passing everywhere ({len(differing)} of {len(matrix.fixtures)} fixtures; cells where a fixture "
            "does not apply aside)</h2>\n"
            + (f"<table>{thead}<tbody>\n{rows_for(differing)}\n</tbody></table>\n" if differing
               else "<p>Every fixture passed in every column.</p>\n")
            + f"<h2>All fixtures</h2>\n<table>{thead}<tbody>\n{rows_for(matrix.fixtures)}"
            + f"\n<tr><th>total</th>{totals}</tr></tbody></table>\n"
            + (f"<h2>Notes</h2><ol>{notes}</ol>\n" if notes else "") + "</body></html>\n")


def _html_row(matrix: Matrix, fixture: str) -> str:
    e = html.escape
    tds = []
    for column in matrix.columns:
        cell = matrix.cell(fixture, column.env, column.impl)
        number = matrix.note_number(cell)
        tip = str(cell.note or "") or cell.message or (f"max abs error {cell.max_abs_error:.3g}" if cell.max_abs_error is not None else "")
        text = e(_cell_text(matrix, cell))
        if number:
            text = text.replace(f"[{number}]", f"<a href=\"#note-{number}\">[{number}]</a>")
        tds.append(f"<td class=\"{cell.status}\" title=\"{e(tip)}\">{text}</td>")
    return f"<tr><td class=\"fixture\">{e(fixture)}</td>{''.join(tds)}</tr>"


def write(results_dir: str | Path, out_md: str | Path | None = None, out_html: str | Path | None = None,
          ports_md: str | Path | None = None, ports_html: str | Path | None = None) -> Matrix:
    """Write the matrix (Markdown to ``out_md`` or stdout, HTML to ``out_html`` if given) and the ports
    table (``ports.py``) where asked; ReportError on bad input."""
    summaries = load_results(results_dir)
    if ports_md is not None:
        Path(ports_md).write_text(ports.to_markdown(summaries), encoding="utf-8")
    if ports_html is not None:
        Path(ports_html).write_text(ports.to_html(summaries, CSS), encoding="utf-8")
    if (ports_md or ports_html) and out_md is None and out_html is None:
        return build(summaries)
    matrix = build(summaries)
    markdown = to_markdown(matrix, summaries)
    if out_md is None:
        print(markdown, end="")
    else:
        Path(out_md).write_text(markdown, encoding="utf-8")
    if out_html is not None:
        Path(out_html).write_text(to_html(matrix, summaries), encoding="utf-8")
    return matrix


def main(argv: Sequence[str] | str | Path | None = None, out_md: str | Path | None = None,
         out_html: str | Path | None = None) -> int:
    """``lstm-conformance report RESULTS_DIR [--md PATH] [--html PATH]``; also ``main(results_dir, out_md, out_html)``.

    Returns 0, or 2 with the reason on stderr when the results cannot be read.
    """
    if isinstance(argv, (str, Path)):
        args = argparse.Namespace(results_dir=argv, md=out_md, html=out_html, ports_md=None, ports_html=None)
    else:
        parser = argparse.ArgumentParser(prog="lstm-conformance report", description=__doc__.splitlines()[0])
        parser.add_argument("results_dir", metavar="RESULTS_DIR", help="folder of <env>/summary.json")
        parser.add_argument("--md", metavar="PATH", help="write Markdown here (default: stdout)")
        parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML page here")
        parser.add_argument("--ports-md", metavar="PATH", help="write the ports table (Markdown) here")
        parser.add_argument("--ports-html", metavar="PATH", help="write the ports table (HTML) here")
        args = parser.parse_args(argv)
    try:
        write(args.results_dir, args.md, args.html, args.ports_md, args.ports_html)
    except ReportError as exc:
        print(f"lstm-conformance report: {exc}", file=sys.stderr)
        return 2
    return 0
